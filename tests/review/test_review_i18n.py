"""The review pages in Japanese and English: complete catalogues, no English left on a
Japanese page, the language and time zone each person sees."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import httpx
import pytest
from babel.dates import format_datetime
from sqlalchemy import update

from guardrail.incidents.models import IncidentRow
from guardrail.review import decisions, i18n
from tests.people.helpers import add_person, csrf_in, people, sign_in
from tests.review.conftest import IP_POLICY, draft, harm_finding, ip_finding, pii_finding

PLACEHOLDER = re.compile(r"%\((\w+)\)s")


# -- the catalogues -------------------------------------------------------------------------

def test_every_template_message_is_in_both_catalogues_and_none_is_stale():
    extracted = i18n.msgids(i18n.extract())
    assert len(extracted) > 100  # the extraction found the templates' messages
    for locale in i18n.LOCALES:
        have = i18n.msgids(i18n.read_catalog(locale))
        assert extracted - have == set(), f"missing from {locale}: run python -m " \
                                          "guardrail.review.i18n"
        assert have - extracted == set(), f"stale in {locale}"


def test_every_message_has_a_japanese_translation_with_the_same_placeholders():
    cat = i18n.read_catalog("ja")
    assert not cat.fuzzy
    for m in cat:
        if not m.id:
            continue
        assert m.string and not m.fuzzy, f"untranslated: {m.id!r}"
        assert m.string != m.id, f"left in English: {m.id!r}"
        assert set(PLACEHOLDER.findall(m.string)) == set(PLACEHOLDER.findall(m.id)), m.id
        assert re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", m.string), m.id


def test_catalogues_compile_in_memory():
    assert i18n.translations("ja").gettext("Sign in") == "ログイン"
    assert i18n.translations("en").gettext("Sign in") == "Sign in"
    assert not list(i18n.LOCALE_DIR.rglob("*.mo"))  # nothing compiled is kept


@pytest.mark.parametrize(("header", "want"), [
    (None, "en"), ("", "en"), ("ja", "ja"), ("ja-JP,ja;q=0.9,en;q=0.8", "ja"),
    ("en-US,en;q=0.9,ja;q=0.8", "en"), ("fr-FR, ja;q=0.5", "ja"), ("fr, de", "en"),
    ("en;q=0.1, ja;q=0.9", "ja"), ("ja;q=0, en", "en"), ("*", "en"), ("ja;q=oops, en", "en"),
])
def test_accept_language(header, want):
    assert i18n.negotiate(None, header) == want


def test_a_saved_language_wins_over_the_header():
    assert i18n.negotiate("en", "ja") == "en"
    assert i18n.negotiate("ja", "en") == "ja"
    assert i18n.negotiate("fr", "ja") == "ja"  # not one we have: as if none was saved


# -- no English left on a Japanese page --------------------------------------------------------

class Visible(HTMLParser):
    """What a person reads: text and placeholder/title/label attributes, leaving out code,
    scripts and anything marked ``lang="en"`` (a server message shown as a detail)."""

    SKIP = {"script", "style", "code", "datalist"}
    VOID = {"input", "br", "meta", "link", "img", "hr", "option"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[bool] = []
        self.parts: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        skip = ((self.stack and self.stack[-1]) or tag in self.SKIP
                or (a.get("lang") == "en" and tag != "html"))
        if not skip:
            self.parts += [a[k] for k in ("placeholder", "title", "aria-label", "alt")
                           if a.get(k)]
        if tag not in self.VOID:
            self.stack.append(bool(skip))

    def handle_endtag(self, tag):
        if tag not in self.VOID and self.stack:
            self.stack.pop()

    def handle_data(self, data):
        if not (self.stack and self.stack[-1]):
            self.parts.append(data)


def visible(html: str) -> str:
    p = Visible()
    p.feed(html)
    return " ".join(" ".join(p.parts).split())


def english_left(html: str) -> list[str]:
    """English msgids (or their literal parts) found in the page's visible text."""
    text = visible(html)
    left = []
    for msgid in i18n.msgids(i18n.read_catalog("en")):
        parts = PLACEHOLDER.split(msgid)[::2]
        for part in parts:
            part = part.replace("%%", "%").strip(" .:;,()·–-%")
            # a whole message of two letters ("Me") counts; a part between placeholders
            # needs a longer word (" of " in "part %(i)s of %(n)s" is not telling)
            word = r"[A-Za-z]{2}" if len(parts) == 1 else r"[A-Za-z]{3}"
            if re.search(word, part) and re.search(
                    rf"(?<![A-Za-z]){re.escape(part)}(?![A-Za-z])", text):
                left.append(part)
    return sorted(set(left))


@pytest.fixture
def ja_server(make_server):
    srv = make_server(IP_POLICY)
    [ip, harm, done] = srv.store.append([
        draft([ip_finding("press", "Old Press Ltd", "The English Book"),
               pii_finding("JP_PHONE", 3, 16),
               {"scanner": "banned", "kind": "denylist", "category": "banned_term",
                "score": 1.0, "span": [1, 4], "action": "hold", "threshold": None,
                "evidence": {"matched": "xyz"}}],
              request_id="req-ja"),
        draft([harm_finding("violence", 0.72)], action="block", tenant="beta"),
        draft([harm_finding("hate", 0.8)], action="block", status="rejected"),
    ])
    add_person(srv, "山田花子", "reviewer")
    add_person(srv, "監査", "auditor")
    return srv, {"ip": ip, "harm": harm, "done": done}


def _ja(c: httpx.Client) -> None:
    page = c.get("/review/settings")
    r = c.post("/review/settings", data={"locale": "ja", "timezone": "Asia/Tokyo",
                                         "csrf_token": csrf_in(page.text)})
    assert r.status_code == 303


def test_every_page_in_japanese_has_no_english_ui_string_left(ja_server):
    srv, ids = ja_server
    with httpx.Client(base_url=srv.root_url, headers={"Accept-Language": "ja"}) as c:
        login = c.get("/review/login")
        assert 'lang="ja"' in login.text and english_left(login.text) == []
        wrong = c.post("/review/login", data={"name": "x", "password": "y",
                                               "csrf_token": csrf_in(login.text)})
        assert wrong.status_code == 401 and english_left(wrong.text) == []
    who = people(srv).authenticate("山田花子", "correct horse battery staple")
    decisions.assign(srv.store, ids["harm"], assignee="山田花子", who=who)
    decisions.decide(srv.store, ids["harm"], decision="escalate", reason="法務へ",
                     who=who, escalate_to="法務部")
    with sign_in(srv, "山田花子") as c:
        _ja(c)
        pages = {
            "queue": c.get("/review"),
            "queue-filtered": c.get("/review", params={"show": "all", "since": "bad"}),
            "queue-empty": c.get("/review", params={"corpus": "none-such"}),
            "detail-ip": c.get(f"/review/incidents/{ids['ip']}"),
            "detail-harm": c.get(f"/review/incidents/{ids['harm']}"),
            "detail-decided": c.get(f"/review/incidents/{ids['done']}"),
            "missing": c.get("/review/incidents/inc_none"),
            "settings": c.get("/review/settings", params={"saved": "1"}),
        }
        token = csrf_in(pages["settings"].text)
        pages["settings-error"] = c.post("/review/settings", data={
            "locale": "ja", "timezone": "Mars/Olympus", "csrf_token": token})
        pages["refused"] = c.post(f"/review/incidents/{ids['ip']}",
                                  data={"decision": "reject", "reason": "", "csrf_token": token})
        pages["csrf"] = c.post(f"/review/incidents/{ids['ip']}", data={"decision": "reject"})
    with sign_in(srv, "監査") as c:
        _ja(c)
        pages["detail-auditor"] = c.get(f"/review/incidents/{ids['ip']}")
    for name, page in pages.items():
        assert 'lang="ja"' in page.text, name
        assert page.headers["content-language"] == "ja", name
        assert english_left(page.text) == [], name
    # and the check does see English: the same pages in English are full of it
    with sign_in(srv, "山田花子", headers={"Accept-Language": "en"}) as c:
        page = c.get("/review/settings")
        c.post("/review/settings", data={"locale": "", "csrf_token": csrf_in(page.text)})
        assert len(english_left(c.get(f"/review/incidents/{ids['ip']}").text)) > 30
        assert len(english_left(c.get("/review").text)) > 20


# -- language and time zone per person ---------------------------------------------------------

def test_accept_language_ja_picks_japanese_and_a_saved_setting_overrides_it(ja_server):
    srv, _ = ja_server
    with httpx.Client(base_url=srv.root_url, headers={"Accept-Language": "ja-JP,ja;q=0.9"}) as c:
        r = c.get("/review/login")
        assert r.headers["content-language"] == "ja" and ">ログイン<" in r.text
        assert "accept-language" in r.headers["vary"].lower()
    with sign_in(srv, "山田花子", headers={"Accept-Language": "ja"}) as c:
        assert ">レビュー対象のインシデント<" in c.get("/review").text
        page = c.get("/review/settings")
        r = c.post("/review/settings", data={"locale": "en", "next": "/review?show=all",
                                             "csrf_token": csrf_in(page.text)})
        assert r.status_code == 303 and r.headers["location"] == "/review?show=all"
        queue = c.get("/review")
        assert queue.headers["content-language"] == "en" and ">Incidents to review<" in queue.text
    assert people(srv).get("山田花子")  # still there
    with sign_in(srv, "山田花子") as c:  # English browser, Japanese saved
        page = c.get("/review/settings")
        c.post("/review/settings", data={"locale": "ja", "csrf_token": csrf_in(page.text)})
        assert c.get("/review").headers["content-language"] == "ja"
        # the header's buttons send no time zone: the saved one is kept
        page = c.get("/review/settings")
        c.post("/review/settings", data={"timezone": "Asia/Tokyo", "locale": "ja",
                                         "csrf_token": csrf_in(page.text)})
        c.post("/review/settings", data={"locale": "en", "next": "https://evil.example/",
                                         "csrf_token": csrf_in(page.text)})
        assert 'value="Asia/Tokyo"' in c.get("/review/settings").text


def test_settings_are_validated(ja_server):
    srv, _ = ja_server
    with sign_in(srv, "山田花子") as c:
        token = csrf_in(c.get("/review/settings").text)
        bad = c.post("/review/settings", data={"timezone": "Mars/Olympus", "csrf_token": token})
        assert bad.status_code == 400 and 'id="settings-error"' in bad.text
        for tz in ("../../etc/passwd", "x" * 80):
            assert c.post("/review/settings", data={"timezone": tz, "csrf_token": token}
                          ).status_code == 400
        assert c.post("/review/settings", data={"locale": "fr", "csrf_token": token}
                      ).status_code == 400
        assert c.post("/review/settings", data={"locale": "ja"}).status_code == 403  # no CSRF
        ok = c.post("/review/settings", data={"timezone": "Europe/London", "csrf_token": token})
        assert ok.status_code == 303 and ok.headers["location"] == "/review/settings?saved=1"
    with sign_in(srv, "山田花子") as c:
        assert 'value="Europe/London"' in c.get("/review/settings").text
    assert people(srv).authenticate("山田花子", "correct horse battery staple").timezone == \
        "Europe/London"


def test_dates_show_in_the_persons_time_zone(ja_server):
    srv, ids = ja_server
    at = datetime(2026, 3, 1, 23, 30, 5, tzinfo=UTC)
    with srv.store.engine.begin() as conn:
        conn.execute(update(IncidentRow).where(IncidentRow.id == ids["harm"])
                     .values(created_at=at))
    with sign_in(srv, "山田花子") as c:
        page = c.get(f"/review/incidents/{ids['harm']}").text
        assert format_datetime(at, "full", tzinfo=UTC, locale="en") in page  # default: UTC
        assert "Received (UTC)" in page
        token = csrf_in(page)
        c.post("/review/settings", data={"locale": "ja", "timezone": "Asia/Tokyo",
                                         "csrf_token": token})
        page = c.get(f"/review/incidents/{ids['harm']}").text
        tokyo = format_datetime(at, "full", tzinfo=ZoneInfo("Asia/Tokyo"), locale="ja")
        assert tokyo in page and "2026年3月2日" in tokyo and "8時30分05秒" in tokyo
        assert "受信日時（Asia/Tokyo）" in page
        queue = c.get("/review", params={"show": "all"}).text
        assert format_datetime(at, "medium", tzinfo=ZoneInfo("Asia/Tokyo"), locale="ja") \
            in queue
        c.post("/review/settings", data={"locale": "en", "timezone": "America/New_York",
                                         "csrf_token": token})
        page = c.get(f"/review/incidents/{ids['harm']}").text
        assert format_datetime(at, "full", tzinfo=ZoneInfo("America/New_York"),
                               locale="en") in page
        assert "6:30:05" in page  # 23:30 UTC is 18:30 in New York (EST)
