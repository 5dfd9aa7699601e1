"""The demo world, in one place: partners, resellers, customers and users.

Tenant ids are derived from names (uuid5), so the Partner Center emulator and the recon-file generator
describe exactly the same customers as the database. Later capabilities add to this module.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from cspdesk.audit import services as audit
from cspdesk.core.actor import Actor
from cspdesk.tenancy import services as tenancy
from cspdesk.tenancy.models import (
    ApiToken,
    Customer,
    Membership,
    Organisation,
    OrganisationKind,
    RoleGrant,
    StaffRole,
)

NAMESPACE = uuid.UUID("6f0e3c1e-5b7a-4c8e-9a51-0c5d2a7e9f10")
DEMO_TOKEN_NAME = "demo"


def tenant_uuid(name: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, name)


@dataclass(frozen=True)
class OrgSpec:
    key: str
    kind: str
    legal_name: str
    address_line1: str
    postal_code: str
    city: str
    country: str
    vat_id: str
    mpn_id: str
    billing_currency: str
    default_locale: str
    invoice_series: str
    parent: str | None = None
    payment_terms_days: int = 30
    has_unified_support: bool = False
    has_advanced_support: bool = False
    has_signature_support: bool = False
    bank_iban: str = ""
    bank_bic: str = ""


@dataclass(frozen=True)
class CustomerSpec:
    key: str
    org: str
    name: str
    default_domain: str
    address_line1: str
    postal_code: str
    city: str
    country: str
    locale: str
    currency: str
    vat_id: str
    billing_emails: tuple[str, ...]
    users: tuple[tuple[str, str], ...] = field(default=())  # (username suffix, role)


ORGANISATIONS: tuple[OrgSpec, ...] = (
    OrgSpec(
        "nuvola",
        OrganisationKind.DIRECT_BILL_PARTNER,
        "Nuvola Informatica S.r.l.",
        "Via Tortona 27",
        "20144",
        "Milano",
        "IT",
        "IT00743110157",
        "5012345",
        "EUR",
        "it",
        "NUV",
        has_advanced_support=True,
        bank_iban="IT61X0306909606100000012345",
        bank_bic="BCITITMM",
    ),
    OrgSpec(
        "nordmoln",
        OrganisationKind.INDIRECT_PROVIDER,
        "Nordmoln Distribution AB",
        "Kungsgatan 44",
        "111 35",
        "Stockholm",
        "SE",
        "SE556677889901",
        "6023456",
        "SEK",
        "sv",
        "NMD",
        payment_terms_days=30,
        bank_iban="SE4550000000058398257466",
        bank_bic="ESSESESS",
        has_unified_support=True,
        has_signature_support=True,
    ),
    OrgSpec(
        "fjall",
        OrganisationKind.INDIRECT_RESELLER,
        "Fjällsystem AB",
        "Storgatan 12",
        "831 30",
        "Östersund",
        "SE",
        "SE559012345001",
        "6134567",
        "SEK",
        "sv",
        "FJS",
        parent="nordmoln",
        bank_iban="SE9030000000000123456789",
        bank_bic="NDEASESS",
    ),
    OrgSpec(
        "atlantico",
        OrganisationKind.INDIRECT_RESELLER,
        "Atlântico Cloud, Lda.",
        "Avenida da Liberdade 110",
        "1250-146",
        "Lisboa",
        "PT",
        "PT507172230",
        "6245678",
        "EUR",
        "pt-pt",
        "ATC",
        parent="nordmoln",
        bank_iban="PT50000201231234567890154",
        bank_bic="CGDIPTPL",
    ),
)

CUSTOMERS: tuple[CustomerSpec, ...] = (
    CustomerSpec(
        "bellavista",
        "nuvola",
        "Trattoria Bellavista S.r.l.",
        "bellavista.onmicrosoft.com",
        "Via dei Mille 8",
        "80121",
        "Napoli",
        "IT",
        "it",
        "EUR",
        "IT01234560637",
        ("amministrazione@bellavista.example",),
        (("admin", "customer_admin"), ("contabilita", "customer_billing")),
    ),
    CustomerSpec(
        "liffey",
        "nuvola",
        "Liffey Analytics Ltd",
        "liffeyanalytics.onmicrosoft.com",
        "12 Grand Canal Quay",
        "D02 X576",
        "Dublin",
        "IE",
        "en",
        "EUR",
        "IE6388047V",
        ("accounts@liffey.example",),
        (("admin", "customer_admin"),),
    ),
    CustomerSpec(
        "prairie",
        "nuvola",
        "Prairie Robotics Inc.",
        "prairierobotics.onmicrosoft.com",
        "400 Main Street",
        "68102",
        "Omaha",
        "US",
        "en",
        "USD",
        "",
        ("ap@prairie.example",),
        (("admin", "customer_admin"),),
    ),
    CustomerSpec(
        "angstrom",
        "fjall",
        "Ångström Bygg AB",
        "angstrombygg.onmicrosoft.com",
        "Järnvägsgatan 5",
        "831 34",
        "Östersund",
        "SE",
        "sv",
        "SEK",
        "SE556000016701",
        ("ekonomi@angstrom.example",),
        (("admin", "customer_admin"), ("user", "customer_user")),
    ),
    CustomerSpec(
        "gyor",
        "fjall",
        "Győri Gépgyár Kft.",
        "gyorigepgyar.onmicrosoft.com",
        "Fő utca 21",
        "9021",
        "Győr",
        "HU",
        "hu",
        "HUF",
        "HU12892312",
        ("penzugy@gyorigep.example",),
        (("admin", "customer_admin"),),
    ),
    CustomerSpec(
        "padaria",
        "atlantico",
        "Padaria São João, Lda.",
        "padariasaojoao.onmicrosoft.com",
        "Rua de Santa Catarina 200",
        "4000-442",
        "Porto",
        "PT",
        "pt-pt",
        "EUR",
        "PT501964843",
        ("contabilidade@padaria.example",),
        (("admin", "customer_admin"),),
    ),
    CustomerSpec(
        "douro",
        "atlantico",
        "Vinhos do Douro S.A.",
        "vinhosdodouro.onmicrosoft.com",
        "Cais da Ribeira 14",
        "5050-237",
        "Peso da Régua",
        "PT",
        "pt-pt",
        "EUR",
        "PT500100144",
        ("financeiro@douro.example",),
        (("admin", "customer_admin"),),
    ),
)

ROLE_USERNAMES = {
    StaffRole.GLOBAL_ADMIN: "admin",
    StaffRole.USER_MANAGEMENT_ADMIN: "users",
    StaffRole.HELPDESK_AGENT: "helpdesk",
    StaffRole.BILLING_ADMIN: "billing",
    StaffRole.SALES_AGENT: "sales",
}


@dataclass
class Login:
    role: str
    organisation: str | None
    customer: str | None
    username: str
    password: str
    api_token: str

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _org_fields(spec: OrgSpec) -> dict[str, Any]:
    return {
        "legal_name": spec.legal_name,
        "address_line1": spec.address_line1,
        "postal_code": spec.postal_code,
        "city": spec.city,
        "country": spec.country,
        "vat_id": spec.vat_id,
        "mpn_id": spec.mpn_id,
        "pc_tenant_id": partner_tenant_id(spec.key),
        "billing_currency": spec.billing_currency,
        "default_locale": spec.default_locale,
        "invoice_series": spec.invoice_series,
        "payment_terms_days": spec.payment_terms_days,
        "has_unified_support": spec.has_unified_support,
        "has_advanced_support": spec.has_advanced_support,
        "has_signature_support": spec.has_signature_support,
        "bank_iban": spec.bank_iban,
        "bank_bic": spec.bank_bic,
    }


def _customer_fields(spec: CustomerSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "default_domain": spec.default_domain,
        "address_line1": spec.address_line1,
        "postal_code": spec.postal_code,
        "city": spec.city,
        "country": spec.country,
        "locale": spec.locale,
        "currency": spec.currency,
        "vat_id": spec.vat_id,
        "billing_emails": list(spec.billing_emails),
    }


def _demo_password(username: str) -> str:
    """A random password that the configured validators accept for this user (never a retry at login)."""
    probe = get_user_model()(username=username, email=f"{username}@demo.cspdesk.localhost")
    while True:
        password = secrets.token_urlsafe(12)
        try:
            validate_password(password, user=probe)
        except ValidationError:
            continue
        return password


def _ensure_user(
    actor: Actor,
    username: str,
    role: str,
    *,
    organisation: Organisation | None = None,
    customer: Customer | None = None,
) -> Login:
    """Create the user if missing, else reset it; a fresh password and API token each load."""
    User = get_user_model()
    password = _demo_password(username)
    user = User.objects.filter(username=username).first()
    if user is None:
        tenancy.create_user(
            actor,
            username=username,
            email=f"{username}@demo.cspdesk.localhost",
            password=password,
            roles=[role],
            organisation_id=organisation.pk if organisation else None,
            customer_id=customer.pk if customer else None,
        )
        user = User.objects.get(username=username)
    else:
        m = Membership.objects.get(user=user)
        RoleGrant.objects.get_or_create(membership=m, role=role)
        tenancy.set_password(actor, user.pk, password)
        if not user.is_active:
            tenancy.update_user(actor, user.pk, is_active=True)
    for old in ApiToken.objects.filter(user=user, name=DEMO_TOKEN_NAME, revoked_at__isnull=True):
        tenancy.revoke_api_token(actor, old.pk)
    user_actor = Actor(kind=actor.kind, user_id=user.pk, username=username)
    _, secret = tenancy.issue_api_token(user_actor, DEMO_TOKEN_NAME)
    return Login(
        role=role,
        organisation=organisation.legal_name if organisation else None,
        customer=customer.name if customer else None,
        username=username,
        password=password,
        api_token=secret,
    )


@transaction.atomic
def load() -> list[Login]:
    """Create or refresh the demo world; returns every login (with fresh passwords and tokens)."""
    actor = Actor.system("demo-loader")
    orgs: dict[str, Organisation] = {}
    for spec in ORGANISATIONS:
        existing = Organisation.objects.filter(invoice_series=spec.invoice_series).first()
        if existing is None:
            parent_id = orgs[spec.parent].pk if spec.parent else None
            orgs[spec.key] = tenancy.create_organisation(
                actor, kind=spec.kind, parent_id=parent_id, **_org_fields(spec)
            )
        else:
            orgs[spec.key] = tenancy.update_organisation(actor, existing.pk, **_org_fields(spec))
    customers: dict[str, Customer] = {}
    for cspec in CUSTOMERS:
        org = orgs[cspec.org]
        tid = customer_tenant_id(cspec.key)
        found = Customer.objects.filter(organisation=org, tenant_id=tid).first()
        if found is None:
            customers[cspec.key] = tenancy.create_customer(
                actor, organisation_id=org.pk, tenant_id=tid, **_customer_fields(cspec)
            )
        else:
            customers[cspec.key] = tenancy.update_customer(actor, found.pk, **_customer_fields(cspec))
    logins: list[Login] = []
    for spec in ORGANISATIONS:
        for staff_role, suffix in ROLE_USERNAMES.items():
            logins.append(_ensure_user(actor, f"{spec.key}.{suffix}", staff_role, organisation=orgs[spec.key]))
    for cspec in CUSTOMERS:
        for suffix, role in cspec.users:
            logins.append(_ensure_user(actor, f"{cspec.key}.{suffix}", role, customer=customers[cspec.key]))
    audit.record(
        actor,
        "demo.loaded",
        object_type="demo.world",
        object_id="demo",
        after={"organisations": len(orgs), "customers": len(customers), "logins": len(logins)},
    )
    return logins


@dataclass(frozen=True)
class SubscriptionSpec:
    """A Partner Center subscription of a demo customer (new commerce)."""

    customer: str
    key: str
    offer_id: str  # "PRODUCTID:SKUID:AVAILABILITYID" as Partner Center writes new-commerce offer ids
    offer_name: str
    quantity: int
    billing_type: str  # "license" or "usage"
    billing_cycle: str  # "monthly" or "annual"
    term_duration: str  # "P1M" or "P1Y"
    category: str  # "microsoft365", "dynamics365", "azure"

    @property
    def subscription_id(self) -> uuid.UUID:
        return tenant_uuid(f"subscription:{self.customer}:{self.key}")

    @property
    def product_id(self) -> str:
        return self.offer_id.split(":")[0]

    @property
    def sku_id(self) -> str:
        return self.offer_id.split(":")[1]


_M365_BP = ("CFQ7TTC0LCHC:0002:CFQ7TTC0KJ6Q", "Microsoft 365 Business Premium")
_M365_E3 = ("CFQ7TTC0LFLX:0001:CFQ7TTC0J8T3", "Microsoft 365 E3")
_M365_BS = ("CFQ7TTC0LDPB:0001:CFQ7TTC0JMQS", "Microsoft 365 Business Standard")
_D365_SALES = ("CFQ7TTC0LFK6:0001:CFQ7TTC0K1Z5", "Dynamics 365 Sales Enterprise")
_AZURE_PLAN = ("DZH318Z0BPS6:0001:DZH318Z0BPS6", "Azure plan")

SUBSCRIPTIONS: tuple[SubscriptionSpec, ...] = (
    SubscriptionSpec("bellavista", "m365bp", *_M365_BP, 12, "license", "monthly", "P1Y", "microsoft365"),
    SubscriptionSpec("bellavista", "azure", *_AZURE_PLAN, 1, "usage", "monthly", "P1M", "azure"),
    SubscriptionSpec("liffey", "m365e3", *_M365_E3, 40, "license", "annual", "P1Y", "microsoft365"),
    SubscriptionSpec("liffey", "azure", *_AZURE_PLAN, 1, "usage", "monthly", "P1M", "azure"),
    SubscriptionSpec("prairie", "m365bs", *_M365_BS, 25, "license", "monthly", "P1M", "microsoft365"),
    SubscriptionSpec("prairie", "d365sales", *_D365_SALES, 8, "license", "monthly", "P1Y", "dynamics365"),
    SubscriptionSpec("prairie", "azure", *_AZURE_PLAN, 1, "usage", "monthly", "P1M", "azure"),
    SubscriptionSpec("angstrom", "m365bp", *_M365_BP, 30, "license", "monthly", "P1Y", "microsoft365"),
    SubscriptionSpec("angstrom", "azure", *_AZURE_PLAN, 1, "usage", "monthly", "P1M", "azure"),
    SubscriptionSpec("gyor", "m365bs", *_M365_BS, 55, "license", "monthly", "P1Y", "microsoft365"),
    SubscriptionSpec("gyor", "azure", *_AZURE_PLAN, 1, "usage", "monthly", "P1M", "azure"),
    SubscriptionSpec("padaria", "m365bs", *_M365_BS, 6, "license", "monthly", "P1M", "microsoft365"),
    SubscriptionSpec("douro", "m365e3", *_M365_E3, 18, "license", "annual", "P1Y", "microsoft365"),
    SubscriptionSpec("douro", "d365sales", *_D365_SALES, 4, "license", "monthly", "P1Y", "dynamics365"),
    SubscriptionSpec("douro", "azure", *_AZURE_PLAN, 1, "usage", "monthly", "P1M", "azure"),
)


def customer_tenant_id(key: str) -> uuid.UUID:
    return tenant_uuid(f"customer:{key}")


def partner_tenant_id(key: str) -> uuid.UUID:
    return tenant_uuid(f"partner:{key}")


# --- support desk -------------------------------------------------------------------------------------

WEEKDAYS_9_18 = {str(d): [["09:00", "18:00"]] for d in range(1, 6)}
WEEKDAYS_8_17 = {str(d): [["08:00", "17:00"]] for d in range(1, 6)}
ALWAYS = {str(d): [["00:00", "24:00"]] for d in range(1, 8)}


@dataclass(frozen=True)
class DeskSpec:
    """An organisation's service hours and SLA targets (minutes: first response, resolution) per severity."""

    org: str
    timezone: str
    holiday_country: str
    weekly: dict[str, list[list[str]]]
    targets: dict[str, tuple[int, int]]
    pause_while_vendor: bool = True


_TARGETS = {"critical": (60, 8 * 60), "high": (4 * 60, 3 * 9 * 60), "normal": (8 * 60, 5 * 9 * 60)}

DESKS: tuple[DeskSpec, ...] = (
    DeskSpec("nuvola", "Europe/Rome", "IT", WEEKDAYS_9_18, _TARGETS),
    DeskSpec("nordmoln", "Europe/Stockholm", "SE", WEEKDAYS_8_17, _TARGETS),
    DeskSpec("fjall", "Europe/Stockholm", "SE", WEEKDAYS_8_17, _TARGETS),
    DeskSpec("atlantico", "Europe/Lisbon", "PT", WEEKDAYS_9_18, _TARGETS),
)


@dataclass(frozen=True)
class TicketSpec:
    """A demo ticket. ``then`` is what happens to it: "" (stays new), "reply", "pending", "resolve",
    "escalate" (to the provider or Microsoft, as the vehicle rules say), "escalate2" (reseller → provider
    → Microsoft)."""

    key: str
    customer: str
    opener: str
    subject: str
    body: str
    category: str
    service: str
    severity: str
    then: str = ""
    answer: str = ""


TICKETS: tuple[TicketSpec, ...] = (
    TicketSpec(
        "t1",
        "bellavista",
        "bellavista.admin",
        "Outlook non riceve la posta",
        "Da stamattina tre caselle non ricevono messaggi esterni.",
        "technical",
        "microsoft365",
        "high",
        "reply",
        "Stiamo verificando lo stato del servizio Exchange Online.",
    ),
    TicketSpec(
        "t2",
        "bellavista",
        "bellavista.contabilita",
        "Domanda sulla fattura di ottobre",
        "Perché il costo di Azure è aumentato rispetto a settembre?",
        "billing",
        "azure",
        "normal",
        "escalate",
    ),
    TicketSpec(
        "t3",
        "liffey",
        "liffey.admin",
        "Add five Microsoft 365 E3 licences",
        "Please add five E3 seats from next Monday.",
        "subscription_management",
        "microsoft365",
        "normal",
        "resolve",
        "Done: the subscription now has 45 seats.",
    ),
    TicketSpec(
        "t4",
        "angstrom",
        "angstrom.user",
        "Virtuell maskin startar inte",
        "Vår VM i Sweden Central startar inte efter omstart.",
        "technical",
        "azure",
        "critical",
        "escalate2",
    ),
    TicketSpec(
        "t5",
        "gyor",
        "gyor.admin",
        "Számlázási kérdés",
        "A novemberi számlán két Microsoft 365 tétel szerepel. Kérjük, ellenőrizzék.",
        "billing",
        "microsoft365",
        "normal",
        "pending",
        "Kérjük, küldjék el a számla számát.",
    ),
    TicketSpec(
        "t6",
        "padaria",
        "padaria.admin",
        "Não consigo entrar no Teams",
        "Desde ontem a aplicação do Teams pede a palavra-passe em ciclo.",
        "technical",
        "microsoft365",
        "high",
        "reply",
        "Já repusemos a sessão; pode tentar novamente?",
    ),
)


@dataclass(frozen=True)
class PriceRuleSpec:
    """A demo price rule of one organisation (``percent`` and ``unit_price`` as text: they are Decimals)."""

    org: str
    method: str
    percent: str | None = None
    unit_price: str | None = None
    currency: str = ""
    category: str = ""
    product_id: str = ""
    sku_id: str = ""
    meter_category: str = ""
    reseller: str | None = None
    customer: str | None = None
    note: str = ""


PRICE_RULES_FROM = "2025-01-01"
PRICE_RULES: tuple[PriceRuleSpec, ...] = (
    PriceRuleSpec("nuvola", "markup", "12", note="default: 12% on Microsoft's cost"),
    PriceRuleSpec("nuvola", "markup", "8", category="azure", note="Azure: 8%"),
    PriceRuleSpec("nuvola", "markup", "5", category="azure", meter_category="Virtual Machines", note="VMs: 5%"),
    PriceRuleSpec("nuvola", "fixed_unit", unit_price="21.50", currency="EUR", product_id="CFQ7TTC0LCHC", sku_id="0002",
                  customer="bellavista", note="Bellavista's Business Premium seat price"),
    PriceRuleSpec("nordmoln", "markup", "6", note="distribution margin"),
    PriceRuleSpec("nordmoln", "markup", "4", reseller="atlantico", note="Atlântico's volume terms"),
    PriceRuleSpec("fjall", "markup", "15"),
    PriceRuleSpec("fjall", "list_adjust", "5", category="azure", note="Azure: list price + 5%"),
    PriceRuleSpec("atlantico", "markup", "10"),
    PriceRuleSpec("atlantico", "pass_through", category="dynamics365", customer="douro", note="Dynamics at cost"),
)  # fmt: skip


@dataclass(frozen=True)
class SupportPlanSpec:
    org: str
    name: str
    price_model: str
    currency: str
    amount: str | None = None
    percent: str | None = None
    minimum: str | None = None
    maximum: str | None = None
    customers: tuple[str, ...] = ()


SUPPORT_PLANS: tuple[SupportPlanSpec, ...] = (
    SupportPlanSpec("nuvola", "Assistenza Premium", "percent_of_spend", "EUR", percent="10", minimum="50",
                    maximum="500", customers=("bellavista",)),
    SupportPlanSpec("nuvola", "Assistenza Base", "flat_monthly", "EUR", amount="99", customers=("liffey",)),
    SupportPlanSpec("fjall", "Support Plus", "flat_monthly", "SEK", amount="1500", customers=("angstrom",)),
)  # fmt: skip


@dataclass(frozen=True)
class PaymentSpec:
    """How much of its invoice for the demo month a customer has paid: "1" all, "0.4" partly, "0" nothing."""

    customer: str
    share: str
    method: str = "bank_transfer"


PAYMENTS: tuple[PaymentSpec, ...] = (
    PaymentSpec("bellavista", "1"),
    PaymentSpec("liffey", "0.4"),
    PaymentSpec("angstrom", "1", method="card"),
    PaymentSpec("padaria", "0.5"),
    PaymentSpec("douro", "0"),
)
