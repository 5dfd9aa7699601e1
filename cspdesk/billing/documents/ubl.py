"""UBL 2.1 Invoice / CreditNote XML following EN 16931 and Peppol BIS Billing 3.0.

Elements are written in the order the UBL 2.1 schema's sequences require.
Choices worth knowing:

* Category O (not subject to VAT): EN 16931 BR-O-02 forbids the seller's and the
  buyer's VAT identifiers, so they are left out of the XML (the PDF still shows
  them). The seller is then identified by its registration number (BT-30) or,
  when it has none, by its VAT number given as a plain seller identifier (BT-29),
  so that BR-CO-26 still holds.
* Peppol allows one document note (PEPPOL-EN16931-R002): the free note and the
  exchange-rate sentence share it.
* A credit note's due date goes to ``PaymentMeans/PaymentDueDate``, where the
  Peppol credit note binding puts BT-9 (UBL's CreditNote has no ``DueDate``).
* The electronic address (BT-34/BT-49) is the party's own when given, else its
  VAT number under the Peppol EAS scheme of its country, else its e-mail (``EM``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Final

from lxml import etree

from ..tax import VatCategory
from . import labels
from .model import Document, Line, Party

NS_INVOICE: Final = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
NS_CREDIT_NOTE: Final = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
NS_CAC: Final = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
NS_CBC: Final = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
NAMESPACES: Final = {"cac": NS_CAC, "cbc": NS_CBC}

CUSTOMIZATION_ID: Final = "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
PROFILE_ID: Final = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"

# Peppol EAS codes for VAT-number based electronic addresses, by country.
_VAT_EAS: Mapping[str, str] = {
    "BE": "9925",
    "DE": "9930",
    "ES": "9920",
    "FR": "9957",
    "HU": "9910",
    "IE": "9935",
    "IT": "0211",
    "NL": "9944",
    "PT": "9946",
    "SE": "9955",
}
PAYMENT_MEANS_CREDIT_TRANSFER: Final = "30"


def _cbc(parent: etree._Element, name: str, text: str | None = None, **attrs: str) -> etree._Element:
    el = etree.SubElement(parent, f"{{{NS_CBC}}}{name}", attrs)
    if text is not None:
        el.text = text
    return el


def _cac(parent: etree._Element, name: str) -> etree._Element:
    return etree.SubElement(parent, f"{{{NS_CAC}}}{name}")


def decimal_text(value: Decimal) -> str:
    """A plain decimal (no exponent), keeping the value's own scale for amounts."""
    return f"{value:f}"


def quantity_text(value: Decimal) -> str:
    """A quantity or rate without trailing zeros: 22, 25.5, 0.75."""
    text = f"{value.normalize():f}"
    return text


def _amount(parent: etree._Element, name: str, value: Decimal, currency: str) -> etree._Element:
    return _cbc(parent, name, decimal_text(value), currencyID=currency)


def _date(value: date) -> str:
    return value.isoformat()


def endpoint(party: Party) -> tuple[str, str] | None:
    """The party's electronic address (EAS scheme, identifier), see the module docstring."""
    if party.endpoint_scheme:
        return party.endpoint_scheme, party.endpoint_id
    if party.vat_id:
        scheme = _VAT_EAS.get(party.vat_id[:2].upper())
        if scheme:
            return scheme, party.vat_id
    if party.email:
        return "EM", party.email
    return None


def _party(parent: etree._Element, party: Party, *, with_vat_id: bool, is_seller: bool) -> None:
    el = _cac(parent, "Party")
    address = endpoint(party)
    if address:
        _cbc(el, "EndpointID", address[1], schemeID=address[0])
    if is_seller and not with_vat_id and not party.registration_id and party.vat_id:
        _cbc(_cac(el, "PartyIdentification"), "ID", party.vat_id)
    _cbc(_cac(el, "PartyName"), "Name", party.name)
    postal = _cac(el, "PostalAddress")
    _cbc(postal, "StreetName", party.address.street)
    if party.address.additional_street:
        _cbc(postal, "AdditionalStreetName", party.address.additional_street)
    _cbc(postal, "CityName", party.address.city)
    if party.address.postal_code:
        _cbc(postal, "PostalZone", party.address.postal_code)
    if party.address.region:
        _cbc(postal, "CountrySubentity", party.address.region)
    _cbc(_cac(postal, "Country"), "IdentificationCode", party.address.country)
    if with_vat_id and party.vat_id:
        scheme = _cac(el, "PartyTaxScheme")
        _cbc(scheme, "CompanyID", party.vat_id)
        _cbc(_cac(scheme, "TaxScheme"), "ID", "VAT")
    legal = _cac(el, "PartyLegalEntity")
    _cbc(legal, "RegistrationName", party.name)
    if party.registration_id:
        _cbc(legal, "CompanyID", party.registration_id)
    if party.email:
        _cbc(_cac(el, "Contact"), "ElectronicMail", party.email)


def _tax_category(
    parent: etree._Element,
    name: str,
    category: VatCategory,
    rate: Decimal,
    exemption_code: str = "",
    exemption_reason: str = "",
) -> None:
    el = _cac(parent, name)
    _cbc(el, "ID", category.value)
    if category.has_rate:
        _cbc(el, "Percent", quantity_text(rate))
    if exemption_code:
        _cbc(el, "TaxExemptionReasonCode", exemption_code)
    if exemption_reason:
        _cbc(el, "TaxExemptionReason", exemption_reason)
    _cbc(_cac(el, "TaxScheme"), "ID", "VAT")


def _period(parent: etree._Element, start: date, end: date) -> None:
    el = _cac(parent, "InvoicePeriod")
    _cbc(el, "StartDate", _date(start))
    _cbc(el, "EndDate", _date(end))


def _line(parent: etree._Element, doc: Document, line: Line) -> None:
    credit = doc.is_credit_note
    el = _cac(parent, "CreditNoteLine" if credit else "InvoiceLine")
    _cbc(el, "ID", line.id)
    if line.reference:
        _cbc(el, "Note", line.reference)
    _cbc(
        el, "CreditedQuantity" if credit else "InvoicedQuantity", quantity_text(line.quantity), unitCode=line.unit_code
    )
    _amount(el, "LineExtensionAmount", line.net_amount, doc.currency)
    if line.period_start and line.period_end:
        _period(el, line.period_start, line.period_end)
    item = _cac(el, "Item")
    _cbc(item, "Description", line.group)
    _cbc(item, "Name", line.description)
    if line.item_id:
        _cbc(_cac(item, "SellersItemIdentification"), "ID", line.item_id)
    # Line-level exemption reasons are not part of EN 16931's line VAT information (BG-30).
    _tax_category(item, "ClassifiedTaxCategory", line.vat.category, line.vat.rate)
    price = _cac(el, "Price")
    _cbc(price, "PriceAmount", decimal_text(line.unit_price), currencyID=doc.currency)


def document_note(doc: Document) -> str:
    """The one document-level note: the free note and the exchange rate sentence."""
    parts = [doc.note.strip()] if doc.note.strip() else []
    if doc.exchange_rate is not None:
        parts.append(labels.exchange_rate_sentence(doc.exchange_rate, doc.currency, doc.language))
    return "\n".join(parts)


def build(doc: Document) -> etree._Element:
    """The UBL document as an lxml element tree root."""
    credit = doc.is_credit_note
    root_ns = NS_CREDIT_NOTE if credit else NS_INVOICE
    root = etree.Element(
        f"{{{root_ns}}}{'CreditNote' if credit else 'Invoice'}", nsmap={None: root_ns, "cac": NS_CAC, "cbc": NS_CBC}
    )
    has_out_of_scope = any(b.category is VatCategory.OUT_OF_SCOPE for b in doc.totals.vat_breakdown)
    with_vat_ids = not has_out_of_scope  # BR-O-02

    _cbc(root, "CustomizationID", CUSTOMIZATION_ID)
    _cbc(root, "ProfileID", PROFILE_ID)
    _cbc(root, "ID", doc.number)
    _cbc(root, "IssueDate", _date(doc.issue_date))
    if credit:
        _cbc(root, "CreditNoteTypeCode", doc.kind.value)
    else:
        if doc.due_date:
            _cbc(root, "DueDate", _date(doc.due_date))
        _cbc(root, "InvoiceTypeCode", doc.kind.value)
    note = document_note(doc)
    if note:
        _cbc(root, "Note", note)
    _cbc(root, "DocumentCurrencyCode", doc.currency)
    _cbc(root, "BuyerReference", doc.buyer_reference or doc.number)
    period = doc.period
    if period:
        _period(root, *period)
    if doc.preceding_invoice is not None:
        ref = _cac(_cac(root, "BillingReference"), "InvoiceDocumentReference")
        _cbc(ref, "ID", doc.preceding_invoice.number)
        _cbc(ref, "IssueDate", _date(doc.preceding_invoice.issue_date))
    if doc.portal_url:
        ref = _cac(root, "AdditionalDocumentReference")
        _cbc(ref, "ID", doc.number)
        _cbc(ref, "DocumentDescription", labels.label("portal", doc.language))
        _cbc(_cac(_cac(ref, "Attachment"), "ExternalReference"), "URI", doc.portal_url)

    _party(_cac(root, "AccountingSupplierParty"), doc.seller, with_vat_id=with_vat_ids, is_seller=True)
    _party(_cac(root, "AccountingCustomerParty"), doc.buyer, with_vat_id=with_vat_ids, is_seller=False)

    if doc.bank is not None or (credit and doc.due_date):
        means = _cac(root, "PaymentMeans")
        _cbc(means, "PaymentMeansCode", PAYMENT_MEANS_CREDIT_TRANSFER)
        if credit and doc.due_date:
            _cbc(means, "PaymentDueDate", _date(doc.due_date))
        _cbc(means, "PaymentID", doc.number)
        if doc.bank is not None:
            account = _cac(means, "PayeeFinancialAccount")
            _cbc(account, "ID", doc.bank.iban.replace(" ", ""))
            if doc.bank.account_name:
                _cbc(account, "Name", doc.bank.account_name)
            if doc.bank.bic:
                _cbc(_cac(account, "FinancialInstitutionBranch"), "ID", doc.bank.bic)
    if doc.payment_terms:
        _cbc(_cac(root, "PaymentTerms"), "Note", doc.payment_terms)

    totals = doc.totals
    tax_total = _cac(root, "TaxTotal")
    _amount(tax_total, "TaxAmount", totals.tax_total, doc.currency)
    for entry in totals.vat_breakdown:
        sub = _cac(tax_total, "TaxSubtotal")
        _amount(sub, "TaxableAmount", entry.taxable_amount, doc.currency)
        _amount(sub, "TaxAmount", entry.tax_amount, doc.currency)
        _tax_category(sub, "TaxCategory", entry.category, entry.rate, entry.exemption_code, entry.exemption_reason)

    monetary = _cac(root, "LegalMonetaryTotal")
    _amount(monetary, "LineExtensionAmount", totals.line_extension, doc.currency)
    _amount(monetary, "TaxExclusiveAmount", totals.tax_exclusive, doc.currency)
    _amount(monetary, "TaxInclusiveAmount", totals.tax_inclusive, doc.currency)
    _amount(monetary, "PayableAmount", totals.payable, doc.currency)

    for line in doc.lines:
        _line(root, doc, line)
    return root


def render(doc: Document) -> bytes:
    """The UBL document as UTF-8 XML bytes with an XML declaration."""
    return etree.tostring(build(doc), xml_declaration=True, encoding="UTF-8", pretty_print=True)
