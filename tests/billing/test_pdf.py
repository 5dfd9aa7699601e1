from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable

import pytest
from pypdf import PdfReader

from cspdesk.billing.documents import pdf
from cspdesk.billing.documents.model import Document
from cspdesk.billing.tax import OUT_OF_SCOPE_NOTE, REVERSE_CHARGE_NOTE

from . import fixtures

# A note with the letters a wrong font or encoding would lose.
NOTE = "Håkan Gonçalves · Győri Műhely · à la carte"
LETTERS = ("ő", "ű", "å", "ç", "à")


def _squash(text: str) -> str:
    """Text without any whitespace (text extraction moves spaces and turns NBSP into spaces)."""
    return "".join(text.split())


def _text(doc: Document) -> str:
    reader = PdfReader(io.BytesIO(pdf.render(doc)))
    return "\n".join(page.extract_text() for page in reader.pages)


def _en() -> Document:
    """English: reverse charge from Italy to an Irish business, in EUR."""
    buyer = dataclasses.replace(
        fixtures.BUYER_PT,
        name="Shannon Analytics DAC",
        vat_id="IE6388047V",
        address=dataclasses.replace(fixtures.BUYER_PT.address, city="Dublin", postal_code="D02 X285", country="IE"),
    )
    return fixtures.document(fixtures.SELLER_IT, buyer, "EUR", "en", bank=fixtures.BANK_IT)


# language → (document, expected strings: title, labels, totals, dates, quantity, VAT note)
CASES: dict[str, tuple[Callable[[], Document], tuple[str, ...]]] = {
    "en": (
        _en,
        (
            "Invoice",
            "Amount due",
            "VAT summary",
            "€1,865.61",
            "€1,234.56",
            "€0.00",
            "3 Nov 2026",
            "3 Dec 2026",
            "1,250.5",
            "Reverse charge (AE)",
            REVERSE_CHARGE_NOTE["en"],
            "Ireland",
        ),
    ),
    "it": (
        fixtures.domestic_it,
        (
            "Fattura",
            "Totale da pagare",
            "Riepilogo IVA",
            "Quantità",
            "2.276,04 €",
            "410,43 €",
            "1.865,61 €",
            "3 nov 2026",
            "3 dic 2026",
            "1.250,5",
            "22%",
            "Aliquota ordinaria (S)",
            "Tasso di cambio: 1 USD = 0,9187 EUR al 31 ott 2026 (ECB)",
        ),
    ),
    "sv": (
        fixtures.domestic_se,
        (
            "Faktura",
            "Att betala",
            "Momsspecifikation",
            "Förfallodatum",
            "26 118,46 kr",
            "5 223,69 kr",
            "3 nov. 2026",
            "3 dec. 2026",
            "1 250,5",
            "25 %",
            "Sverige",
        ),
    ),
    "pt-pt": (
        fixtures.reverse_charge_pt,
        (
            "Fatura",
            "Total a pagar",
            "Resumo do IVA",
            "Descrição",
            "Preço unitário",
            "1865,61 €",
            "1234,56 €",
            "03/11/2026",
            "03/12/2026",
            "1250,5",
            "Autoliquidação (AE)",
            REVERSE_CHARGE_NOTE["pt-pt"],
        ),
    ),
    "hu": (
        fixtures.domestic_hu,
        (
            "Számla",
            "Fizetendő összeg",
            "Áfaösszesítő",
            "Fizetési határidő",
            "913 371,94 Ft",
            "194 181,44 Ft",
            "2026. nov. 3.",
            "2026. dec. 3.",
            "1 250,5",
            "27%",
            "Általános adókulcs (S)",
            "Árfolyam: 1 EUR = 385,5 HUF",
        ),
    ),
}


@pytest.mark.parametrize("language", list(CASES))
def test_pdf_text_in_each_language(language: str) -> None:
    make, expected = CASES[language]
    doc = dataclasses.replace(make(), note=NOTE)
    assert doc.language == language
    text = _text(doc)
    squashed = _squash(text)
    for letter in LETTERS:
        assert letter in text, f"{letter!r} missing from the {language} PDF"
    for item in expected:
        assert _squash(item) in squashed, f"{item!r} missing from the {language} PDF"
    # identity, grouping, payment and portal, whatever the language
    for item in (
        doc.seller.name,
        doc.buyer.name,
        doc.seller.vat_id,
        doc.buyer.vat_id,
        doc.number,
        fixtures.M365,
        fixtures.AZURE,
        fixtures.SUPPORT,
        "recon 2026-10 rows 1–25",
        "30 days net",
        doc.bank.account_name if doc.bank else "",
        "BIC",
        "https://portal.nuvolapiu.example/invoices/123",
    ):
        assert _squash(item) in squashed, f"{item!r} missing from the {language} PDF"


def test_groups_come_in_order_with_their_lines() -> None:
    text = _squash(_text(fixtures.domestic_it()))
    positions = [
        text.index(_squash(s))
        for s in (
            fixtures.M365,
            "Microsoft365BusinessPremium(monthly)",
            "proration15Oct",
            fixtures.AZURE,
            "AzureVirtualMachines",
            "AzureBlobStorage",
            fixtures.SUPPORT,
            "Supportplan–flatmonthlyfee",
        )
    ]
    assert positions == sorted(positions)


def test_iban_is_printed_in_groups_of_four() -> None:
    assert "IT60 X054 2811 1010 0000 0123 456" in _text(fixtures.domestic_it())


def test_out_of_scope_note_and_vat_ids_are_printed() -> None:
    text = _squash(_text(fixtures.out_of_scope_us()))
    assert _squash(OUT_OF_SCOPE_NOTE["en"]) in text
    assert _squash("Not subject to VAT (O)") in text
    assert "IT00743110157" in text  # the seller's VAT number stays on the PDF even when the XML leaves it out
    assert _squash("US$1,865.61") in text


def test_jpy_amounts_have_no_decimals() -> None:
    text = _squash(_text(fixtures.out_of_scope_jpy()))
    assert "JP¥279,840" in text
    assert "JP¥279,840.00" not in text
    assert _squash("Exchange rate: 1 USD = 150.25 JPY on 31 Oct 2026 (Microsoft)") in text


def test_credit_note_names_the_invoice_it_corrects() -> None:
    text = _squash(_text(fixtures.credit_note_it()))
    assert "Notadicredito" in text
    assert _squash("Rettifica la fattura n. INV-2026-000123 del 3 nov 2026") in text
    assert _squash("638,96 €") in text


def test_credit_note_in_hungarian_uses_the_corrective_invoice_wording() -> None:
    doc = dataclasses.replace(fixtures.credit_note_it(), language="hu")
    text = _squash(_text(doc))
    assert "Helyesbítőszámla" in text
    assert _squash("A(z) INV-2026-000123 sorszámú, 2026. nov. 3. keltű számla helyesbítése") in text


def test_portal_link_is_clickable_and_font_is_embedded() -> None:
    reader = PdfReader(io.BytesIO(pdf.render(fixtures.domestic_it())))
    uris = [annot.get_object()["/A"]["/URI"] for page in reader.pages for annot in page.get("/Annots", [])]
    assert uris == ["https://portal.nuvolapiu.example/invoices/123"]
    fonts = {str(f.get_object()["/BaseFont"]) for page in reader.pages for f in page["/Resources"]["/Font"].values()}
    assert fonts and all("DejaVuSans" in name for name in fonts)
    assert reader.metadata is not None
    assert reader.metadata.title == "Fattura INV-2026-000123"


def test_rendering_is_reproducible() -> None:
    doc = fixtures.domestic_hu()
    assert pdf.render(doc) == pdf.render(doc)
    assert pdf.render(doc).startswith(b"%PDF-")


def test_documents_rendered_one_after_another_do_not_share_glyphs() -> None:
    """The parsed font is shared between documents; each document's embedded subset is its own."""
    first = pdf.render(fixtures.domestic_hu())
    for other in (fixtures.domestic_se(), fixtures.reverse_charge_pt(), fixtures.domestic_it()):
        assert pdf.render(other).startswith(b"%PDF-")
    assert "å" in _text(fixtures.domestic_se())
    assert pdf.render(fixtures.domestic_hu()) == first  # nothing the others used leaked into its subset
    assert "ő" in "".join(p.extract_text() for p in PdfReader(io.BytesIO(first)).pages)
