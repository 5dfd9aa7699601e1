"""Support desk fixtures: service hours and SLA policies for a demo organisation."""

from __future__ import annotations

from cspdesk.support.models import ServiceHours, Severity, SlaPolicy
from cspdesk.tenancy.models import Organisation

ROME_OFFICE = {str(d): [["09:00", "18:00"]] for d in range(1, 6)}


def office_policies(org: Organisation, *, timezone: str = "Europe/Rome", country: str = "IT",
                    pause_while_vendor: bool = False) -> ServiceHours:  # fmt: skip
    hours = ServiceHours.objects.create(organisation=org, name="Office", timezone=timezone, weekly=ROME_OFFICE,
                                        holiday_country=country)  # fmt: skip
    targets = {
        Severity.CRITICAL: (60, 8 * 60),
        Severity.HIGH: (4 * 60, 3 * 9 * 60),
        Severity.NORMAL: (8 * 60, 5 * 9 * 60),
    }
    for severity, (first, resolve) in targets.items():
        SlaPolicy.objects.create(organisation=org, severity=severity, service_hours=hours, first_response_minutes=first,
                                 resolution_minutes=resolve, pause_while_vendor=pause_while_vendor)  # fmt: skip
    return hours
