"""Public support pages. Thin."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import translation

from cspdesk.core.l10n import normalize_language
from cspdesk.tenancy.models import Organisation

from . import offering as offering_data


def offering(request: HttpRequest, organisation_id: int) -> HttpResponse:
    """An organisation's published support offering, in the visitor's language."""
    org = Organisation.objects.filter(pk=organisation_id).first()
    if org is None:
        raise Http404("no such support offering")
    language = normalize_language(translation.get_language() or "en")
    context = offering_data.offering(org, language)
    return render(request, "support/offering.html", context)
