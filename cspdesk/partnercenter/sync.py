"""``cspdesk pc sync``: pull customers and subscriptions from Partner Center into cspdesk, idempotently.

Which organisations: every direct-bill partner and indirect provider with a Partner Center tenant id
(resellers have no Partner Center tenant of their own here: their customers come through their
provider's). Organisations without usable credentials are listed as skipped.

Where a customer goes: under the organisation that bills it.

- A customer cspdesk already has (same tenant id, in the organisation or one of its resellers) stays
  where it is; its name and domain follow Partner Center.
- A new customer of a direct-bill partner goes under that partner.
- A new customer of an indirect provider goes under the reseller whose MPN id is the ``partnerId`` of
  its subscriptions. No partnerId, several different ones, or one that no reseller of the provider has:
  the customer is reported as *unplaced* (with the reason) and nothing is guessed.

Afterwards, recon charge lines that were waiting for these customers are linked
(``cspdesk.partnercenter.recon.services.link_customers``, when that app provides it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from django.db import transaction

from cspdesk.core.actor import Actor
from cspdesk.core.errors import DomainError
from cspdesk.tenancy import services as tenancy_services
from cspdesk.tenancy.models import Customer, Locale, Organisation, OrganisationKind

from . import services
from .client import PartnerCenterClient, Resource
from .errors import Misconfigured, PartnerCenterError

logger = logging.getLogger(__name__)
ClientFactory = Callable[[Organisation], PartnerCenterClient]


@dataclass
class Counts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def add(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)


@dataclass
class OrganisationResult:
    organisation_id: int
    organisation: str
    customers: Counts = field(default_factory=Counts)
    subscriptions: Counts = field(default_factory=Counts)
    unplaced: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None


@dataclass
class SyncReport:
    organisations: list[OrganisationResult] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    recon_linked: int | None = None

    @property
    def ok(self) -> bool:
        return all(o.error is None and not o.rejected for o in self.organisations)

    def totals(self) -> dict[str, dict[str, int]]:
        out = {"customers": Counts(), "subscriptions": Counts()}
        for o in self.organisations:
            for what in ("customers", "subscriptions"):
                for k, v in asdict(getattr(o, what)).items():
                    setattr(out[what], k, getattr(out[what], k) + v)
        return {k: asdict(v) for k, v in out.items()}

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "totals": self.totals(),
            "unplaced": sum(len(o.unplaced) for o in self.organisations),
            "recon_linked": self.recon_linked,
            "organisations": [asdict(o) for o in self.organisations],
            "skipped": self.skipped,
        }


def _locale(culture: str) -> str:
    lang = culture.lower()
    if lang.startswith("pt"):
        return Locale.PT_PT
    short = lang.split("-")[0]
    return short if short in Locale.values else Locale.EN


class _Placement:
    """Where new customers of one Partner Center tenant go."""

    def __init__(self, org: Organisation) -> None:
        self.org = org
        self.family = [org, *Organisation.objects.filter(parent=org)]
        self.resellers = {r.mpn_id: r for r in self.family[1:] if r.mpn_id}

    def existing(self, tenant_id: str) -> Customer | None:
        return Customer.objects.filter(tenant_id=tenant_id, organisation__in=self.family).order_by("pk").first()

    def place(self, subscriptions: list[Resource]) -> tuple[Organisation | None, str]:
        if self.org.kind == OrganisationKind.DIRECT_BILL_PARTNER:
            return self.org, ""
        ids = sorted({str(s.get("partnerId") or "") for s in subscriptions} - {"", "0", "-1"})
        if not ids:
            return None, "no reseller partner id on its subscriptions"
        if len(ids) > 1:
            return None, f"sold through several resellers ({', '.join(ids)})"
        reseller = self.resellers.get(ids[0])
        if reseller is None:
            return None, f"reseller partner id {ids[0]} is not a reseller of {self.org} in cspdesk"
        return reseller, ""


def syncable_organisations(organisation_id: int | None = None) -> list[Organisation]:
    qs = Organisation.objects.filter(
        pc_tenant_id__isnull=False,
        kind__in=[OrganisationKind.DIRECT_BILL_PARTNER, OrganisationKind.INDIRECT_PROVIDER],
    ).order_by("pk")
    if organisation_id is not None:
        qs = qs.filter(pk=organisation_id)
    return list(qs)


def sync(
    actor: Actor,
    *,
    organisation_id: int | None = None,
    client_factory: ClientFactory = PartnerCenterClient.for_organisation,
) -> SyncReport:
    """Sync every syncable organisation (or one); one organisation's failure does not stop the others."""
    report = SyncReport()
    if organisation_id is not None and not syncable_organisations(organisation_id):
        raise DomainError(
            f"organisation {organisation_id} has no Partner Center tenant of its own "
            "(only direct-bill partners and indirect providers are synced)",
            field="organisation",
            code="not_syncable",
        )
    for org in syncable_organisations(organisation_id):
        try:
            client = client_factory(org)
        except Misconfigured as exc:
            report.skipped.append({"organisation_id": org.pk, "organisation": org.legal_name, "reason": exc.message})
            continue
        with client:
            report.organisations.append(sync_organisation(actor, org, client))
    report.recon_linked = _link_recon(actor)
    services.record_sync(actor, report.as_dict())
    return report


def sync_organisation(actor: Actor, org: Organisation, client: PartnerCenterClient) -> OrganisationResult:
    result = OrganisationResult(org.pk, org.legal_name)
    placement = _Placement(org)
    try:
        for pc_customer in client.list_customers():
            tenant_id = str(pc_customer["companyProfile"]["tenantId"]).lower()
            subscriptions = list(client.list_subscriptions(tenant_id))
            customer = placement.existing(tenant_id)
            target: Organisation | None = None
            details: Resource = {}
            if customer is None:
                target, why = placement.place(subscriptions)
                if target is None:
                    result.unplaced.append(
                        {
                            "tenant_id": tenant_id,
                            "name": pc_customer["companyProfile"].get("companyName", ""),
                            "subscriptions": len(subscriptions),
                            "reason": why,
                        }
                    )
                    continue
                details = client.get_customer(tenant_id)
            try:
                with transaction.atomic():
                    outcome = "created"
                    if customer is None:
                        assert target is not None
                        customer = _create_customer(actor, target, details)
                    else:
                        outcome = _update_customer(actor, customer, pc_customer)
                    outcomes = [services.mirror_subscription(actor, customer.pk, r)[1] for r in subscriptions]
            except DomainError as exc:  # e.g. Partner Center's profile fails our validation: keep going
                result.rejected.append(
                    {"tenant_id": tenant_id, "code": exc.code, "message": exc.message, "field": exc.field}
                )
                continue
            result.customers.add(outcome)
            for one in outcomes:
                result.subscriptions.add(one)
    except PartnerCenterError as exc:
        logger.warning("Partner Center sync of %s failed: %s", org, exc)
        result.error = {**exc.support_details(), "code": exc.code, "message": str(exc)}
    return result


def _create_customer(actor: Actor, org: Organisation, pc: Resource) -> Customer:
    company = pc.get("companyProfile") or {}
    billing = pc.get("billingProfile") or {}
    address = billing.get("defaultAddress") or {}
    email = billing.get("email")
    return tenancy_services.create_customer(
        actor,
        organisation_id=org.pk,
        tenant_id=str(company["tenantId"]),
        name=company.get("companyName") or billing.get("companyName") or company.get("domain"),
        default_domain=company.get("domain") or "",
        address_line1=address.get("addressLine1") or "-",
        address_line2=address.get("addressLine2") or "",
        postal_code=address.get("postalCode") or "",
        city=address.get("city") or "-",
        region=address.get("state") or "",
        country=(address.get("country") or "").upper(),
        locale=_locale(str(billing.get("culture") or "")),
        billing_emails=[email] if email else [],
    )


def _update_customer(actor: Actor, customer: Customer, pc: Resource) -> str:
    company = pc.get("companyProfile") or {}
    wanted = {
        "name": company.get("companyName") or customer.name,
        "default_domain": company.get("domain") or customer.default_domain,
    }
    changed = {k: v for k, v in wanted.items() if getattr(customer, k) != v}
    if not changed:
        return "unchanged"
    tenancy_services.update_customer(actor, customer.pk, **changed)
    return "updated"


def _link_recon(actor: Actor) -> int | None:
    """Let the recon app assign waiting charge lines to customers it now knows (if it offers that)."""
    try:
        from cspdesk.partnercenter.recon import services as recon_services
    except ImportError:
        return None
    link = getattr(recon_services, "link_customers", None)
    if link is None:
        return None
    linked = link(actor)
    if isinstance(linked, int):
        return linked
    if isinstance(linked, dict):
        return int(linked.get("linked", 0))
    return int(getattr(linked, "linked", 0))
