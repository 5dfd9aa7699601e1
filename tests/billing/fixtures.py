"""Factories for billing documents: parties in each of our countries and one document per VAT case."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from cspdesk.billing.documents.model import (
    Address,
    BankAccount,
    Document,
    DocumentKind,
    ExchangeRate,
    Line,
    Party,
    PrecedingInvoice,
    line_net_amount,
)
from cspdesk.billing.tax import VatTreatment, determine_vat

ISSUE = date(2026, 11, 3)
DUE = date(2026, 12, 3)
OCTOBER = (date(2026, 10, 1), date(2026, 10, 31))

# Sellers (partners), one per country we invoice from. VAT numbers have valid check digits.
SELLER_IT = Party(
    "Nuvola Più S.r.l.",
    Address("Via Garibaldi 7", "Milano", "20121", "IT"),
    vat_id="IT00743110157",
    registration_id="MI-1234567",
    email="fatture@nuvolapiu.example",
)
SELLER_SE = Party(
    "Molnbolaget Åre AB",
    Address("Storgatan 1", "Åre", "837 52", "SE"),
    vat_id="SE556703748501",
    registration_id="556703-7485",
    email="faktura@molnbolaget.example",
)
SELLER_HU = Party(
    "Felhőszolgáltató Kft.",
    Address("Fő utca 12.", "Budapest", "1011", "HU"),
    vat_id="HU12892312",
    registration_id="01-09-123456",
    email="szamla@felho.example",
)

# Buyers (customers).
BUYER_IT = Party(
    "Caffè Università S.p.A.",
    Address("Piazza Duomo 1", "Firenze", "50122", "IT"),
    vat_id="IT01000000016",
    email="amministrazione@caffe.example",
)
BUYER_SE = Party(
    "Kvarnå Bageri AB",
    Address("Kungsgatan 4", "Göteborg", "411 19", "SE"),
    vat_id="SE556703748501",
    email="ekonomi@kvarna.example",
)
BUYER_PT = Party(
    "Açores Tecnologia, Lda.",
    Address("Rua da Sé 20", "Ponta Delgada", "9500-106", "PT"),
    vat_id="PT501964843",
    email="contabilidade@acores.example",
)
BUYER_HU = Party(
    "Gyűrű és Fő Bt.",
    Address("Kossuth Lajos tér 1.", "Győr", "9021", "HU"),
    vat_id="HU10597190",
    email="penzugy@gyuru.example",
)
BUYER_US = Party(
    "Åkerlund Ventures Inc.",
    Address("500 Market Street", "San Francisco", "94105", "US", region="CA"),
    email="ap@akerlund.example",
)
BUYER_JP = Party(
    "Sakura Kōgyō K.K.",
    Address("1-1 Marunouchi", "Tokyo", "100-0005", "JP"),
    email="keiri@sakura.example",
)
BANK_IT = BankAccount("IT60 X054 2811 1010 0000 0123 456", "BPMOIT22XXX", "Nuvola Più S.r.l.")
BANK_SE = BankAccount("SE45 5000 0000 0583 9825 7466", "ESSESESS", "Molnbolaget Åre AB")
BANK_HU = BankAccount("HU42 1177 3016 1111 1018 0000 0000", "OTPVHUHB", "Felhőszolgáltató Kft.")

# Line specs: (description, group, quantity, unit price, reference).
M365 = "Microsoft 365 Business Premium – subscription 7c1e"
AZURE = "Azure plan – subscription 4f2a"
SUPPORT = "Support à la carte"
LINE_SPECS: tuple[tuple[str, str, str, str, str], ...] = (
    ("Microsoft 365 Business Premium (monthly)", M365, "25", "19.80", "recon 2026-10 rows 1–25"),
    ("Microsoft 365 Business Premium – proration 15 Oct", M365, "3", "9.58", "recon 2026-10 row 26"),
    ("Azure Virtual Machines – Dv5 compute hours", AZURE, "744", "0.1133", "recon 2026-10 meters"),
    ("Azure Blob Storage – hot tier GB-month", AZURE, "1250.5", "0.0184", "recon 2026-10 meters"),
    ("Support plan – flat monthly fee", SUPPORT, "1", "1234.56", ""),
)


def lines(
    currency: str,
    vat: VatTreatment,
    specs: tuple[tuple[str, str, str, str, str], ...] = LINE_SPECS,
    scale: Decimal = Decimal(1),
) -> tuple[Line, ...]:
    """Lines from specs, unit prices multiplied by ``scale`` (e.g. to price in HUF or JPY)."""
    out = []
    for i, (description, group, qty, price, ref) in enumerate(specs, start=1):
        quantity = Decimal(qty)
        unit_price = Decimal(price) * scale
        out.append(
            Line(
                id=str(i),
                description=description,
                group=group,
                quantity=quantity,
                unit_price=unit_price,
                net_amount=line_net_amount(quantity, unit_price, currency),
                vat=vat,
                unit_code="C62" if i != 3 else "HUR",
                period_start=OCTOBER[0] if i != 2 else date(2026, 10, 15),
                period_end=OCTOBER[1],
                reference=ref,
                item_id=f"SKU-{i:03d}",
            )
        )
    return tuple(out)


def document(
    seller: Party,
    buyer: Party,
    currency: str,
    language: str,
    *,
    number: str = "INV-2026-000123",
    kind: DocumentKind = DocumentKind.INVOICE,
    scale: Decimal = Decimal(1),
    bank: BankAccount | None = None,
    exchange_rate: ExchangeRate | None = None,
    preceding: PrecedingInvoice | None = None,
    specs: tuple[tuple[str, str, str, str, str], ...] = LINE_SPECS,
) -> Document:
    vat = determine_vat(
        seller_country=seller.country,
        buyer_country=buyer.country,
        buyer_vat_id=buyer.vat_id,
        language=language,
        on=OCTOBER[1],
    )
    return Document(
        kind=kind,
        number=number,
        issue_date=ISSUE,
        due_date=DUE if kind is DocumentKind.INVOICE else None,
        currency=currency,
        language=language,
        seller=seller,
        buyer=buyer,
        lines=lines(currency, vat, specs, scale),
        payment_terms="30 days net",
        bank=bank,
        portal_url="https://portal.nuvolapiu.example/invoices/123",
        exchange_rate=exchange_rate,
        preceding_invoice=preceding,
    )


def domestic_it() -> Document:
    """S: Italian seller, Italian customer, 22 %."""
    return document(
        SELLER_IT,
        BUYER_IT,
        "EUR",
        "it",
        bank=BANK_IT,
        exchange_rate=ExchangeRate("USD", Decimal("0.9187"), date(2026, 10, 31), "ECB"),
    )


def reverse_charge_pt() -> Document:
    """AE: Italian seller, Portuguese business with a valid PT VAT number."""
    return document(SELLER_IT, BUYER_PT, "EUR", "pt-pt", bank=BANK_IT)


def out_of_scope_us() -> Document:
    """O: Italian seller, US customer, invoiced in USD."""
    return document(SELLER_IT, BUYER_US, "USD", "en", bank=BANK_IT)


def out_of_scope_jpy() -> Document:
    """O in JPY (no minor unit): Swedish seller, Japanese customer."""
    return document(
        SELLER_SE,
        BUYER_JP,
        "JPY",
        "en",
        scale=Decimal(150),
        bank=BANK_SE,
        exchange_rate=ExchangeRate("USD", Decimal("150.25"), date(2026, 10, 31), "Microsoft"),
    )


def domestic_hu() -> Document:
    """S in HUF: Hungarian seller, Hungarian customer, 27 %."""
    return document(
        SELLER_HU,
        BUYER_HU,
        "HUF",
        "hu",
        scale=Decimal("385.5"),
        bank=BANK_HU,
        exchange_rate=ExchangeRate("EUR", Decimal("385.5"), date(2026, 10, 31), "MNB"),
    )


def domestic_se() -> Document:
    """S in SEK: Swedish seller, Swedish customer, 25 %."""
    return document(SELLER_SE, BUYER_SE, "SEK", "sv", scale=Decimal("11.2"), bank=BANK_SE)


def reverse_charge_hu_from_se() -> Document:
    """AE in EUR: Swedish seller, Hungarian business."""
    return document(SELLER_SE, BUYER_HU, "EUR", "hu", bank=BANK_SE)


def credit_note_it() -> Document:
    """A credit note correcting an Italian domestic invoice (two lines credited)."""
    return document(
        SELLER_IT,
        BUYER_IT,
        "EUR",
        "it",
        number="CN-2026-000007",
        kind=DocumentKind.CREDIT_NOTE,
        preceding=PrecedingInvoice("INV-2026-000123", date(2026, 11, 3)),
        specs=LINE_SPECS[:2],
        bank=BANK_IT,
    )


SCENARIOS = {
    "S-domestic-IT-EUR": domestic_it,
    "AE-IT-to-PT-EUR": reverse_charge_pt,
    "O-IT-to-US-USD": out_of_scope_us,
    "O-SE-to-JP-JPY": out_of_scope_jpy,
    "S-domestic-HU-HUF": domestic_hu,
    "S-domestic-SE-SEK": domestic_se,
    "AE-SE-to-HU-EUR": reverse_charge_hu_from_se,
    "creditnote-IT-EUR": credit_note_it,
}
