"""API schemas for Partner Center data."""

from __future__ import annotations

import datetime as dt
import uuid

from ninja import Schema


class SubscriptionOut(Schema):
    id: int
    customer_id: int
    pc_subscription_id: uuid.UUID
    offer_id: str
    offer_name: str
    friendly_name: str
    product_id: str
    sku_id: str
    quantity: int
    unit_type: str
    status: str
    billing_type: str
    billing_cycle: str
    term_duration: str
    effective_start_date: dt.date | None
    commitment_end_date: dt.date | None
    auto_renew: bool
    reseller_mpn_id: str
    last_synced_at: dt.datetime | None
