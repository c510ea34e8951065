"""Japanese and English for the review pages: gettext catalogues through Jinja2's i18n extension.

The catalogues are the ``.po`` files under ``locale/<lang>/LC_MESSAGES/messages.po``; they are
compiled in memory when first used (:func:`translations`), so there is no ``.mo`` binary to go
stale. Every UI string lives in the templates (``{% trans %}`` blocks and ``_()`` calls); after
editing one, refresh the catalogues with ``python -m guardrail.review.i18n`` (it re-extracts
the templates as ``pybabel extract -F locale/babel.cfg`` would, adds new messages, marks gone
ones obsolete) and fill in the Japanese ``msgstr``. ``tests/review/test_review_i18n.py`` fails
while a msgid is missing from a catalogue, stale, or untranslated in Japanese.

Which language: the person's saved setting, else the browser's ``Accept-Language``, else
English. Times are shown in the person's saved time zone (an IANA name), else UTC.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, tzinfo
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from babel.dates import format_datetime, format_timedelta
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po
from babel.support import Translations
from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape
from jinja2.runtime import Context

LOCALES = ("en", "ja")
DEFAULT_LOCALE = "en"
DEFAULT_TIMEZONE = "UTC"
HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
LOCALE_DIR = HERE / "locale"
DOMAIN = "messages"
# what ``pybabel extract -F locale/babel.cfg`` does, for tests and the refresh command
METHOD_MAP = [("**.html", "jinja2")]
OPTIONS_MAP = {"**.html": {"extensions": "jinja2.ext.i18n", "trimmed": "true"}}


def po_path(locale: str) -> Path:
    return LOCALE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"


def read_catalog(locale: str) -> Catalog:
    with po_path(locale).open("rb") as f:
        return read_po(f, locale=locale, domain=DOMAIN)


@cache
def translations(locale: str) -> Translations:
    """``locale``'s catalogue, compiled from its ``.po`` in memory (fuzzy entries left out)."""
    buf = io.BytesIO()
    write_mo(buf, read_catalog(locale), use_fuzzy=False)
    buf.seek(0)
    return Translations(fp=buf, domain=DOMAIN)


def accept_language(header: str | None) -> list[str]:
    """The languages of an ``Accept-Language`` header, most preferred first (``q=0`` left
    out; a malformed weight counts as 0)."""
    weighted: list[tuple[float, int, str]] = []
    for i, part in enumerate((header or "").split(",")):
        lang, _, params = part.strip().partition(";")
        q = 1.0
        for p in params.split(";"):
            k, _, v = p.strip().partition("=")
            if k.strip().lower() == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        if lang.strip() and q > 0:
            weighted.append((-q, i, lang.strip().lower()))
    return [lang for _, _, lang in sorted(weighted)]


def negotiate(saved: str | None, header: str | None) -> str:
    """The page language: ``saved`` if it is one we have, else the first of the header's
    languages we have (``ja-JP`` is ``ja``; ``*`` is the default), else English."""
    if saved in LOCALES:
        return saved
    for lang in accept_language(header):
        base = lang.split("-")[0].split("_")[0]
        if base in LOCALES:
            return base
        if base == "*":
            return DEFAULT_LOCALE
    return DEFAULT_LOCALE


def check_timezone(name: str) -> str | None:
    """``name`` if it is an IANA time zone this system knows (``Asia/Tokyo``), else None."""
    name = name.strip()
    if not name or len(name) > 64:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return name


@cache
def timezones() -> tuple[str, ...]:
    """IANA names, for the settings page's suggestions."""
    return tuple(sorted(available_timezones()))


def zone(name: str | None) -> tzinfo:
    checked = check_timezone(name) if name else None
    return ZoneInfo(checked) if checked else UTC


def as_datetime(value: str | datetime | None) -> datetime | None:
    if value is None or value == "":
        return None
    t = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


@pass_context
def _when(ctx: Context, value: str | datetime | None, fmt: str = "medium") -> str:
    """A stored (UTC) time in the page's time zone and language."""
    t = as_datetime(value)
    if t is None:
        return "-"
    return format_datetime(t, fmt, tzinfo=zone(ctx.get("tz")), locale=ctx.get("locale"))


@pass_context
def _age(ctx: Context, value: str | datetime | None) -> str:
    """How long ago ``value`` was, in words of the page's language ("3 hours", "3 時間")."""
    t = as_datetime(value)
    if t is None:
        return "-"
    return format_timedelta(max(datetime.now(UTC) - t, timedelta(0)), threshold=1.0,
                            locale=ctx.get("locale") or DEFAULT_LOCALE)


@cache
def environment(locale: str) -> Environment:
    """The template environment for one language (one per language, so a request never sees
    another one's translations)."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), extensions=["jinja2.ext.i18n"],
                      autoescape=select_autoescape(["html"]))
    env.policies["ext.i18n.trimmed"] = True
    env.install_gettext_translations(translations(locale), newstyle=True)  # type: ignore[attr-defined]
    env.filters["when"] = _when
    env.filters["age"] = _age
    env.globals["locale"] = locale
    return env


def extract() -> Catalog:
    """Every message of the templates, as ``pybabel extract`` finds them."""
    cat = Catalog(domain=DOMAIN, project="guardrail review", charset="utf-8")
    for filename, lineno, message, comments, context in extract_from_dir(
            str(TEMPLATES), METHOD_MAP, OPTIONS_MAP):
        cat.add(message, None, [(f"templates/{filename}", lineno)],
                auto_comments=comments, context=context)
    return cat


def msgids(cat: Iterable[Any]) -> set[str]:
    """The (singular) msgids of a catalogue, header left out."""
    out: set[str] = set()
    for m in cat:
        if m.id:
            out.add(m.id if isinstance(m.id, str) else m.id[0])
    return out


def refresh() -> None:
    """Update both ``.po`` files from the templates (new msgids added with an empty msgstr,
    gone ones dropped); English needs no msgstr (gettext shows the msgid)."""
    template = extract()
    for locale in LOCALES:
        cat = read_catalog(locale)
        template.creation_date = cat.creation_date  # no churn in the header
        cat.update(template, no_fuzzy_matching=True)
        cat.obsolete.clear()
        with po_path(locale).open("wb") as f:
            write_po(f, cat, width=100, omit_header=False, sort_output=False)


if __name__ == "__main__":  # pragma: no cover - a maintainer's command
    refresh()
    print("updated", ", ".join(str(po_path(x)) for x in LOCALES))
