from django.urls import path

from . import views

app_name = "portal"
urlpatterns = [
    path("", views.home, name="home"),
    path("invoices/", views.invoices, name="invoices"),
    path("invoices/<int:invoice_id>/", views.invoice, name="invoice"),
    path("invoices/<int:invoice_id>/pdf/", views.invoice_pdf, name="invoice_pdf"),
    path("invoices/<int:invoice_id>/ubl/", views.invoice_ubl, name="invoice_ubl"),
    path("invoices/<int:invoice_id>/pay/", views.pay, name="pay"),
    path("invoices/<int:invoice_id>/lines/<int:position>/", views.explain, name="explain"),
    path("invoices/<int:invoice_id>/lines/<int:position>/question/", views.billing_question, name="question"),
    path("balance/", views.balance, name="balance"),
    path("balance/statement.pdf", views.statement, name="statement"),
    path("subscriptions/", views.subscriptions, name="subscriptions"),
    path("tickets/", views.tickets, name="tickets"),
    path("tickets/new/", views.ticket_new, name="ticket_new"),
    path("tickets/<int:ticket_id>/", views.ticket, name="ticket"),
    path("tickets/<int:ticket_id>/resolve/", views.ticket_resolve, name="ticket_resolve"),
    path("tickets/<int:ticket_id>/files/<int:attachment_id>/", views.attachment, name="attachment"),
]
