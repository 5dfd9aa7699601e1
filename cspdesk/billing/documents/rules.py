"""EN 16931 business rules checked on a UBL 2.1 Invoice or CreditNote.

A subset of the CEN/TC 434 rules (and Peppol's PEPPOL-EN16931-R120), the ones our documents can break: the
calculation rules (BR-CO-10 … BR-CO-17), the VAT breakdown per category and
rate (BR-S-08, BR-AE-08, BR-O-08, BR-Z-08, BR-E-08), and the category rules
BR-S-*, BR-Z-*, BR-E-*, BR-AE-*, BR-O-*. It reads the XML, not the model, so it
checks what is actually sent, and it can be run on anyone's UBL.

Rounding (BR-CO-17): a category's VAT amount is its taxable amount × rate /
100 rounded half-up to the currency's minor unit (two decimals for EUR, SEK,
HUF; none for JPY, which has no fractional unit).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal

from lxml import etree

from cspdesk.core.money import is_currency, minor_units, quantize

NS = {
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
}
ZERO = Decimal(0)


@dataclass(frozen=True)
class Violation:
    rule: str
    message: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.message}"


def _dec(el: etree._Element | None) -> Decimal:
    if el is None or el.text is None:
        return ZERO
    return Decimal(el.text.strip())


def _one(root: etree._Element, path: str) -> etree._Element | None:
    found = root.find(path, NS)
    return found


def _text(root: etree._Element, path: str) -> str:
    el = root.find(path, NS)
    return (el.text or "").strip() if el is not None else ""


def _tax_key(category_el: etree._Element) -> tuple[str, Decimal | None]:
    cat = _text(category_el, "cbc:ID")
    pct = category_el.find("cbc:Percent", NS)
    return cat, (_dec(pct) if pct is not None else None)


def _rate(key: tuple[str, Decimal | None]) -> Decimal:
    return key[1] if key[1] is not None else ZERO


def _has_vat_id(party: etree._Element | None) -> bool:
    if party is None:
        return False
    for scheme in party.findall("cac:PartyTaxScheme", NS):
        if _text(scheme, "cac:TaxScheme/cbc:ID") == "VAT" and _text(scheme, "cbc:CompanyID"):
            return True
    return False


def check(root: etree._Element) -> list[Violation]:
    """All rule violations found in the document (an empty list when it passes)."""
    out: list[Violation] = []

    def fail(rule: str, message: str) -> None:
        out.append(Violation(rule, message))

    is_credit = etree.QName(root).localname == "CreditNote"
    line_tag = "cac:CreditNoteLine" if is_credit else "cac:InvoiceLine"
    currency = _text(root, "cbc:DocumentCurrencyCode")

    for rule, path in (
        ("BR-01", "cbc:CustomizationID"),
        ("BR-02", "cbc:ID"),
        ("BR-03", "cbc:IssueDate"),
        ("BR-05", "cbc:DocumentCurrencyCode"),
    ):
        if not _text(root, path):
            fail(rule, f"{path} is missing")
    if not is_currency(currency):
        fail("BR-05", f"document currency {currency!r} is not ISO 4217")
        return out
    lines = root.findall(line_tag, NS)
    if not lines:
        fail("BR-16", "the document has no lines")

    def q(value: Decimal) -> Decimal:
        return quantize(value, currency)

    digits = minor_units(currency)
    for el in root.iter(f"{{{NS['cbc']}}}*"):
        if el.get("currencyID") == currency and etree.QName(el).localname != "PriceAmount":
            exponent = _dec(el).as_tuple().exponent
            if isinstance(exponent, int) and -exponent > max(digits, 0) and _dec(el) != q(_dec(el)):
                fail("BR-DEC", f"{etree.QName(el).localname} {el.text} has more decimals than {currency} allows")

    # Calculation rules.
    monetary = _one(root, "cac:LegalMonetaryTotal")
    if monetary is None:
        fail("BR-12", "LegalMonetaryTotal is missing")
        return out
    line_ext = _dec(_one(monetary, "cbc:LineExtensionAmount"))
    tax_excl = _dec(_one(monetary, "cbc:TaxExclusiveAmount"))
    tax_incl = _dec(_one(monetary, "cbc:TaxInclusiveAmount"))
    payable = _dec(_one(monetary, "cbc:PayableAmount"))
    prepaid = _dec(_one(monetary, "cbc:PrepaidAmount"))
    rounding = _dec(_one(monetary, "cbc:PayableRoundingAmount"))
    allowance_total = _dec(_one(monetary, "cbc:AllowanceTotalAmount"))
    charge_total = _dec(_one(monetary, "cbc:ChargeTotalAmount"))

    line_sum = sum((_dec(_one(line, "cbc:LineExtensionAmount")) for line in lines), ZERO)
    if line_ext != line_sum:
        fail("BR-CO-10", f"sum of line net amounts is {line_sum}, LineExtensionAmount says {line_ext}")
    doc_charges = root.findall("cac:AllowanceCharge", NS)
    allowances = [c for c in doc_charges if _text(c, "cbc:ChargeIndicator") == "false"]
    charges = [c for c in doc_charges if _text(c, "cbc:ChargeIndicator") == "true"]
    allowance_sum = sum((_dec(_one(c, "cbc:Amount")) for c in allowances), ZERO)
    charge_sum = sum((_dec(_one(c, "cbc:Amount")) for c in charges), ZERO)
    if allowance_total != allowance_sum:
        fail("BR-CO-11", f"allowances sum to {allowance_sum}, AllowanceTotalAmount says {allowance_total}")
    if charge_total != charge_sum:
        fail("BR-CO-12", f"charges sum to {charge_sum}, ChargeTotalAmount says {charge_total}")
    if tax_excl != line_ext - allowance_total + charge_total:
        fail("BR-CO-13", f"TaxExclusiveAmount {tax_excl} ≠ {line_ext} − {allowance_total} + {charge_total}")

    # The TaxTotal in the document currency; a second one may give the VAT in the accounting currency (BT-111).
    tax_totals = [
        t
        for t in root.findall("cac:TaxTotal", NS)
        if any(a.get("currencyID") == currency for a in t.findall("cbc:TaxAmount", NS))
    ]
    subtotals = [s for t in tax_totals for s in t.findall("cac:TaxSubtotal", NS)]
    vat_total = sum((_dec(_one(t, "cbc:TaxAmount")) for t in tax_totals), ZERO)
    subtotal_sum = sum((_dec(_one(s, "cbc:TaxAmount")) for s in subtotals), ZERO)
    if vat_total != subtotal_sum:
        fail("BR-CO-14", f"VAT total {vat_total} ≠ sum of VAT category amounts {subtotal_sum}")
    if tax_incl != tax_excl + vat_total:
        fail("BR-CO-15", f"TaxInclusiveAmount {tax_incl} ≠ {tax_excl} + {vat_total}")
    if payable != tax_incl - prepaid + rounding:
        fail("BR-CO-16", f"PayableAmount {payable} ≠ {tax_incl} − {prepaid} + {rounding}")
    if not subtotals:
        fail("BR-CO-18", "no VAT breakdown")
    if (
        not is_credit
        and payable > 0
        and not (_text(root, "cbc:DueDate") or root.find("cac:PaymentTerms/cbc:Note", NS) is not None)
    ):
        fail("BR-CO-25", "an amount is due but there is neither a due date nor payment terms")

    # Parties.
    seller = _one(root, "cac:AccountingSupplierParty/cac:Party")
    buyer = _one(root, "cac:AccountingCustomerParty/cac:Party")
    seller_vat = _has_vat_id(seller)
    buyer_vat = _has_vat_id(buyer)
    if seller is not None and not (
        seller_vat
        or _text(seller, "cac:PartyIdentification/cbc:ID")
        or _text(seller, "cac:PartyLegalEntity/cbc:CompanyID")
    ):
        fail("BR-CO-26", "the seller has no identifier, legal registration id or VAT id")
    for party in (seller, buyer):
        if party is None:
            continue
        for scheme in party.findall("cac:PartyTaxScheme", NS):
            vat_id = _text(scheme, "cbc:CompanyID")
            if _text(scheme, "cac:TaxScheme/cbc:ID") == "VAT" and not (
                len(vat_id) > 2 and vat_id[:2].isalpha() and vat_id[:2].isupper()
            ):
                fail("BR-CO-09", f"VAT identifier {vat_id!r} has no ISO 3166-1 country prefix")

    # PEPPOL-EN16931-R120: line net = quantity × price / base quantity + line charges − line allowances,
    # within 0.02, for Peppol documents only. A currency without minor unit (JPY) can miss it when the
    # unit price has decimals.
    quantity_tag = "cbc:CreditedQuantity" if is_credit else "cbc:InvoicedQuantity"
    is_peppol = "peppol.eu" in _text(root, "cbc:CustomizationID")
    for line in lines if is_peppol else []:
        price_el = _one(line, "cac:Price/cbc:PriceAmount")
        if price_el is None:
            continue
        base_el = _one(line, "cac:Price/cbc:BaseQuantity")
        base = _dec(base_el) if base_el is not None else Decimal(1)
        line_charges = line.findall("cac:AllowanceCharge", NS)
        adjust = sum(
            (
                (1 if _text(c, "cbc:ChargeIndicator") == "true" else -1) * _dec(_one(c, "cbc:Amount"))
                for c in line_charges
            ),
            ZERO,
        )
        expected_net = _dec(_one(line, quantity_tag)) * _dec(price_el) / (base or Decimal(1)) + adjust
        net = _dec(_one(line, "cbc:LineExtensionAmount"))
        if abs(net - expected_net) > Decimal("0.02"):
            fail(
                "PEPPOL-EN16931-R120",
                f"line {_text(line, 'cbc:ID')}: net amount {net} is not quantity × price ({expected_net})",
            )

    # VAT breakdown per (category, rate), against the lines and document-level allowances/charges.
    line_keys: dict[tuple[str, Decimal | None], Decimal] = {}
    for line in lines:
        cat_el = _one(line, "cac:Item/cac:ClassifiedTaxCategory")
        if cat_el is None:
            fail("BR-CO-04", f"line {_text(line, 'cbc:ID')} has no VAT category")
            continue
        key = _tax_key(cat_el)
        line_keys[key] = line_keys.get(key, ZERO) + _dec(_one(line, "cbc:LineExtensionAmount"))
    for allowance_charge, sign in [(c, -1) for c in allowances] + [(c, 1) for c in charges]:
        cat_el = _one(allowance_charge, "cac:TaxCategory")
        if cat_el is not None:
            key = _tax_key(cat_el)
            line_keys[key] = line_keys.get(key, ZERO) + sign * _dec(_one(allowance_charge, "cbc:Amount"))
    breakdown: dict[tuple[str, Decimal | None], etree._Element] = {}
    for sub in subtotals:
        cat_el = _one(sub, "cac:TaxCategory")
        if cat_el is None:
            fail("BR-CO-18", "a VAT breakdown has no VAT category")
            continue
        key = _tax_key(cat_el)
        if key in breakdown:
            fail("BR-CO-18", f"VAT category {key[0]} at {key[1]}% appears twice in the breakdown")
        breakdown[key] = sub
        taxable = _dec(_one(sub, "cbc:TaxableAmount"))
        amount = _dec(_one(sub, "cbc:TaxAmount"))
        expected_taxable = line_keys.get(key, ZERO)
        if taxable != expected_taxable:
            fail(
                f"BR-{_family(key[0])}-08",
                f"category {key[0]} at {key[1]}%: taxable amount {taxable}, lines sum to {expected_taxable}",
            )
        expected_tax = q(taxable * _rate(key) / Decimal(100))
        if amount != expected_tax:
            fail("BR-CO-17", f"category {key[0]} at {key[1]}%: VAT {amount}, expected {expected_tax}")
    for key in line_keys:
        if key not in breakdown:
            fail(f"BR-{_family(key[0])}-01", f"lines of category {key[0]} at {key[1]}% have no VAT breakdown")

    _category_rules(fail, line_keys, breakdown, seller_vat, buyer_vat, buyer)
    return out


_FAMILY = {"S": "S", "Z": "Z", "E": "E", "AE": "AE", "K": "IC", "G": "G", "O": "O", "L": "IG", "M": "IP"}


def _family(category: str) -> str:
    return _FAMILY.get(category, category)


_Fail = Callable[[str, str], None]


def _category_rules(
    fail: _Fail,
    line_keys: dict[tuple[str, Decimal | None], Decimal],
    breakdown: dict[tuple[str, Decimal | None], etree._Element],
    seller_vat: bool,
    buyer_vat: bool,
    buyer: etree._Element | None,
) -> None:
    categories = {k[0] for k in line_keys} | {k[0] for k in breakdown}
    for key, sub in breakdown.items():
        cat, rate = key
        cat_el = _one(sub, "cac:TaxCategory")
        assert cat_el is not None
        has_reason = bool(_text(cat_el, "cbc:TaxExemptionReasonCode") or _text(cat_el, "cbc:TaxExemptionReason"))
        amount = _dec(_one(sub, "cbc:TaxAmount"))
        fam = _family(cat)
        if cat == "S":
            if has_reason:
                fail("BR-S-10", "a standard-rated VAT breakdown cannot have an exemption reason")
            if rate is None or rate <= 0:
                fail("BR-48", "a standard-rated VAT breakdown needs a rate above 0")
        elif cat == "Z":
            if has_reason:
                fail("BR-Z-10", "a zero-rated VAT breakdown cannot have an exemption reason")
        elif not has_reason:
            fail(f"BR-{fam}-10", f"the {cat} VAT breakdown needs an exemption reason code or text")
        if cat == "O":
            if rate is not None:
                fail("BR-O-05", "a VAT breakdown of category O cannot have a rate")
        elif cat != "S" and rate != 0:
            fail(f"BR-{fam}-05", f"the {cat} VAT breakdown must have rate 0, has {rate}")
        if cat != "S" and amount != 0:
            fail(f"BR-{fam}-09", f"the {cat} VAT amount must be 0, is {amount}")
    for cat, rate in line_keys:
        fam = _family(cat)
        if cat == "S" and (rate is None or rate <= 0):
            fail("BR-S-05", "a standard-rated line needs a rate above 0")
        if cat == "O" and rate is not None:
            fail("BR-O-05", "a line of category O cannot have a VAT rate")
        if cat not in ("S", "O") and rate != 0:
            fail(f"BR-{fam}-05", f"a line of category {cat} must have rate 0, has {rate}")
    if {"S", "Z", "E", "AE", "K", "G"} & categories and not seller_vat:
        for cat in sorted({"S", "Z", "E", "AE", "K", "G"} & categories):
            fail(f"BR-{_family(cat)}-02", f"category {cat} needs the seller's VAT identifier")
    if "AE" in categories and not (
        buyer_vat or (buyer is not None and _text(buyer, "cac:PartyLegalEntity/cbc:CompanyID"))
    ):
        fail("BR-AE-02", "reverse charge needs the buyer's VAT identifier or legal registration id")
    if "K" in categories and not buyer_vat:
        fail("BR-IC-02", "an intra-community supply needs the buyer's VAT identifier")
    if "O" in categories:
        if seller_vat or buyer_vat:
            fail("BR-O-02", "a document with category O cannot carry the seller's or the buyer's VAT identifier")
        if len(breakdown) > 1:
            fail("BR-O-11", "a document with category O cannot have other VAT breakdowns")
        if any(k[0] != "O" for k in line_keys):
            fail("BR-O-12", "a document with category O cannot have lines of other categories")


def assert_valid(root: etree._Element) -> None:
    """Raise ``ValueError`` listing every violation; return quietly when the document passes."""
    problems = check(root)
    if problems:
        raise ValueError("EN 16931 rules broken:\n" + "\n".join(str(p) for p in problems))


def rules_of(violations: Iterable[Violation]) -> set[str]:
    return {v.rule for v in violations}
