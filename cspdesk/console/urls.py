from django.urls import path

from . import views

app_name = "console"
urlpatterns = [
    path("", views.home, name="home"),
    path("customers/", views.customer_list, name="customers"),
    path("customers/<int:customer_id>/", views.customer_detail, name="customer"),
    path(
        "subscriptions/<int:subscription_id>/suspend/",
        views.subscription_status,
        {"action": "suspend"},
        name="subscription_suspend",
    ),
    path(
        "subscriptions/<int:subscription_id>/reactivate/",
        views.subscription_status,
        {"action": "reactivate"},
        name="subscription_reactivate",
    ),
    path("billing/runs/", views.run_list, name="runs"),
    path("billing/runs/<int:run_id>/", views.run_detail, name="run"),
    path("billing/runs/<int:run_id>/finalize/", views.run_finalize, name="run_finalize"),
    path("payments/suspense/", views.suspense, name="suspense"),
    path("payments/<int:payment_id>/match/", views.payment_match, name="payment_match"),
    path("collections/", views.collections, name="collections"),
    path(
        "collections/cases/<int:case_id>/approve/",
        views.collections_decide,
        {"decision": "approve"},
        name="collections_approve",
    ),
    path(
        "collections/cases/<int:case_id>/reject/",
        views.collections_decide,
        {"decision": "reject"},
        name="collections_reject",
    ),
    path("tickets/", views.ticket_queue, name="tickets"),
    path("tickets/<int:ticket_id>/", views.ticket_detail, name="ticket"),
    path("catalog/price-rules/", views.price_rules, name="price_rules"),
    path("catalog/price-rules/<int:rule_id>/end/", views.price_rule_end, name="price_rule_end"),
    path("catalog/support-plans/", views.support_plans, name="support_plans"),
    path("users/", views.users, name="users"),
    path("users/<int:user_id>/", views.user_detail, name="user"),
    path("audit/", views.audit_log, name="audit"),
    path("sales/", views.sales, name="sales"),
]
