"""The published collections policy: a public page and its PDF. Thin."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import translation

from cspdesk.core import l10n
from cspdesk.tenancy.models import Customer

from . import pdf, published, selectors
from .models import Policy


def _language(request: HttpRequest) -> str:
    for candidate in (request.GET.get("lang", ""), translation.get_language() or "", "en"):
        try:
            return l10n.normalize_language(candidate)
        except ValueError:
            continue
    return "en"


def _org_policy(organisation_id: int) -> Policy:
    policy = selectors.organisation_policy(organisation_id)
    if policy is None:
        raise Http404("this organisation has published no collections policy")
    return policy


def _customer_policy(tenant_id: uuid.UUID) -> Policy:
    customer = Customer.objects.filter(tenant_id=tenant_id).first()
    policy = selectors.policy_for_customer(customer) if customer else None
    if policy is None:
        raise Http404("no collections policy applies")
    return policy


def _page(request: HttpRequest, policy: Policy, pdf_url: str) -> HttpResponse:
    language = _language(request)
    with translation.override(language):
        return render(request, "collections/policy.html", {
            "fragment": published.render_policy(policy, language), "language": language,
            "pdf_url": f"{pdf_url}?lang={language}", "policy_languages": settings.LANGUAGES,
        })  # fmt: skip


def _pdf(request: HttpRequest, policy: Policy) -> HttpResponse:
    doc = published.document(policy, _language(request))
    response = HttpResponse(pdf.render(doc), content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="collections-policy-{doc.language}.pdf"'
    return response


def organisation_policy(request: HttpRequest, organisation_id: int) -> HttpResponse:
    """An organisation's published collections policy (``?lang=hu`` picks the language)."""
    url = reverse("collections:organisation_policy_pdf", args=[organisation_id])
    return _page(request, _org_policy(organisation_id), url)


def organisation_policy_pdf(request: HttpRequest, organisation_id: int) -> HttpResponse:
    return _pdf(request, _org_policy(organisation_id))


def customer_policy(request: HttpRequest, tenant_id: uuid.UUID) -> HttpResponse:
    """The policy that applies to one customer (its own, else its organisation's), linked from its e-mails."""
    url = reverse("collections:customer_policy_pdf", args=[tenant_id])
    return _page(request, _customer_policy(tenant_id), url)


def customer_policy_pdf(request: HttpRequest, tenant_id: uuid.UUID) -> HttpResponse:
    return _pdf(request, _customer_policy(tenant_id))
