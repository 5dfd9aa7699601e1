from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

# The official test data lives beside the project: <project>/../shared/verify.
VERIFY = Path(__file__).resolve().parents[2] / ".." / "shared" / "verify"
UBL_XSD = VERIFY / "ubl-2.1" / "xsd" / "maindoc"


def verify_dir(*parts: str) -> Path:
    """A folder of the official test data, or skip the test saying why."""
    path = VERIFY.joinpath(*parts)
    if not path.is_dir():
        pytest.skip(f"official test data not found at {path.resolve()} (expected <project>/../shared/verify)")
    return path


@pytest.fixture(scope="session")
def ubl_schemas() -> dict[str, etree.XMLSchema]:
    """The UBL 2.1 Invoice and CreditNote schemas, loaded once per session (includes resolve by file)."""
    verify_dir("ubl-2.1", "xsd", "maindoc")
    return {
        "Invoice": etree.XMLSchema(etree.parse(str(UBL_XSD / "UBL-Invoice-2.1.xsd"))),
        "CreditNote": etree.XMLSchema(etree.parse(str(UBL_XSD / "UBL-CreditNote-2.1.xsd"))),
    }
