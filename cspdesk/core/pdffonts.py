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
  Likewise every document's codes begin with those glyphs, in code-point order (codes are otherwise given in
  the order a document first uses each glyph, so no two invoices had the same): documents then differ only in
  the order they first use their other letters, and share the font's widths, ToUnicode and CIDToGIDMap.
* Text widths, which fpdf2's line breaking asks for every prefix of a line, are added up from the previous
  prefix's width instead of from scratch (same integers, so the same layout).
* A document's text is encoded to the font's codes a character at a time from a table kept with the document's
  font, instead of through fpdf2's per-character calls (:meth:`SharedFont.encode_text`).
* Writing the document (:class:`OutputProducer`) writes the same font objects as fpdf2's ``_add_fonts``, but
  takes the compressed font program from the cached subset instead of compressing it again, and builds the
  widths, the ToUnicode map and the CID-to-glyph map once per code assignment (a document assigns codes in the
  order it first uses each glyph, so documents set out alike share them). ``test_render_output`` checks that
  the bytes are fpdf2's own.
"""

from __future__ import annotations

import io
import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

from fontTools import subset as ftsubset
from fontTools import ttLib
from fpdf import FPDF
from fpdf import output as fpdf_output
from fpdf.fonts import Glyph, PDFFontDescriptor, SubsetMap, TTFFont
from fpdf.syntax import Name, PDFArray, PDFContentStream, PDFObject, build_obj_dict
from fpdf.util import escape_parens

if TYPE_CHECKING:
    from fpdf.encryption import StandardSecurityHandler

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
_ASSIGNMENTS_KEPT: Final = 1024


def _options(*, glyph_names: bool = False) -> ftsubset.Options:
    """fpdf2's subsetting options (``glyph_names`` keeps the names in an intermediate font)."""
    options = ftsubset.Options(notdef_outline=True, recommended_glyphs=True, glyph_names=glyph_names)
    options.drop_tables += list(_DROP_TABLES)
    return options


@dataclass(frozen=True)
class _Subset:
    data: bytes
    glyph_ids: dict[str, int]
    # the font program as fpdf2 embeds it (its FontFile2 stream)
    compressed: bytes


@dataclass(frozen=True)
class _Assigned:
    """What fpdf2 writes for one assignment of codes to glyphs: the CIDFont's widths (W), the ToUnicode CMap and
    the compressed CIDToGIDMap."""

    widths: str
    to_unicode: bytes
    cid_to_gid: bytes


class _Source:
    """One font file: its parsed template, and the subsets of it made so far."""

    def __init__(self, family: str, style: str, path: Path) -> None:
        scratch = FPDF()
        scratch.add_font(family, style, path)
        self.template: TTFFont = scratch.fonts[f"{family.lower()}{style}"]  # type: ignore[assignment]
        descriptor = _Descriptor.__new__(_Descriptor)
        descriptor.__dict__.update(vars(self.template.desc))
        self.template.desc = descriptor
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
        self.glyphs: dict[str, Glyph | None] = {}
        self._assigned: OrderedDict[tuple[tuple[int, int, Any], ...], _Assigned] = OrderedDict()
        cmap = self.template.cmap
        self.base: frozenset[str] = frozenset(cmap[c] for c in range(0x20, 0x7F) if c in cmap)
        # Every document's codes start with the printable ASCII glyphs, picked in this order (see the module
        # docstring), so documents share their code assignments; their codes, as a document's text holds them.
        scratch_map = SubsetMap(self.template)
        self.base_glyphs: tuple[Glyph, ...] = tuple(
            g for g in (scratch_map.get_glyph(unicode=c) for c in range(0x21, 0x7F) if c in cmap) if g is not None
        )
        for glyph in self.base_glyphs:
            scratch_map.pick_glyph(glyph)
        self.base_codes: dict[str, str] = {}
        for picked, code in scratch_map.items():
            if picked is not None and isinstance(picked.unicode, tuple) and len(picked.unicode) == 1:
                char = chr(picked.unicode[0])
                self.glyphs[char] = picked
                self.base_codes[char] = escape_parens(chr(code).encode("utf-16-be").decode("latin-1"))

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
            data = self._save(font)
            subset = _Subset(data, glyph_ids, zlib.compress(data, level=PDFContentStream._COMPRESSION_LEVEL))
            self._subsets[key] = subset
            if len(self._subsets) > _SUBSETS_KEPT:
                self._subsets.popitem(last=False)
            return subset

    def assigned(self, font: SharedFont, subset: _Subset) -> _Assigned:
        """The widths, ToUnicode and CIDToGIDMap fpdf2 writes for ``font``'s codes (``subset`` holds its glyphs)."""
        items = [(glyph, code) for glyph, code in font.subset.items() if glyph is not None]
        key = tuple((code, glyph.glyph_id, glyph.unicode) for glyph, code in items)
        with self._lock:
            found = self._assigned.get(key)
            if found is not None:
                self._assigned.move_to_end(key)
                return found
        made = _Assigned(fpdf_output._tt_font_widths(font), _to_unicode(items), _cid_to_gid(items, subset))
        with self._lock:
            self._assigned[key] = made
            if len(self._assigned) > _ASSIGNMENTS_KEPT:
                self._assigned.popitem(last=False)
        return made

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


def _unicode_hex(unicode: int) -> str:
    if unicode > 0xFFFF:  # a surrogate pair
        return f"{0xD800 | (unicode - 0x10000) >> 10:04X}{0xDC00 | (unicode & 0x3FF):04X}"
    return f"{unicode:04X}"


def _to_unicode(items: list[tuple[Glyph, int]]) -> bytes:
    """fpdf2's ToUnicode CMap for a CIDFontType2 font (fpdf/output.py, OutputProducer._add_fonts)."""
    bf_char = [
        f"<{code:04X}> <{''.join(_unicode_hex(u) for u in glyph.unicode)}>\n"
        for glyph, code in items
        if isinstance(glyph.unicode, tuple) and glyph.unicode
    ]
    return (
        "/CIDInit /ProcSet findresource begin\n"
        "12 dict begin\n"
        "begincmap\n"
        "/CIDSystemInfo\n"
        "<</Registry (Adobe)\n"
        "/Ordering (UCS)\n"
        "/Supplement 0\n"
        ">> def\n"
        "/CMapName /Adobe-Identity-UCS def\n"
        "/CMapType 2 def\n"
        "1 begincodespacerange\n"
        "<0000> <FFFF>\n"
        "endcodespacerange\n"
        f"{fpdf_output._build_cmap_blocks(bf_char, 'bfchar')}"
        "endcmap\n"
        "CMapName currentdict /CMap defineresource pop\n"
        "end\n"
        "end"
    ).encode("latin-1")


def _cid_to_gid(items: list[tuple[Glyph, int]], subset: _Subset) -> bytes:
    """fpdf2's compressed CIDToGIDMap: two bytes per code of the 16-bit code space, each the code's glyph id in
    the embedded subset."""
    table = bytearray(256 * 256 * 2)
    glyph_ids = subset.glyph_ids
    for glyph, code in items:
        gid = glyph_ids[glyph.glyph_name]
        table[code * 2] = (gid >> 8) & 0xFF
        table[code * 2 + 1] = gid & 0xFF
    return zlib.compress(table, level=PDFContentStream._COMPRESSION_LEVEL)


def _own_attributes(self: PDFObject, security_handler: StandardSecurityHandler | None = None) -> dict[str, object]:
    """``PDFObject._build_obj_dict`` from the object's own attributes: the same entries, in the same (sorted)
    order, as from every name ``dir()`` lists, which for these classes adds only methods, properties and private
    names (``test_render_output`` checks it); ``dir()`` and the look-ups were most of writing a font's objects."""
    return build_obj_dict(dict(sorted(vars(self).items())), _security_handler=security_handler, _obj_id=self.id)


class _Font(fpdf_output.PDFFont):
    _build_obj_dict = _own_attributes


class _SystemInfo(fpdf_output.CIDSystemInfo):
    _build_obj_dict = _own_attributes


class _Descriptor(PDFFontDescriptor):
    _build_obj_dict = _own_attributes


class _Stream(PDFContentStream):
    _build_obj_dict = _own_attributes


class _FontStream(fpdf_output.PDFFontStream):
    _build_obj_dict = _own_attributes


def _holding(stream: PDFContentStream, compressed: bytes) -> PDFContentStream:
    """``stream`` (made compressed) holding ``compressed``, bytes compressed as fpdf2 compresses them."""
    stream._contents = compressed
    stream.length = len(compressed)
    return stream


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

    __slots__ = ("_codes", "_source")
    _source: _Source
    _codes: dict[str, str]

    def encode_text(self, text: str) -> str:
        """fpdf2's ``TTFFont.encode_text``."""
        if self.is_symbol:
            return super().encode_text(text)
        return f"({self.escaped(text)}) Tj"

    def escaped(self, text: str) -> str:
        """``text`` as a PDF string's content in this font: each character as its code in the document's subset
        (picked in the order the document first uses it, as fpdf2 picks them; kept, since a character keeps
        its code throughout a document), escaped; a character the font lacks is left out."""
        codes = self._codes
        for c in text:
            if c not in codes:
                # fpdf2's SubsetMap.pick, with the font's glyph for the character looked up once per process
                glyphs = self._source.glyphs
                glyph = glyphs.get(c)
                if glyph is None:
                    glyph = glyphs[c] = self.subset.get_glyph(unicode=ord(c))
                code = self.subset.pick(ord(c)) if glyph is None else self.subset.pick_glyph(glyph)
                codes[c] = "" if code is None else escape_parens(chr(code).encode("utf-16-be").decode("latin-1"))
        return "".join([codes[c] for c in text])

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
    for glyph in source.base_glyphs:
        font.subset.pick_glyph(glyph)
    font._codes = dict(source.base_codes)
    pdf.fonts[template.fontkey] = font


def add_bundled_fonts(pdf: FPDF, family: str = FAMILY) -> None:
    """DejaVu Sans, regular and bold, under ``family``."""
    for style, name in FILES.items():
        add_font(pdf, family, style, FONT_DIR / name)


class OutputProducer(fpdf_output.OutputProducer):
    """fpdf2's writer, writing the bundled fonts' objects from what is cached for their glyphs and codes (see the
    module docstring); any other font, or an encrypted or PDF/A document, is left to fpdf2."""

    def _add_fonts(
        self,
        image_objects_per_index: dict[int, fpdf_output.PDFXObject],
        gfxstate_objs_per_name: dict[str, fpdf_output.PDFExtGState],
        pattern_objs_per_name: dict[str, fpdf_output.Pattern],
    ) -> dict[int, fpdf_output.PDFFont | fpdf_output.PDFType3Font]:
        fpdf = self.fpdf
        fonts = sorted(fpdf.fonts.values(), key=lambda font: font.i)
        if (
            fpdf._security_handler is not None
            or fpdf._compliance
            or not all(type(font) is SharedFont and not font.color_font and not font.is_cff for font in fonts)
        ):
            return super()._add_fonts(image_objects_per_index, gfxstate_objs_per_name, pattern_objs_per_name)
        objs: dict[int, fpdf_output.PDFFont | fpdf_output.PDFType3Font] = {}
        for font in fonts:
            assert isinstance(font, SharedFont)
            objs[font.i] = self._add_shared_font(font)
        return objs

    def _add_shared_font(self, font: SharedFont) -> fpdf_output.PDFFont:
        """The objects fpdf2's ``_add_fonts`` adds for a TrueType font, in its order."""
        fontname = f"MPDFAA+{font.name}"
        if font.missing_glyphs:
            missing = ", ".join(
                f"'{chr(x)}' ({chr(x).encode('unicode-escape').decode()})" for x in font.missing_glyphs[:10]
            )
            if len(font.missing_glyphs) > 10:
                missing += f", ... (and {len(font.missing_glyphs) - 10} others)"
            fpdf_output.LOGGER.warning("Font %s is missing the following glyphs: %s", fontname, missing)
        embedding = font.ttfont
        assert isinstance(embedding, _Embedding)
        subset = embedding._subset()
        assigned = font._source.assigned(font, subset)

        composite = _Font(subtype="Type0", base_font=fontname, encoding="Identity-H")
        self._add_pdf_obj(composite, "fonts")
        cid_font = _Font(subtype="CIDFontType2", base_font=fontname, d_w=font.desc.missing_width, w=assigned.widths)
        self._add_pdf_obj(cid_font, "fonts")
        composite.descendant_fonts = PDFArray([cid_font])
        to_unicode = _Stream(assigned.to_unicode)
        self._add_pdf_obj(to_unicode, "fonts")
        composite.to_unicode = to_unicode
        system_info = _SystemInfo()
        self._add_pdf_obj(system_info, "fonts")
        cid_font.c_i_d_system_info = system_info
        descriptor = font.desc
        descriptor.font_name = Name(fontname)
        self._add_pdf_obj(descriptor, "fonts")
        cid_font.font_descriptor = descriptor
        cid_to_gid = _holding(_Stream(b"", compress=True), assigned.cid_to_gid)
        self._add_pdf_obj(cid_to_gid, "fonts")
        cid_font.c_i_d_to_g_i_d_map = cid_to_gid
        font_file = _FontStream(b"")
        _holding(font_file, subset.compressed)
        font_file.length1 = len(subset.data)
        self._add_pdf_obj(font_file, "fonts")
        descriptor.font_file2 = font_file  # type: ignore[attr-defined]

        font.subset.pick.cache_clear()
        font.subset.get_glyph.cache_clear()
        font.close()
        return composite
