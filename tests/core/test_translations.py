"""The gettext catalogues are complete: every translatable string of the project has a translation, no
entry is fuzzy, the committed .mo files say what the .po files say, and placeholders survive translation."""

from __future__ import annotations

import io
import os
import re
import shutil
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from django.core.management import call_command
from django.test import override_settings

ROOT = Path(__file__).resolve().parents[2]
LOCALE_DIR = ROOT / "cspdesk" / "locale"
LANGUAGES = ("it", "sv", "pt_PT", "hu")

# What `makemessages` reads: the same tree the catalogues are generated from.
SKIPPED_TOP_DIRS = {"var", "tests", "bench", "node_modules"}
EXTENSIONS = {".py", ".html", ".txt"}

NAMED_PLACEHOLDER = re.compile(r"%\(\w+\)[sdif]")
PLURAL_FORMS = re.compile(r'"Plural-Forms: [^"]*"')
HEADER_PLURAL_FORMS = r'"Plural-Forms: nplurals=2; plural=(n != 1);\n"'

Key = tuple[str, str | None]


def _catalogue(language: str) -> Catalog:
    with (LOCALE_DIR / language / "LC_MESSAGES" / "django.po").open("rb") as f:
        return read_po(f, abort_invalid=True)


def _singular(message_id: str | tuple[str, ...] | list[str]) -> str:
    return message_id if isinstance(message_id, str) else message_id[0]


def _strings_of(message: Message) -> tuple[str, ...]:
    """The translated forms: one, or two for a plural entry; an empty form where one is missing."""
    forms = (message.string,) if isinstance(message.string, str) else tuple(message.string)
    return forms if len(forms) == (2 if message.pluralizable else 1) else ("",)


def _strings(catalogue: Catalog) -> dict[Key, tuple[str, ...]]:
    out = {}
    for message in catalogue:
        if not message.id:
            continue
        out[(_singular(message.id), message.context)] = _strings_of(message)
    return out


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_entry_is_translated_and_none_is_fuzzy(language: str) -> None:
    catalogue = _catalogue(language)
    assert catalogue.plural_forms == "nplurals=2; plural=(n != 1);"
    assert not catalogue.fuzzy, f"{language}: the catalogue header is marked fuzzy"
    untranslated = [_singular(m.id) for m in catalogue if m.id and not all(_strings_of(m))]
    fuzzy = [_singular(m.id) for m in catalogue if m.id and m.fuzzy]
    assert not untranslated, f"{language}: untranslated: {untranslated}"
    assert not fuzzy, f"{language}: fuzzy: {fuzzy}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_translations_keep_the_placeholders(language: str) -> None:
    wrong = []
    for message in _catalogue(language):
        if not message.id:
            continue
        ids = (message.id,) if isinstance(message.id, str) else tuple(message.id)
        expected = {p for text in ids for p in NAMED_PLACEHOLDER.findall(text)}
        for form in _strings_of(message):
            if set(NAMED_PLACEHOLDER.findall(form)) != expected:
                wrong.append((ids[0], form))
    assert not wrong, f"{language}: placeholders changed: {wrong}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_committed_mo_is_compiled_from_the_po(language: str) -> None:
    mo_path = LOCALE_DIR / language / "LC_MESSAGES" / "django.mo"
    assert mo_path.exists(), f"{mo_path} is missing: run compilemessages and commit it"
    with mo_path.open("rb") as f:
        compiled = _strings(read_mo(f))
    source = _strings(_catalogue(language))
    stale = sorted(k[0] for k in source.keys() | compiled.keys() if source.get(k) != compiled.get(k))
    assert not stale, f"{language}: django.mo differs from django.po (run compilemessages): {stale}"


def _copy_sources(destination: Path) -> None:
    """The files makemessages would read from the project, at the same relative paths."""
    for dirpath, dirnames, filenames in os.walk(ROOT):
        here = Path(dirpath)
        skipped = SKIPPED_TOP_DIRS if here == ROOT else set()
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in skipped and d != "locale"
                       and not d.endswith(".egg-info")]  # fmt: skip
        for name in filenames:
            if Path(name).suffix in EXTENSIONS:
                target = destination / (here / name).relative_to(ROOT)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(here / name, target)


def test_the_catalogues_have_every_translatable_string_of_the_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sources, out = tmp_path / "src", tmp_path / "locale"
    _copy_sources(sources)
    monkeypatch.chdir(sources)
    with override_settings(LOCALE_PATHS=[out]):
        call_command("makemessages", locale=["it"], keep_pot=True, verbosity=0)
    # A template has no plural rule of its own; Babel wants one to read it.
    template = PLURAL_FORMS.sub(lambda _: HEADER_PLURAL_FORMS, (out / "django.pot").read_text())
    extracted = {(_singular(m.id), m.context) for m in read_po(io.StringIO(template)) if m.id}
    assert extracted, "makemessages found no translatable string"
    for language in LANGUAGES:
        missing = sorted(k[0] for k in extracted - _strings(_catalogue(language)).keys())
        assert not missing, (
            f"{language}: strings missing from cspdesk/locale/{language}/LC_MESSAGES/django.po "
            f"(run makemessages, translate, compilemessages): {missing}"
        )
