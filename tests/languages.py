"""No English left behind: the check shared by the language tests of the portal (tests/portal/test_languages.py)
and of the staff console (tests/console/test_languages.py).

What counts as "English left behind" comes from the compiled catalogues themselves: every msgid (cspdesk's and
Django's own, singular and plural) whose translation differs from it. A page fails when such an English text,
or a long literal part of one with placeholders, appears in its visible text. Not counted:

* texts the language itself uses: an English text found inside any of the language's own translations (product
  and brand names such as Microsoft Partner Center, loanwords, abbreviations);
* short texts (fewer than four letters) and texts without letters;
* data on the page (names, product and meter names, line descriptions, ticket subjects and messages, file names,
  e-mail addresses, …): each test names the database columns that hold it (:class:`DataText`); their values are
  read and cut out of the page text before it is searched.

A second check compares words: a word the English page shows that the language's page shows too, although the
language's catalogue never uses it, is text that was never marked for translation (or a format that is not the
language's own).

The visible text is the page's text without scripts, styles and parts marked as another language (the language
switcher names each language in itself), plus the attributes a reader or a screen reader meets (``title``,
``aria-label``, ``placeholder``, ``alt``, button values).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from babel.messages.pofile import read_po
from django.conf import settings
from django.test import Client
from django.utils.translation import trans_real
from lxml import html as lxml_html

LANGUAGES = ("it", "sv", "pt-pt", "hu")
MIN_LETTERS = 4
MIN_FRAGMENT_LETTERS = 12  # a literal part of a text with placeholders counts when it is at least this long
LOCALE_DIR = Path(settings.LOCALE_PATHS[0])
WORD = re.compile(r"\b[A-Za-z]{4,}\b")
GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
BRANDS = frozenset({"cspdesk"})  # the product's own name, on pages without an organisation
PLACEHOLDER = re.compile(r"%\(\w+\)[sdfr]|%[sdfr]|\{\{[^}]*\}\}|\{\w*\}")


# ---------------------------------------------------------------- what "English left behind" is


def _letters(text: str) -> int:
    return sum(ch.isalpha() for ch in text)


def _project_plurals(lang: str) -> dict[str, list[str]]:
    """English plural msgid → its translations, from cspdesk's own catalogue (Django's compiled catalogue keys
    plurals by the singular only)."""
    with (LOCALE_DIR / trans_real.to_locale(lang) / "LC_MESSAGES" / "django.po").open("rb") as f:
        catalog = read_po(f)
    return {m.id[1]: [s for s in m.string if s] for m in catalog if isinstance(m.id, tuple) and m.string}


@functools.cache
def english_needles(lang: str) -> tuple[re.Pattern[str], frozenset[str]]:
    """A pattern that finds the English texts the language's catalogue translates, and the set of them."""
    catalog = trans_real.translation(lang)._catalog  # the compiled catalogue: cspdesk's and Django's own
    pairs: list[tuple[str, str]] = []
    for key, translated in catalog.items():
        msgid = key[0] if isinstance(key, tuple) else key
        if msgid and translated:
            pairs.append((msgid, translated))
    for plural, translations in _project_plurals(lang).items():
        pairs += [(plural, t) for t in translations]
    own_words = "\n".join(t for _, t in pairs)  # everything the language says itself
    needles: set[str] = set()
    for msgid, translated in pairs:
        if translated == msgid:
            continue
        parts = PLACEHOLDER.split(msgid)
        if len(parts) == 1:
            candidates = [msgid.strip()]
        else:
            candidates = [p.strip(" :;,.()–—-") for p in parts]
            candidates = [p for p in candidates if _letters(p) >= MIN_FRAGMENT_LETTERS and " " in p]
        for text in candidates:
            if "\n" in text or _letters(text) < MIN_LETTERS:
                continue
            if _word_pattern(text).search(own_words):
                continue
            needles.add(text)
    ordered = sorted(needles, key=len, reverse=True)
    pattern = re.compile("|".join(_word_regex(n) for n in ordered))
    return pattern, frozenset(needles)


def _word_regex(text: str) -> str:
    body = re.escape(re.sub(r"\s+", " ", text)).replace(r"\ ", r"\s+")
    start = r"(?<!\w)" if text[:1].isalnum() else ""
    end = r"(?!\w)" if text[-1:].isalnum() else ""
    return f"{start}{body}{end}"


def _word_pattern(text: str) -> re.Pattern[str]:
    return re.compile(_word_regex(text))


def visible_text(body: str) -> str:
    """What a reader sees (and hears) of a page or fragment: text, titles, labels and button values. Parts
    marked as another language (``lang="…"``, as language switchers name each language in itself) and web
    addresses are left out."""
    root = lxml_html.fromstring(body or "<p></p>")
    page_lang = root.get("lang") if root.tag == "html" else None
    for el in root.xpath("//script|//style|//template"):
        el.drop_tree()
    for el in root.xpath("//body//*[@lang]"):
        if el.get("lang") != page_lang:
            el.drop_tree()
    attrs = root.xpath("//@title|//@aria-label|//@placeholder|//@alt|//input[@type='submit' or @type='button']/@value")
    text = " ".join([root.text_content(), *map(str, attrs)])
    text = re.sub(r"https?://\S+|(?<![\w/])/[\w.-]+/[\w./?=&%#:-]*", " ", text)
    return re.sub(r"\s+", " ", text.replace("\xa0", " ").replace("\u202f", " "))


def words(text: str) -> set[str]:
    return {w.lower() for w in WORD.findall(text)}


@functools.cache
def own_vocabulary(lang: str) -> frozenset[str]:
    """Every word the language's translations use (brand names and loanwords included)."""
    catalog = trans_real.translation(lang)._catalog
    found: set[str] = set()
    for _key, translated in catalog.items():
        found |= words(translated)
    for translations in _project_plurals(lang).values():
        for t in translations:
            found |= words(t)
    return frozenset(found)


# ---------------------------------------------------------------- data, cut out before searching


Source = Callable[[], Iterable[object]]


@dataclass
class DataText:
    """The data a set of pages shows, read from the database (``sources``: callables that return the values),
    cut out of a page's text before it is searched. :meth:`forget` after a walk adds data (a new ticket)."""

    sources: list[Source]
    _values: tuple[str, ...] | None = field(default=None, repr=False)

    def forget(self) -> None:
        self._values = None

    def values(self) -> tuple[str, ...]:
        if self._values is None:
            found: set[str] = set()
            for source in self.sources:
                for value in source():
                    if isinstance(value, str) and _letters(value) >= 2:
                        found.add(re.sub(r"\s+", " ", value).strip())
                        found.update(line.strip() for line in value.splitlines() if _letters(line) >= 2)
            self._values = tuple(sorted(found, key=len, reverse=True))
        return self._values

    def without_data(self, body: str) -> str:
        text = visible_text(body)
        for value in self.values():
            if value in text:
                text = text.replace(value, " ")
        return GUID.sub(" ", text)

    def english_left(self, body: str, lang: str) -> list[str]:
        """The English texts of the catalogue found on the page."""
        pattern, _ = english_needles(lang)
        return sorted({re.sub(r"\s+", " ", m.group(0)) for m in pattern.finditer(self.without_data(body))})

    def words(self, body: str) -> set[str]:
        return words(self.without_data(body))

    def untranslated_words(self, body: str, lang: str, english: set[str]) -> list[str]:
        """Words the page shows exactly as the English page does and that the language's catalogue never uses:
        text that was never marked for translation, or a format that is not the language's own."""
        return sorted((self.words(body) & english) - own_vocabulary(lang) - BRANDS)


def column(model: type, *fields: str) -> list[Source]:
    """Sources for the distinct values of ``model``'s ``fields``."""
    return [functools.partial(lambda f: model._default_manager.values_list(f, flat=True).distinct(), f)
            for f in fields]  # fmt: skip


# ---------------------------------------------------------------- walking pages


@dataclass
class Page:
    name: str
    body: str


def get(client: Client, url: str, name: str, **headers: str) -> Page:
    resp = client.get(url, follow=True, headers=headers)
    assert resp.status_code == 200, f"{name}: {url} answered {resp.status_code}"
    return Page(name, resp.content.decode())


def post(client: Client, url: str, data: dict[str, object], name: str) -> Page:
    resp = client.post(url, data, follow=True)
    assert resp.status_code == 200, f"{name}: POST {url} answered {resp.status_code}"
    return Page(name, resp.content.decode())


def english_found(
    pages: Iterable[Page], data: DataText, lang: str, english: set[str]
) -> tuple[int, dict[str, list[str]]]:
    """How many pages were read, and for each page with English left, what was found. Every full page must be
    in ``lang`` (its ``<html lang>``)."""
    left: dict[str, list[str]] = {}
    count = 0
    for page in pages:
        count += 1
        assert f'lang="{lang}"' in page.body or "<html" not in page.body, f"{page.name} is not in {lang}"
        found = data.english_left(page.body, lang) + data.untranslated_words(page.body, lang, english)
        if found:
            left[page.name] = found
    return count, left


def report(lang: str, left: dict[str, list[str]]) -> str:
    return f"English left on the {lang} pages:\n" + "\n".join(f"  {k}: {v}" for k, v in left.items())
