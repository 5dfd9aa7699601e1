"""The support desk: tickets, SLA clocks, business-hours calendars, escalation."""
