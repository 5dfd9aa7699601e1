"""Sending a finalized invoice or credit note by e-mail, localized, with its PDF and UBL XML attached."""

from __future__ import annotations

from django.core.mail import EmailMessage
from django.db import transaction

from cspdesk.audit import services as audit
from cspdesk.core import clock
from cspdesk.core.actor import Actor
from cspdesk.core.errors import Conflict, ValidationFailed
from cspdesk.tenancy import permissions
from cspdesk.tenancy import selectors as tenancy_selectors
from cspdesk.tenancy.models import Membership, StaffRole
from cspdesk.tenancy.permissions import Perm

from . import archive, selectors
from .models import Invoice, InvoiceKind, InvoiceStatus

SUBJECT = {
    "en": ("Invoice {number} from {seller}", "Credit note {number} from {seller}"),
    "it": ("Fattura {number} da {seller}", "Nota di credito {number} da {seller}"),
    "sv": ("Faktura {number} från {seller}", "Kreditnota {number} från {seller}"),
    "pt-pt": ("Fatura {number} de {seller}", "Nota de crédito {number} de {seller}"),
    "hu": ("{seller}: {number} számú számla", "{seller}: {number} számú jóváíró számla"),
}
BODY = {
    "en": "Dear customer,\n\nplease find attached document {number} of {total} {currency}, due on {due}, as PDF "
    "and as an e-invoice (UBL).\n\nKind regards,\n{seller}",
    "it": "Gentile cliente,\n\nin allegato il documento {number} di {total} {currency}, con scadenza il {due}, in PDF "
    "e come fattura elettronica (UBL).\n\nCordiali saluti,\n{seller}",
    "sv": "Bästa kund,\n\nbifogat finns dokument {number} på {total} {currency}, förfallodag {due}, som PDF och som "
    "e-faktura (UBL).\n\nMed vänliga hälsningar,\n{seller}",
    "pt-pt": "Caro cliente,\n\nem anexo o documento {number} de {total} {currency}, com vencimento em {due}, em PDF e "
    "como fatura eletrónica (UBL).\n\nCom os melhores cumprimentos,\n{seller}",
    "hu": "Tisztelt Ügyfelünk!\n\nMellékelten küldjük a(z) {number} számú, {total} {currency} összegű, {due} "
    "fizetési határidejű bizonylatot PDF-ben és e-számlaként (UBL).\n\nÜdvözlettel:\n{seller}",
}


def recipients(invoice: Invoice) -> list[str]:
    if invoice.customer is not None:
        return [e for e in invoice.customer.billing_emails if e]
    staff = Membership.objects.filter(
        organisation_id=invoice.buyer_organisation_id or 0,
        grants__role__in=[StaffRole.BILLING_ADMIN, StaffRole.GLOBAL_ADMIN],
    ).select_related("user")
    return sorted({m.user.email for m in staff if m.user.email})


def message_for(invoice: Invoice) -> EmailMessage:
    from cspdesk.core.money import quantize

    lang = invoice.language if invoice.language in SUBJECT else "en"
    seller = invoice.organisation.legal_name
    subject = SUBJECT[lang][invoice.kind == InvoiceKind.CREDIT_NOTE].format(number=invoice.number, seller=seller)
    body = BODY[lang].format(number=invoice.number, total=quantize(invoice.total, invoice.currency),
                             currency=invoice.currency, due=invoice.due_date or "", seller=seller)  # fmt: skip
    msg = EmailMessage(subject=subject, body=body, to=recipients(invoice))
    msg.attach(f"{invoice.number}.pdf", archive.pdf(invoice), "application/pdf")
    msg.attach(f"{invoice.number}.xml", archive.ubl(invoice), "application/xml")
    return msg


def send_invoice(actor: Actor, invoice_id: int, *, force: bool = False) -> Invoice:
    """E-mail a finalized document to its buyer; a second send is refused unless ``force``."""
    permissions.require(actor, Perm.INVOICES_CHANGE)
    with transaction.atomic():
        qs = selectors.invoices_for(actor, Perm.INVOICES_CHANGE).select_for_update(of=("self",))
        invoice = tenancy_selectors.get_or_404(qs, invoice_id, "invoice")
        if invoice.status != InvoiceStatus.FINALIZED:
            raise Conflict("only a finalized invoice is sent", code="not_finalized")
        if invoice.sent_at is not None and not force:
            raise Conflict(f"{invoice.number} was sent on {invoice.sent_at:%Y-%m-%d %H:%M}; use force to resend",
                           code="already_sent")  # fmt: skip
        msg = message_for(invoice)
        if not msg.to:
            raise ValidationFailed(f"{invoice.buyer_name} has no billing e-mail address", field="billing_emails")
        msg.send(fail_silently=False)
        invoice.sent_at = clock.now()
        invoice.sent_to = list(msg.to)
        invoice.save(update_fields=["sent_at", "sent_to"])
        audit.record(actor, "billing.invoice_sent", obj=invoice, organisation_id=invoice.organisation_id,
                     customer_id=invoice.customer_id, after={"to": invoice.sent_to, "forced": force})  # fmt: skip
    return invoice
