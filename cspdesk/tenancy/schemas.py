from __future__ import annotations

import datetime as dt
import uuid

from ninja import Schema
from pydantic import Field


class ErrorOut(Schema):
    code: str
    message: str
    field: str | None = None


class OrganisationOut(Schema):
    id: int
    kind: str
    parent_id: int | None
    legal_name: str
    address_line1: str
    address_line2: str
    postal_code: str
    city: str
    region: str
    country: str
    vat_id: str
    pc_tenant_id: uuid.UUID | None
    mpn_id: str
    pc_cloud: str
    billing_currency: str
    default_locale: str
    invoice_series: str
    payment_terms_days: int
    microsoft_payment_terms_days: int
    support_vehicles: list[str]
    bank_iban: str
    bank_bic: str
    bank_account_name: str

    @staticmethod
    def resolve_support_vehicles(obj: object) -> list[str]:
        return obj.support_vehicles()  # type: ignore[attr-defined]


class OrganisationIn(Schema):
    kind: str
    parent_id: int | None = None
    legal_name: str
    address_line1: str
    address_line2: str = ""
    postal_code: str = ""
    city: str
    region: str = ""
    country: str
    vat_id: str = ""
    pc_tenant_id: uuid.UUID | None = None
    mpn_id: str = ""
    pc_cloud: str = "commercial"
    billing_currency: str
    default_locale: str = "en"
    invoice_series: str
    payment_terms_days: int = Field(30, ge=0, le=365)
    microsoft_payment_terms_days: int = Field(60, ge=0, le=365)
    has_unified_support: bool = False
    has_advanced_support: bool = False
    has_signature_support: bool = False
    bank_iban: str = ""
    bank_bic: str = ""
    bank_account_name: str = ""


class OrganisationPatch(Schema):
    legal_name: str | None = None
    address_line1: str | None = None
    address_line2: str | None = None
    postal_code: str | None = None
    city: str | None = None
    region: str | None = None
    country: str | None = None
    vat_id: str | None = None
    pc_tenant_id: uuid.UUID | None = None
    mpn_id: str | None = None
    pc_cloud: str | None = None
    billing_currency: str | None = None
    default_locale: str | None = None
    invoice_series: str | None = None
    payment_terms_days: int | None = Field(None, ge=0, le=365)
    microsoft_payment_terms_days: int | None = Field(None, ge=0, le=365)
    has_unified_support: bool | None = None
    has_advanced_support: bool | None = None
    has_signature_support: bool | None = None
    bank_iban: str | None = None
    bank_bic: str | None = None
    bank_account_name: str | None = None


class CustomerOut(Schema):
    id: int
    organisation_id: int
    tenant_id: uuid.UUID
    default_domain: str
    name: str
    address_line1: str
    address_line2: str
    postal_code: str
    city: str
    region: str
    country: str
    locale: str
    currency: str
    vat_id: str
    billing_emails: list[str]
    payment_terms_days: int | None
    status: str
    created_at: dt.datetime


class CustomerIn(Schema):
    organisation_id: int
    tenant_id: uuid.UUID
    default_domain: str
    name: str
    address_line1: str
    address_line2: str = ""
    postal_code: str = ""
    city: str
    region: str = ""
    country: str
    locale: str | None = None
    currency: str | None = None
    vat_id: str = ""
    billing_emails: list[str] = []
    payment_terms_days: int | None = Field(None, ge=0, le=365)


class CustomerPatch(Schema):
    default_domain: str | None = None
    name: str | None = None
    address_line1: str | None = None
    address_line2: str | None = None
    postal_code: str | None = None
    city: str | None = None
    region: str | None = None
    country: str | None = None
    locale: str | None = None
    currency: str | None = None
    vat_id: str | None = None
    billing_emails: list[str] | None = None
    payment_terms_days: int | None = Field(None, ge=0, le=365)
    status: str | None = None


class UserOut(Schema):
    id: int
    username: str
    email: str
    first_name: str
    last_name: str
    is_active: bool
    organisation_id: int | None
    customer_id: int | None
    roles: list[str]


class UserIn(Schema):
    username: str = Field(min_length=1, max_length=150)
    email: str = ""
    password: str
    roles: list[str]
    organisation_id: int | None = None
    customer_id: int | None = None
    first_name: str = ""
    last_name: str = ""
    locale: str = ""


class UserPatch(Schema):
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    is_active: bool | None = None
    roles: list[str] | None = None
    locale: str | None = None


class MeOut(Schema):
    id: int | None
    username: str
    kind: str
    organisation_id: int | None
    customer_id: int | None
    roles: list[str]
    permissions: list[str]


class TokenIn(Schema):
    name: str = Field(min_length=1, max_length=100)


class TokenOut(Schema):
    id: int
    name: str
    prefix: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None


class TokenCreatedOut(TokenOut):
    token: str
