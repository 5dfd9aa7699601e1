"""The bundled Unicode fonts for every PDF cspdesk renders, parsed and subset once per process.

fpdf2 parses a TrueType font each time a document adds it (the glyph table, the character map and every
glyph width) and, when it writes the document, subsets the font with fontTools to the glyphs the document
uses: for DejaVu Sans those two steps are most of the time an invoice takes to render. Here both are shared:

* The parsed metrics never change, so they are read once; each document still gets its own font object and
  its own glyph map (:class:`fpdf.fonts.SubsetMap`), so nothing one document writes is seen by another.
* The embedded font program depends only on the set of glyphs it must hold, so it is made by fontTools with
  fpdf2's own subsetting options once per set and kept (a bounded cache); a new set is cut from a small font
  of every glyph used so far rather than from the whole font, which gives the same bytes. fpdf2 still runs
  its subsetting step, on an empty stand-in font (:class:`_Embedding`) that hands it the cached program and
  glyph ids.
* The embedded font holds every printable ASCII glyph besides the glyphs the document uses (about 8 KB more
  per invoice PDF, regular and bold): invoices differ mostly in which ASCII letters and digits their names
  and addresses happen to use, so without them nearly every invoice needed a subset of its own, each costing
  fontTools tens of milliseconds; with them a month's invoices share a handful of sets (by language and
  accented letters). The set still depends only on the document, so the same document gives the same bytes.
* Text widths, which fpdf2's line breaking asks for every prefix of a line, are added up from the previous
  prefix's width instead of from scratch (same integers, so the same layout).
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

from fontTools import subset as ftsubset
from fontTools import ttLib
from fpdf import FPDF
from fpdf.fonts import SubsetMap, TTFFont

FONT_DIR: Final = Path(__file__).resolve().parents[1] / "billing" / "documents" / "fonts"
FAMILY: Final = "DejaVuSans"
FILES: Final = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf"}

# Read-only after parsing: shared by every document's copy of the font.
_SHARED: Final = ("type", "name", "desc", "glyph_ids", "sp", "ss", "up", "ut", "cw", "ttffile", "fontkey",
                  "emphasis", "scale", "cmap", "unicode_range", "is_compressed", "is_cff", "is_cid_keyed",
                  "is_symbol", "cff_ros", "collection_font_number", "palette_index")  # fmt: skip

# The tables fpdf2 2.8 drops when it subsets a font for embedding (fpdf/output.py, OutputProducer._add_fonts).
_DROP_TABLES: Final = ("FFTM", "GDEF", "GPOS", "GSUB", "MATH", "hdmx", "meta", "sbix", "CBDT", "CBLC", "EBDT",
                       "EBLC", "EBSC", "SVG ", "CPAL", "COLR")  # fmt: skip
_SUBSETS_KEPT: Final = 256
_WIDTHS_KEPT: Final = 200_000


def _options(*, glyph_names: bool = False) -> ftsubset.Options:
    """fpdf2's subsetting options (``glyph_names`` keeps the names in an intermediate font)."""
    options = ftsubset.Options(notdef_outline=True, recommended_glyphs=True, glyph_names=glyph_names)
    options.drop_tables += list(_DROP_TABLES)
    return options


@dataclass(frozen=True)
class _Subset:
    data: bytes
    glyph_ids: dict[str, int]


class _Source:
    """One font file: its parsed template, and the subsets of it made so far."""

    def __init__(self, family: str, style: str, path: Path) -> None:
        scratch = FPDF()
        scratch.add_font(family, style, path)
        self.template: TTFFont = scratch.fonts[f"{family.lower()}{style}"]  # type: ignore[assignment]
        self.data = path.read_bytes()
        self.glyph_order: tuple[str, ...] = tuple(self.template.ttfont.getGlyphOrder())
        self.glyph_index: dict[str, int] = {name: gid for gid, name in enumerate(self.glyph_order)}
        self.template.ttfont.close()
        self._lock = threading.Lock()
        self._subsets: OrderedDict[frozenset[str], _Subset] = OrderedDict()
        # A font holding every glyph subset so far (and its names), to subset from instead of the whole font.
        self._seen: frozenset[str] = frozenset()
        self._seen_data = b""
        self.widths: dict[str, float] = {}
        cmap = self.template.cmap
        self.base: frozenset[str] = frozenset(cmap[c] for c in range(0x20, 0x7F) if c in cmap)

    def subset(self, names: Iterable[str]) -> _Subset:
        key = frozenset(names)
        with self._lock:
            found = self._subsets.get(key)
            if found is not None:
                self._subsets.move_to_end(key)
                return found
            if not key <= self._seen:
                self._seen = self._seen | key
                self._seen_data = self._make(self.data, self._seen, glyph_names=True)
            font = self._open(self._seen_data)
            self._run(font, key, glyph_names=False)
            glyph_ids = {name: gid for gid, name in enumerate(font.getGlyphOrder())}
            subset = _Subset(self._save(font), glyph_ids)
            self._subsets[key] = subset
            if len(self._subsets) > _SUBSETS_KEPT:
                self._subsets.popitem(last=False)
            return subset

    def _make(self, data: bytes, names: frozenset[str], *, glyph_names: bool) -> bytes:
        font = self._open(data)
        # Every code point of a kept glyph stays mapped, as it would be when subsetting the whole font.
        unicodes = [u for u, name in self.template.cmap.items() if name in names]
        self._run(font, names, glyph_names=glyph_names, unicodes=unicodes)
        return self._save(font)

    @staticmethod
    def _open(data: bytes) -> ttLib.TTFont:
        return ttLib.TTFont(io.BytesIO(data), recalcTimestamp=False, lazy=True)

    @staticmethod
    def _run(font: ttLib.TTFont, names: Iterable[str], *, glyph_names: bool, unicodes: Iterable[int] = ()) -> None:
        subsetter = ftsubset.Subsetter(_options(glyph_names=glyph_names))
        subsetter.populate(glyphs=list(names), unicodes=list(unicodes))
        subsetter.subset(font)

    @staticmethod
    def _save(font: ttLib.TTFont) -> bytes:
        out = io.BytesIO()
        font.save(out)
        font.close()
        return out.getvalue()


class _Embedding(ttLib.TTFont):
    """What fpdf2 subsets and embeds for one document's font: an empty font standing in for the cached subset
    of the document's glyphs (fpdf2 only subsets it, asks glyph ids and saves it). Its glyph order is just
    the document's glyphs, in the font's order: fontTools walks the whole order when it subsets."""

    def __init__(self, font: SharedFont, source: _Source) -> None:
        super().__init__()
        self._font = font
        self._source = source
        self._made: _Subset | None = None

    def _subset(self) -> _Subset:
        if self._made is None:
            self._made = self._source.subset(self._source.base.union(self._font.subset.get_all_glyph_names()))
        return self._made

    def getGlyphOrder(self) -> list[str]:
        if not hasattr(self, "glyphOrder"):
            names = {self._source.glyph_order[0], *self._font.subset.get_all_glyph_names()}
            self.setGlyphOrder(sorted(names, key=self._source.glyph_index.__getitem__))
        return super().getGlyphOrder()

    def getGlyphID(self, glyphName: str) -> int:
        return self._subset().glyph_ids[glyphName]

    def save(self, file: str | IO[bytes], reorderTables: bool | None = True) -> None:
        if isinstance(file, str):
            Path(file).write_bytes(self._subset().data)
        else:
            file.write(self._subset().data)


class SharedFont(TTFFont):
    """A document's copy of a parsed bundled font (see the module docstring)."""

    __slots__ = ("_source",)
    _source: _Source

    def get_text_width(self, text: str, font_size_pt: float, text_shaping_params: Any) -> tuple[int, float]:
        if text_shaping_params or self.is_symbol:
            return super().get_text_width(text, font_size_pt, text_shaping_params)
        if font_size_pt > self.biggest_size_pt:
            self.biggest_size_pt = font_size_pt
        widths = self._source.widths
        found = widths.get(text)
        if found is None:
            # fpdf2's sum of the (integer) glyph widths, from the line's previous prefix when known.
            cw = self.cw
            before = widths.get(text[:-1]) if len(text) > 1 else None
            units = before + cw[ord(text[-1])] if before is not None else sum(cw[ord(c)] for c in text)
            if len(widths) >= _WIDTHS_KEPT:
                widths.clear()
            widths[text] = units
        else:
            units = found
        return len(text), units * font_size_pt * 0.001


_lock = threading.Lock()
_sources: dict[tuple[str, str, str], _Source] = {}


def _source(family: str, style: str, path: Path) -> _Source:
    key = (family.lower(), style, str(path))
    with _lock:
        if key not in _sources:
            _sources[key] = _Source(family, style, path)
        return _sources[key]


def add_font(pdf: FPDF, family: str, style: str, path: Path) -> None:
    """``pdf.add_font(family, style, path)``, from the parsed copy."""
    source = _source(family, style, path)
    template = source.template
    font = SharedFont.__new__(SharedFont)
    for name in _SHARED:
        if hasattr(template, name):
            setattr(font, name, getattr(template, name))
    font._source = source
    font.i = len(pdf.fonts) + 1
    font.ttfont = _Embedding(font, source)
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
