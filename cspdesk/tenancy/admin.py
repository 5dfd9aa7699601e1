from django.contrib import admin

from .models import ApiToken, Customer, Membership, Organisation, RoleGrant


@admin.register(Organisation)
class OrganisationAdmin(admin.ModelAdmin[Organisation]):
    list_display = ["legal_name", "kind", "parent", "country", "billing_currency", "pc_cloud"]
    list_filter = ["kind", "pc_cloud", "country"]
    search_fields = ["legal_name", "vat_id", "mpn_id"]


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin[Customer]):
    list_display = ["name", "organisation", "country", "currency", "locale", "status"]
    list_filter = ["organisation", "country", "status"]
    search_fields = ["name", "default_domain", "tenant_id", "vat_id"]


class RoleGrantInline(admin.TabularInline[RoleGrant, Membership]):
    model = RoleGrant
    extra = 0


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin[Membership]):
    list_display = ["user", "organisation", "customer"]
    inlines = [RoleGrantInline]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin[ApiToken]):
    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "digest"]
