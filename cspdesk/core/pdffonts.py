"""The bundled Unicode fonts for every PDF cspdesk renders, parsed once per process.

fpdf2 parses a TrueType font each time a document adds it (the glyph table, the character map and every
glyph width): for DejaVu Sans that is most of the time an invoice takes to render. The parsed metrics never
change, so they are read once and shared; each document still gets its own font file object and its own
glyph subset, because fpdf2 subsets the embedded font in place when it writes the document.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Final

from fontTools import ttLib
from fpdf import FPDF
from fpdf.fonts import SubsetMap, TTFFont

FONT_DIR: Final = Path(__file__).resolve().parents[1] / "billing" / "documents" / "fonts"
FAMILY: Final = "DejaVuSans"
FILES: Final = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf"}

_lock = threading.Lock()
_parsed: dict[tuple[str, str], tuple[TTFFont, bytes]] = {}

# Read-only after parsing: shared by every document's copy of the font.
_SHARED: Final = ("type", "name", "desc", "glyph_ids", "sp", "ss", "up", "ut", "cw", "ttffile", "fontkey",
                  "emphasis", "scale", "cmap", "unicode_range", "is_compressed", "is_cff", "is_cid_keyed",
                  "is_symbol", "cff_ros", "collection_font_number", "palette_index")  # fmt: skip


def _template(family: str, style: str, path: Path) -> tuple[TTFFont, bytes]:
    key = (f"{family.lower()}{style}", str(path))
    with _lock:
        if key not in _parsed:
            scratch = FPDF()
            scratch.add_font(family, style, path)
            _parsed[key] = (scratch.fonts[key[0]], path.read_bytes())  # type: ignore[assignment]
        return _parsed[key]


def add_font(pdf: FPDF, family: str, style: str, path: Path) -> None:
    """``pdf.add_font(family, style, path)``, from the parsed copy."""
    template, data = _template(family, style, path)
    font = TTFFont.__new__(TTFFont)
    for name in _SHARED:
        if hasattr(template, name):
            setattr(font, name, getattr(template, name))
    font.i = len(pdf.fonts) + 1
    font.ttfont = ttLib.TTFont(io.BytesIO(data), recalcTimestamp=False, lazy=True)  # subset in place per document
    font._hbfont = None
    font.biggest_size_pt = 0
    font.missing_glyphs = []
    font.color_font = None
    font.subset = SubsetMap(font)
    pdf.fonts[template.fontkey] = font


def add_bundled_fonts(pdf: FPDF, family: str = FAMILY) -> None:
    """DejaVu Sans, regular and bold, under ``family``."""
    for style, name in FILES.items():
        add_font(pdf, family, style, FONT_DIR / name)
