"""The emulator's in-memory Partner Center, seeded from the demo world (:mod:`cspdesk.demo.world`).

Partner tenants are the demo organisations; a tenant sees its own customers and, for an indirect
provider, its resellers' customers (their subscriptions carry the reseller's MPN id as ``partnerId``).
Two customers exist only here, to show what a sync meets in real life: *Brezza Marina* (a new customer
of Nuvola, unknown to cspdesk) and *Hallstatt Handel* (sold through a reseller MPN id that no cspdesk
organisation has, so it cannot be placed).

Everything is deterministic (ids from uuid5, fixed dates and prices) except etags after a change and
the ids of created service requests. State changes are guarded by one lock.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import threading
import uuid
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any

from cspdesk.demo import world

Resource = dict[str, Any]

CULTURES = {"it": "it-IT", "en": "en-US", "sv": "sv-SE", "pt-pt": "pt-PT", "hu": "hu-HU"}
# Price-list unit prices (USD per licence per month) and USD→billing-currency rates, for line items.
UNIT_PRICES_USD = {
    "CFQ7TTC0LCHC": Decimal("22.00"),
    "CFQ7TTC0LFLX": Decimal("36.00"),
    "CFQ7TTC0LDPB": Decimal("12.50"),
    "CFQ7TTC0LFK6": Decimal("105.00"),
}
USD_TO = {"EUR": Decimal("0.9215"), "SEK": Decimal("10.4830"), "USD": Decimal("1"), "HUF": Decimal("362.10")}
AZURE_METERS = (
    ("Virtual Machines", "D2s v5", "Compute Hour", Decimal("0.096"), Decimal("24")),
    ("Storage", "Standard SSD Managed Disks", "E10 LRS Disk", Decimal("0.0257"), Decimal("1")),
    ("Bandwidth", "Inter-Region", "Data Transfer Out (GB)", Decimal("0.02"), Decimal("3.5")),
)
SUPPORT_TOPICS = (
    (32444671, "Billing", "Questions about invoices, charges and payments"),
    (32444672, "Partner Center Issues", "Problems using Partner Center itself"),
    (32444673, "Subscription management", "Suspension, reactivation, quantity and renewal problems"),
    (32444674, "Customer management", "Customer accounts, relationships and delegated access"),
    (32444675, "Azure technical", "Technical problems with Azure services"),
    (32444676, "Microsoft 365 technical", "Technical problems with Microsoft 365 services"),
    (32444677, "Dynamics 365 technical", "Technical problems with Dynamics 365 apps"),
)
FIRST_SERVICE_REQUEST_ID = 616122292874576
INVOICE_PERIODS = ((dt.date(2026, 8, 1), "G000410801"), (dt.date(2026, 9, 1), "G000410901"))


@dataclass(frozen=True)
class _ExtraCustomer:
    key: str
    partner: str
    reseller_mpn_id: str
    name: str
    domain: str
    city: str
    country: str
    locale: str
    offer_id: str
    offer_name: str
    quantity: int


EXTRA_CUSTOMERS = (
    _ExtraCustomer(
        "brezza",
        "nuvola",
        "",
        "Brezza Marina S.p.A.",
        "brezzamarina.onmicrosoft.com",
        "Genova",
        "IT",
        "it",
        "CFQ7TTC0LDPB:0001:CFQ7TTC0JMQS",
        "Microsoft 365 Business Standard",
        9,
    ),
    _ExtraCustomer(
        "hallstatt",
        "nordmoln",
        "6999999",
        "Hallstatt Handel GmbH",
        "hallstatthandel.onmicrosoft.com",
        "Hallstatt",
        "AT",
        "en",
        "CFQ7TTC0LCHC:0002:CFQ7TTC0KJ6Q",
        "Microsoft 365 Business Premium",
        15,
    ),
)


def _iso(day: dt.date) -> str:
    return f"{day.isoformat()}T00:00:00Z"


def _add_months(day: dt.date, months: int) -> dt.date:
    y, m = divmod(day.month - 1 + months, 12)
    return dt.date(day.year + y, m + 1, 1)


def _etag(subscription_id: str, version: int) -> str:
    digest = hashlib.sha256(f"{subscription_id}:{version}".encode()).hexdigest()
    return f'W/"{digest[:24]}"'


def error_body(code: str, description: str) -> Resource:
    return {"code": code, "description": description, "data": [], "source": "PartnerFD"}


class EmulatorError(Exception):
    def __init__(self, status: int, code: str, description: str) -> None:
        super().__init__(description)
        self.status, self.body = status, error_body(code, description)


class EmulatorState:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.partners: dict[str, Resource] = {}  # partner tenant id -> {key, name, mpn_id, parent}
        self.customers: dict[str, Resource] = {}  # customer tenant id -> Customer resource
        self.customer_partner: dict[str, str] = {}  # customer tenant id -> partner tenant id
        self.subscriptions: dict[str, dict[str, Resource]] = {}  # customer id -> {sub id -> Subscription}
        self.versions: dict[str, int] = {}
        self.invoices: dict[str, list[Resource]] = {}  # partner tenant id -> invoices
        self.line_items: dict[tuple[str, str, str], list[Resource]] = {}  # (partner, invoice|unbilled, type)
        self.service_requests: dict[str, Resource] = {}
        self.service_request_owner: dict[str, tuple[str, str | None]] = {}  # id -> (partner, customer)
        self.created_by_request_id: dict[tuple[str, str], str] = {}
        self._sr_ids = itertools.count(FIRST_SERVICE_REQUEST_ID)
        self.seed()

    # -- seeding ----------------------------------------------------------------------------

    def seed(self) -> None:
        orgs = {o.key: o for o in world.ORGANISATIONS}
        for o in world.ORGANISATIONS:
            self.partners[str(world.partner_tenant_id(o.key))] = {
                "key": o.key,
                "name": o.legal_name,
                "mpn_id": o.mpn_id,
                "parent": o.parent,
                "currency": o.billing_currency,
            }
        for c in world.CUSTOMERS:
            org = orgs[c.org]
            provider = org.parent or org.key
            reseller_mpn = org.mpn_id if org.parent else ""
            self._add_customer(
                str(world.customer_tenant_id(c.key)),
                provider,
                name=c.name,
                domain=c.default_domain,
                address=c.address_line1,
                postal_code=c.postal_code,
                city=c.city,
                country=c.country,
                culture=CULTURES.get(c.locale, "en-US"),
                email=c.billing_emails[0],
            )
            for s in world.SUBSCRIPTIONS:
                if s.customer == c.key:
                    self._add_subscription(
                        str(world.customer_tenant_id(c.key)),
                        str(s.subscription_id),
                        s.offer_id,
                        s.offer_name,
                        s.quantity,
                        s.billing_type,
                        s.billing_cycle,
                        s.term_duration,
                        reseller_mpn,
                    )
        for x in EXTRA_CUSTOMERS:
            tid = str(world.customer_tenant_id(x.key))
            self._add_customer(
                tid,
                x.partner,
                name=x.name,
                domain=x.domain,
                address="Via del Porto 1",
                postal_code="16126",
                city=x.city,
                country=x.country,
                culture=CULTURES[x.locale],
                email=f"billing@{x.key}.example",
            )
            self._add_subscription(
                tid,
                str(world.tenant_uuid(f"subscription:{x.key}:main")),
                x.offer_id,
                x.offer_name,
                x.quantity,
                "license",
                "monthly",
                "P1Y",
                x.reseller_mpn_id,
            )
        for partner_id in self.partners:
            self._seed_billing(partner_id)
        bellavista = str(world.customer_tenant_id("bellavista"))
        self._new_service_request(
            str(world.partner_tenant_id("nuvola")),
            bellavista,
            {
                "title": "Teams calling licences not assigned",
                "description": "Licences bought but not visible",
                "severity": "moderate",
                "supporttopicid": "32444673",
            },
            dt.datetime(2026, 9, 14, 9, 30, tzinfo=dt.UTC),
        )

    def _add_customer(
        self,
        tid: str,
        provider_key: str,
        *,
        name: str,
        domain: str,
        address: str,
        postal_code: str,
        city: str,
        country: str,
        culture: str,
        email: str,
    ) -> None:
        partner_id = str(world.partner_tenant_id(provider_key))
        self.customer_partner[tid] = partner_id
        self.customers[tid] = {
            "id": tid,
            "commerceId": str(uuid.uuid5(uuid.UUID(tid), "commerce")),
            "companyProfile": {
                "tenantId": tid,
                "domain": domain,
                "companyName": name,
                "attributes": {"objectType": "CustomerCompanyProfile"},
            },
            "billingProfile": {
                "id": str(uuid.uuid5(uuid.UUID(tid), "billing")),
                "email": email,
                "culture": culture,
                "language": culture.split("-")[0],
                "companyName": name,
                "defaultAddress": {
                    "country": country,
                    "city": city,
                    "addressLine1": address,
                    "postalCode": postal_code,
                },
                "attributes": {"objectType": "CustomerBillingProfile"},
            },
            "relationshipToPartner": "none",
            "allowDelegatedAccess": True,
            "links": {"self": {"uri": f"/customers/{tid}", "method": "GET", "headers": []}},
            "attributes": {"objectType": "Customer"},
        }
        self.subscriptions[tid] = {}

    def _add_subscription(
        self,
        tid: str,
        sid: str,
        offer_id: str,
        offer_name: str,
        quantity: int,
        billing_type: str,
        billing_cycle: str,
        term: str,
        reseller_mpn: str,
    ) -> None:
        start = dt.date(2025, 7, 1) if term == "P1Y" else dt.date(2026, 9, 1)
        start = _add_months(start, uuid.UUID(sid).int % 6)
        end = _add_months(start, 12 if term == "P1Y" else 1) - dt.timedelta(days=1)
        self.versions[sid] = 1
        self.subscriptions[tid][sid] = {
            "id": sid,
            "entitlementId": str(uuid.uuid5(uuid.UUID(sid), "entitlement")),
            "offerId": offer_id,
            "offerName": offer_name,
            "friendlyName": offer_name,
            "quantity": quantity,
            "unitType": "Licenses" if billing_type == "license" else "Usage-based",
            "creationDate": _iso(start),
            "effectiveStartDate": _iso(start),
            "commitmentEndDate": _iso(end),
            "status": "active",
            "autoRenewEnabled": billing_type == "license",
            "isTrial": False,
            "billingType": billing_type,
            "billingCycle": billing_cycle,
            "termDuration": term,
            "contractType": "subscription",
            "partnerId": reseller_mpn,
            "orderId": hashlib.sha256(sid.encode()).hexdigest()[:32],
            "actions": ["edit", "cancel"],
            "links": {"self": {"uri": f"/customers/{tid}/subscriptions/{sid}", "method": "GET", "headers": []}},
            "attributes": {"etag": _etag(sid, 1), "objectType": "Subscription"},
        }

    def _seed_billing(self, partner_id: str) -> None:
        partner = self.partners[partner_id]
        currency = partner["currency"]
        rate = USD_TO[currency]
        mine = [tid for tid, p in self.customer_partner.items() if p == partner_id]
        self.invoices[partner_id] = []
        for period_start, number in INVOICE_PERIODS:
            invoice_id = f"{number[:4]}{partner['mpn_id'][-3:]}{number[7:]}"
            billing: list[Resource] = []
            usage: list[Resource] = []
            for tid in mine:
                for sub in self.subscriptions[tid].values():
                    if sub["billingType"] == "license":
                        billing.append(self._license_line(partner_id, tid, sub, invoice_id, period_start, rate))
                    else:
                        usage.extend(self._usage_lines(partner_id, tid, sub, invoice_id, period_start, rate))
            total = sum((Decimal(str(li["totalForCustomer"])) for li in billing), Decimal(0))
            total += sum((Decimal(str(li["billingPreTaxTotal"])) for li in usage), Decimal(0))
            self.invoices[partner_id].append(
                {
                    "id": invoice_id,
                    "invoiceDate": _iso(_add_months(period_start, 1)),
                    "billingPeriodStartDate": _iso(period_start),
                    "billingPeriodEndDate": _iso(_add_months(period_start, 1) - dt.timedelta(days=1)),
                    "totalCharges": total,
                    "paidAmount": Decimal(0),
                    "currencyCode": currency,
                    "currencySymbol": {"EUR": "€", "SEK": "kr", "USD": "$"}.get(currency, currency),
                    "documentType": "Invoice",
                    "invoiceType": "one_time",
                    "invoiceDetails": [
                        {"invoiceLineItemType": "billing_line_items", "billingProvider": "one_time"},
                        {"invoiceLineItemType": "usage_line_items", "billingProvider": "one_time"},
                    ],
                    "links": {"self": {"uri": f"/invoices/{invoice_id}", "method": "GET", "headers": []}},
                    "attributes": {"objectType": "Invoice"},
                }
            )
            self.line_items[(partner_id, invoice_id, "billinglineitems")] = billing
            self.line_items[(partner_id, invoice_id, "usagelineitems")] = usage
        unbilled_start = _add_months(INVOICE_PERIODS[-1][0], 1)
        unbilled_usage: list[Resource] = []
        for tid in mine:
            for sub in self.subscriptions[tid].values():
                if sub["billingType"] == "usage":
                    unbilled_usage.extend(self._usage_lines(partner_id, tid, sub, "", unbilled_start, rate))
        self.line_items[(partner_id, "unbilled", "usagelineitems")] = unbilled_usage
        self.line_items[(partner_id, "unbilled", "billinglineitems")] = [
            self._license_line(partner_id, tid, sub, "", unbilled_start, rate)
            for tid in mine
            for sub in self.subscriptions[tid].values()
            if sub["billingType"] == "license"
        ]

    def _common(self, partner_id: str, tid: str, sub: Resource, invoice_id: str) -> Resource:
        partner = self.partners[partner_id]
        customer = self.customers[tid]
        product_id, sku_id, availability_id = ([*sub["offerId"].split(":"), "", ""])[:3]
        return {
            "partnerId": partner_id,
            "customerId": tid,
            "customerName": customer["companyProfile"]["companyName"],
            "customerDomainName": customer["companyProfile"]["domain"],
            "customerCountry": customer["billingProfile"]["defaultAddress"]["country"],
            "invoiceNumber": invoice_id,
            "mpnId": partner["mpn_id"],
            "resellerMpnId": sub["partnerId"] or "0",
            "productId": product_id,
            "skuId": sku_id,
            "availabilityId": availability_id,
            "productName": sub["offerName"],
            "skuName": sub["offerName"],
            "publisherName": "Microsoft Corporation",
            "publisherId": "",
            "subscriptionDescription": sub["offerName"],
            "subscriptionId": sub["id"],
        }

    def _license_line(
        self, partner_id: str, tid: str, sub: Resource, invoice_id: str, start: dt.date, rate: Decimal
    ) -> Resource:
        price = UNIT_PRICES_USD.get(sub["offerId"].split(":")[0], Decimal("10.00"))
        qty = Decimal(sub["quantity"])
        unit_bc = (price * rate).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
        subtotal = unit_bc * qty
        tax = Decimal(0)
        end = _add_months(start, 1) - dt.timedelta(days=1)
        return {
            **self._common(partner_id, tid, sub, invoice_id),
            "orderId": sub["orderId"],
            "orderDate": sub["creationDate"],
            "chargeType": "cycleCharge",
            "unitPrice": price,
            "effectiveUnitPrice": price,
            "unitType": "",
            "quantity": qty,
            "billableQuantity": qty,
            "subtotal": subtotal,
            "taxTotal": tax,
            "totalForCustomer": subtotal + tax,
            "currency": self.partners[partner_id]["currency"],
            "priceAdjustmentDescription": "",
            "chargeStartDate": _iso(start),
            "chargeEndDate": _iso(end),
            "termAndBillingCycle": f"{'One-Year' if sub['termDuration'] == 'P1Y' else 'One-Month'} commitment "
            f"for {sub['billingCycle']} billing",
            "alternateId": sub["orderId"][:12],
            "billingFrequency": sub["billingCycle"].capitalize(),
            "pricingCurrency": "USD",
            "pcToBCExchangeRate": rate,
            "pcToBCExchangeRateDate": _iso(start),
            "subscriptionStartDate": sub["effectiveStartDate"],
            "subscriptionEndDate": sub["commitmentEndDate"],
            "meterDescription": "",
            "reservationOrderId": "",
            "invoiceLineItemType": "billing_line_items",
            "billingProvider": "one_time",
            "attributes": {"objectType": "OneTimeInvoiceLineItem"},
        }

    def _usage_lines(
        self, partner_id: str, tid: str, sub: Resource, invoice_id: str, start: dt.date, rate: Decimal
    ) -> list[Resource]:
        lines = []
        for day in range(3):
            usage_date = start + dt.timedelta(days=day)
            for category, subcategory, name, price, qty in AZURE_METERS:
                pricing_total = (price * qty).quantize(Decimal("0.000001"), rounding=ROUND_DOWN)
                billing_total = (price * qty * rate).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
                rg = f"rg-{self.customers[tid]['companyProfile']['domain'].split('.')[0]}"
                lines.append(
                    {
                        **self._common(partner_id, tid, sub, invoice_id),
                        "partnerName": self.partners[partner_id]["name"],
                        "chargeStartDate": _iso(start),
                        "chargeEndDate": _iso(_add_months(start, 1) - dt.timedelta(days=1)),
                        "usageDate": _iso(usage_date),
                        "meterType": name,
                        "meterCategory": category,
                        "meterId": str(uuid.uuid5(world.NAMESPACE, f"meter:{category}:{subcategory}")),
                        "meterSubCategory": subcategory,
                        "meterName": name,
                        "meterRegion": "EU West",
                        "unitOfMeasure": "1 Hour",
                        "resourceLocation": "westeurope",
                        "consumedService": "Microsoft.Compute",
                        "resourceGroup": rg,
                        "resourceUri": f"/subscriptions/{sub['entitlementId']}/resourceGroups/{rg}",
                        "tags": "",
                        "additionalInfo": "",
                        "serviceInfo1": "",
                        "serviceInfo2": "",
                        "chargeType": "new",
                        "unitPrice": price,
                        "quantity": qty,
                        "unitType": "1 Hour",
                        "billingPreTaxTotal": billing_total,
                        "billingCurrency": self.partners[partner_id]["currency"],
                        "pricingPreTaxTotal": pricing_total,
                        "pricingCurrency": "USD",
                        "entitlementId": sub["entitlementId"],
                        "entitlementDescription": "Azure subscription 1",
                        "pcToBCExchangeRate": rate,
                        "pcToBCExchangeRateDate": _iso(start),
                        "effectiveUnitPrice": price,
                        "rateOfPartnerEarnedCredit": Decimal(0),
                        "rateOfCredit": Decimal(0),
                        "creditType": "Credit Not Applied",
                        "invoiceLineItemType": "usage_line_items",
                        "billingProvider": "marketplace",
                        "attributes": {"objectType": "DailyRatedUsageLineItem"},
                    }
                )
        return lines

    # -- reads ------------------------------------------------------------------------------

    def customers_of(self, partner_id: str) -> list[Resource]:
        with self.lock:
            return [c for tid, c in self.customers.items() if self.customer_partner[tid] == partner_id]

    def customer(self, partner_id: str, tid: str) -> Resource:
        with self.lock:
            if self.customer_partner.get(tid.lower()) != partner_id:
                raise EmulatorError(404, "600026", f"Customer {tid} was not found for this partner.")
            return self.customers[tid.lower()]

    def subscriptions_of(self, partner_id: str, tid: str) -> list[Resource]:
        self.customer(partner_id, tid)
        with self.lock:
            return list(self.subscriptions[tid.lower()].values())

    def subscription(self, partner_id: str, tid: str, sid: str) -> Resource:
        self.customer(partner_id, tid)
        with self.lock:
            sub = self.subscriptions[tid.lower()].get(sid.lower())
            if sub is None:
                raise EmulatorError(404, "800002", f"Subscription {sid} was not found.")
            return sub

    # -- writes -----------------------------------------------------------------------------

    def patch_subscription(self, partner_id: str, tid: str, sid: str, body: Resource, if_match: str) -> Resource:
        with self.lock:
            sub = self.subscription(partner_id, tid, sid)
            if if_match and if_match != sub["attributes"]["etag"]:
                raise EmulatorError(
                    412, "PreconditionFailed", "The etag does not match the current version of the subscription."
                )
            changes: Resource = {}
            status = body.get("status", sub["status"])
            if status != sub["status"]:
                allowed = {("active", "suspended"), ("suspended", "active")}
                if (sub["status"], status) not in allowed:
                    raise EmulatorError(
                        400, "800030", f"Subscription status cannot change from {sub['status']} to {status}."
                    )
                changes["status"] = status
            for key in ("quantity", "friendlyName", "autoRenewEnabled"):
                if key in body and body[key] != sub[key]:
                    changes[key] = body[key]
            if changes:
                sub.update(changes)
                if changes.get("status") == "suspended":
                    sub["suspensionReasons"] = ["PartnerInitiated"]
                elif "status" in changes:
                    sub.pop("suspensionReasons", None)
                self.versions[sid] += 1
                sub["attributes"]["etag"] = _etag(sid, self.versions[sid])
            return sub

    def _new_service_request(
        self, partner_id: str, customer_id: str | None, body: Resource, now: dt.datetime
    ) -> Resource:
        lowered = {k.lower(): v for k, v in body.items()}
        for required in ("title", "description", "severity", "supporttopicid"):
            if not lowered.get(required):
                raise EmulatorError(400, "2000", f"{required} is required.")
        severity = str(lowered["severity"]).lower()
        if severity not in {"unknown", "critical", "moderate", "minimal"}:
            raise EmulatorError(400, "2000", f"Severity {severity!r} is not valid.")
        topic = next((t for t in SUPPORT_TOPICS if str(t[0]) == str(lowered["supporttopicid"])), None)
        if topic is None:
            raise EmulatorError(400, "2000", f"Support topic {lowered['supporttopicid']} is not valid.")
        sr_id = str(next(self._sr_ids))
        stamp = now.isoformat().replace("+00:00", "Z")
        partner = self.partners[partner_id]
        sr: Resource = {
            "title": lowered["title"],
            "description": lowered["description"],
            "severity": severity,
            "supportTopicId": str(topic[0]),
            "supportTopicName": topic[1],
            "id": sr_id,
            "status": "open",
            "organization": {"id": partner_id, "name": partner["name"]},
            "primaryContact": lowered.get("primarycontact") or {},
            "productName": "",
            "createdDate": stamp,
            "lastModifiedDate": stamp,
            "lastClosedDate": None,
            "countryCode": lowered.get("countrycode") or "",
            "fileLinks": [],
            "notes": [],
            "attributes": {"objectType": "ServiceRequest"},
        }
        note = lowered.get("newnote")
        if isinstance(note, dict) and note.get("Text", note.get("text")):
            sr["notes"].append(
                {"createdByName": partner["name"], "createdDate": stamp, "text": note.get("Text", note.get("text"))}
            )
        self.service_requests[sr_id] = sr
        self.service_request_owner[sr_id] = (partner_id, customer_id)
        return sr

    def create_service_request(
        self, partner_id: str, body: Resource, request_id: str, now: dt.datetime
    ) -> tuple[Resource, bool]:
        """A new service request, or the one already created under the same ``MS-RequestId``."""
        with self.lock:
            known = self.created_by_request_id.get((partner_id, request_id)) if request_id else None
            if known:
                return self.service_requests[known], False
            sr = self._new_service_request(partner_id, None, body, now)
            if request_id:
                self.created_by_request_id[(partner_id, request_id)] = sr["id"]
            return sr, True

    def service_request(self, partner_id: str, sr_id: str) -> Resource:
        with self.lock:
            sr = self.service_requests.get(sr_id)
            if sr is None or self.service_request_owner[sr_id][0] != partner_id:
                raise EmulatorError(404, "2001", f"Service request {sr_id} was not found.")
            return sr

    def update_service_request(self, partner_id: str, sr_id: str, body: Resource, now: dt.datetime) -> Resource:
        lowered = {k.lower(): v for k, v in body.items()}
        with self.lock:
            sr = self.service_request(partner_id, sr_id)
            stamp = now.isoformat().replace("+00:00", "Z")
            note = lowered.get("newnote")
            if isinstance(note, dict) and note.get("Text", note.get("text")):
                sr["notes"].append(
                    {
                        "createdByName": self.partners[partner_id]["name"],
                        "createdDate": stamp,
                        "text": note.get("Text", note.get("text")),
                    }
                )
            status = lowered.get("status")
            if status:
                status = str(status).lower()
                if status not in {"open", "closed", "attention_needed"}:
                    raise EmulatorError(400, "2000", f"Status {status!r} is not valid.")
                sr["status"] = status
                if status == "closed":
                    sr["lastClosedDate"] = stamp
            sr["lastModifiedDate"] = stamp
            return sr

    def service_requests_of(self, partner_id: str, customer_id: str | None = None) -> list[Resource]:
        with self.lock:
            return [
                sr
                for sr_id, sr in self.service_requests.items()
                if self.service_request_owner[sr_id][0] == partner_id
                and (customer_id is None or self.service_request_owner[sr_id][1] == customer_id.lower())
            ]
