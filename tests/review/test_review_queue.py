"""The review queue: every filter narrows it, sorting, counts, assignment; listing records
no access."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from guardrail.db import make_engine, upgrade
from guardrail.incidents.store import IncidentStore
from guardrail.people.roles import Principal
from guardrail.review import decisions, service
from guardrail.review.service import QueueFilter
from tests.people.helpers import add_person, csrf_in, people, sign_in
from tests.review.conftest import IP_POLICY, age, draft, harm_finding, ip_finding, pii_finding

KATO = Principal(name="kato", role="reviewer", via="token", person_id=1)


def never(_row):
    return False


@pytest.fixture
def seeded(tmp_path):
    """Six incidents: ``(store, {name: id})``."""
    url = f"sqlite:///{tmp_path}/q.db"
    engine = make_engine(url)
    upgrade(url, engine)
    store = IncidentStore(engine)
    ids = dict(zip(["ip", "harm", "pii", "ja", "done", "quiet"], store.append([
        draft([ip_finding("press", "Old Press Ltd", "The English Book", 0.9)]),
        draft([harm_finding("violence", 0.7), ip_finding("lyrics", "Song Co", "A Song", 0.6)],
              action="block", tenant="beta"),
        draft([pii_finding("JP_PHONE", 3, 16)], action="flag", system="hr-bot",
              policy="strict"),
        draft([ip_finding("novels", "山田出版", "日本の本", 0.95)], tenant="beta"),
        draft([harm_finding("hate", 0.8)], action="block", status="released"),
        draft([pii_finding("EMAIL", 0, 9)], action="redact", status="not_required"),
    ]), strict=True))
    for name, hours in (("ip", 72), ("harm", 30), ("pii", 5), ("ja", 1), ("done", 50)):
        age(store, ids[name], hours=hours)
    return store, ids


def listed(store, **kw) -> list[str]:
    view = service.queue(store, QueueFilter(**kw), never)
    return [r["id"] for r in view.rows]


def count(page: str, name: str) -> int:
    m = re.search(rf'id="count-{name}"[^>]*>[^<]*<b>(\d+)</b>', page)
    assert m, name
    return int(m.group(1))


def names(ids, *keys):
    return [ids[k] for k in keys]


@pytest.mark.parametrize(("filters", "want"), [
    pytest.param({}, ["ip", "harm", "pii", "ja"], id="open-oldest-first"),
    pytest.param({"show": "decided"}, ["done"], id="decided"),
    pytest.param({"show": "not_required"}, ["quiet"], id="one-status"),
    pytest.param({"show": "all"}, ["ip", "harm", "done", "pii", "ja", "quiet"], id="all"),
    pytest.param({"scanner": "ip"}, ["ip", "ja"], id="main-scanner"),
    pytest.param({"finding_scanner": "ip"}, ["ip", "harm", "ja"], id="any-finding-scanner"),
    pytest.param({"finding_scanner": "pii"}, ["pii"], id="any-finding-scanner-pii"),
    pytest.param({"category": "lyrics"}, ["harm"], id="category-of-a-finding"),
    pytest.param({"category": "JP_PHONE"}, ["pii"], id="category"),
    pytest.param({"corpus": "press"}, ["ip"], id="corpus"),
    pytest.param({"corpus": "lyrics"}, ["harm"], id="corpus-of-a-second-finding"),
    pytest.param({"rights_holder": "old press"}, ["ip"], id="rights-holder-part-any-case"),
    pytest.param({"rights_holder": "山田出版"}, ["ja"], id="rights-holder-japanese"),
    pytest.param({"tenant": "beta"}, ["harm", "ja"], id="tenant"),
    pytest.param({"system": "hr-bot"}, ["pii"], id="system"),
    pytest.param({"policy": "strict"}, ["pii"], id="policy"),
    pytest.param({"tenant": "beta", "finding_scanner": "harm"}, ["harm"], id="combined"),
    pytest.param({"corpus": "nothing"}, [], id="no-match"),
])
def test_each_filter_narrows_the_queue(seeded, filters, want):
    store, ids = seeded
    got = listed(store, **filters)
    assert sorted(got) == sorted(names(ids, *want))
    if "show" not in filters or filters["show"] == "open":
        assert got == names(ids, *want)  # oldest first


def test_date_range_in_the_viewers_time_zone(seeded):
    store, ids = seeded
    tokyo = ZoneInfo("Asia/Tokyo")
    today = datetime.now(tokyo).date()
    four_days = today - timedelta(days=4)
    assert set(listed(store, since=four_days, tz=tokyo)) == set(names(ids, "ip", "harm", "pii",
                                                                      "ja"))
    assert listed(store, until=today - timedelta(days=4), tz=tokyo) == []
    three_ago = (datetime.now(tokyo) - timedelta(hours=72)).date()
    assert ids["ip"] in listed(store, since=three_ago, until=three_ago, tz=tokyo)
    assert ids["ip"] not in listed(store, since=three_ago + timedelta(days=1), tz=tokyo)


def test_a_day_is_the_viewers_day(tmp_path):
    """One incident at 23:30 UTC is on the next day in Tokyo (UTC+9)."""
    from sqlalchemy import update

    from guardrail.incidents.models import IncidentRow

    url = f"sqlite:///{tmp_path}/d.db"
    engine = make_engine(url)
    upgrade(url, engine)
    store = IncidentStore(engine)
    [a] = store.append([draft([harm_finding("violence", 0.7)])])
    at = datetime(2026, 3, 1, 23, 30, tzinfo=ZoneInfo("UTC"))
    with engine.begin() as conn:
        conn.execute(update(IncidentRow).values(created_at=at))
    utc, tokyo = ZoneInfo("UTC"), ZoneInfo("Asia/Tokyo")
    assert listed(store, since=date(2026, 3, 1), until=date(2026, 3, 1), tz=utc) == [a]
    assert listed(store, since=date(2026, 3, 1), until=date(2026, 3, 1), tz=tokyo) == []
    assert listed(store, since=date(2026, 3, 2), until=date(2026, 3, 2), tz=tokyo) == [a]


def test_sorting_by_age_and_by_score(seeded):
    store, ids = seeded
    assert listed(store, sort="oldest") == names(ids, "ip", "harm", "pii", "ja")
    assert listed(store, sort="newest") == names(ids, "ja", "pii", "harm", "ip")
    assert listed(store, sort="score") == names(ids, "ja", "ip", "pii", "harm")  # .95 .9 .85 .7


def test_counts_open_overdue_decided_under_the_filters(seeded):
    store, ids = seeded
    older_than_a_day = lambda row: row["id"] in (ids["ip"], ids["harm"])  # noqa: E731
    view = service.queue(store, QueueFilter(), older_than_a_day)
    assert (view.counts.open, view.counts.overdue, view.counts.decided) == (4, 2, 1)
    assert [r["overdue"] for r in view.rows] == [True, True, False, False]
    # the counts follow the other filters, whatever the status shown
    view = service.queue(store, QueueFilter(show="decided", finding_scanner="harm"),
                         older_than_a_day)
    assert (view.counts.open, view.counts.overdue, view.counts.decided) == (1, 1, 1)
    view = service.queue(store, QueueFilter(show="overdue"), older_than_a_day)
    assert [r["id"] for r in view.rows] == names(ids, "ip", "harm")


def test_limit_says_there_is_more(seeded):
    store, ids = seeded
    for filt in (QueueFilter(limit=2), QueueFilter(limit=2, finding_scanner="ip")):
        view = service.queue(store, filt, never)
        assert len(view.rows) == 2 and view.more
    assert not service.queue(store, QueueFilter(limit=4), never).more


def test_assignment_filters_and_shows(seeded):
    store, ids = seeded
    decisions.assign(store, ids["harm"], assignee="kato", who=KATO)
    assert listed(store, assignee="kato") == [ids["harm"]]
    assert listed(store, assignee=service.UNASSIGNED) == names(ids, "ip", "pii", "ja")
    row = next(r for r in service.queue(store, QueueFilter(), never).rows
               if r["id"] == ids["harm"])
    assert row["assignee"] == "kato"


def test_queue_rows_carry_no_content(seeded):
    store, _ = seeded
    for row in service.queue(store, QueueFilter(show="all"), never).rows:
        assert "evidence" not in row and "excerpt" not in row


# -- the page -------------------------------------------------------------------------------

@pytest.fixture
def page_server(make_server):
    srv = make_server(IP_POLICY)
    ids = dict(zip(["old", "new", "done"], srv.store.append([
        draft([ip_finding("press", "Old Press Ltd", "The English Book", 0.9)],
              request_id="r-old"),
        draft([harm_finding("violence", 0.7), ip_finding("lyrics", "Song Co", "A Song")],
              action="block", tenant="beta", request_id="r-new"),
        draft([harm_finding("hate", 0.8)], action="block", status="rejected"),
    ]), strict=True))
    age(srv.store, ids["old"], hours=3)  # the policy's SLA is 60 minutes: overdue
    add_person(srv, "kato", "reviewer")
    add_person(srv, "aud", "auditor")
    return srv, ids


def test_the_page_filters_counts_and_records_no_access(page_server):
    srv, ids = page_server
    with sign_in(srv, "aud") as c:
        page = c.get("/review").text
        assert ids["old"] in page and ids["new"] in page and ids["done"] not in page
        assert [count(page, k) for k in ("open", "overdue", "decided")] == [2, 1, 1]
        assert "an excerpt" not in page and "copied words" not in page  # no content listed
        for query, want, gone in [
            ({"finding_scanner": "ip"}, ["old", "new"], []),
            ({"scanner": "ip"}, ["old"], ["new"]),
            ({"corpus": "lyrics"}, ["new"], ["old"]),
            ({"rights_holder": "OLD PRESS"}, ["old"], ["new"]),
            ({"tenant": "beta"}, ["new"], ["old"]),
            ({"show": "overdue"}, ["old"], ["new"]),
            ({"show": "decided"}, ["done"], ["old", "new"]),
            ({"since": "2001-01-01", "until": "2001-12-31"}, [], ["old", "new"]),
        ]:
            page = c.get("/review", params=query).text
            assert all(ids[k] in page for k in want), query
            assert not any(ids[k] in page for k in gone), query
        score = c.get("/review", params={"sort": "score"}).text
        assert score.index(ids["old"]) < score.index(ids["new"])
        newest = c.get("/review", params={"sort": "newest"}).text
        assert newest.index(ids["new"]) < newest.index(ids["old"])
        bad = c.get("/review", params={"since": "yesterday", "sort": "sideways"})
        assert bad.status_code == 200 and 'id="filter-error"' in bad.text
    for inc_id in ids.values():
        assert service.history(srv.store, inc_id, None) == []  # listing is no access


def test_assigning_from_the_page(page_server):
    srv, ids = page_server
    with sign_in(srv, "kato") as c:
        page = c.get(f"/review/incidents/{ids['new']}")
        token = csrf_in(page.text)
        r = c.post(f"/review/incidents/{ids['new']}/assign",
                   data={"to": "me", "csrf_token": token})
        assert r.status_code == 303
        queue = c.get("/review", params={"assignee": "me"}).text
        assert ids["new"] in queue and ids["old"] not in queue
        assert '<td class="assignee">kato</td>' in queue
        c.post(f"/review/incidents/{ids['old']}/assign",
               data={"assignee": "山田花子", "csrf_token": token})
        assert srv.store.get(ids["old"])["assignee"] == "山田花子"
        c.post(f"/review/incidents/{ids['old']}/assign", data={"to": "none", "csrf_token": token})
        assert srv.store.get(ids["old"])["assignee"] is None
        unassigned = c.get("/review", params={"assignee": "none"}).text
        assert ids["old"] in unassigned and ids["new"] not in unassigned
    kinds = [h["kind"] for h in service.history(srv.store, ids["old"], None)]
    assert kinds == ["assign", "assign"]  # listing and assigning opened no content
    with sign_in(srv, "aud") as c:
        page = c.get(f"/review/incidents/{ids['new']}")
        assert 'id="assign"' not in page.text
        r = c.post(f"/review/incidents/{ids['new']}/assign",
                   data={"to": "me", "csrf_token": csrf_in(page.text)})
        assert r.status_code == 403
    assert srv.store.get(ids["new"])["assignee"] == "kato"


def test_detail_shows_request_metadata_and_masks_personal_data(page_server):
    srv, _ = page_server
    [inc] = srv.store.append([draft(
        [pii_finding("JP_PHONE", 3, 16), harm_finding("violence", 0.72)], action="flag",
        request_id="req-meta-1", api_key_id="key_abc", requested_model="gpt-x",
        upstream_model="gpt-x-2026", model_version="heads-2026.11")])
    with sign_in(srv, "kato") as c:
        page = c.get(f"/review/incidents/{inc}").text
    for text in ("req-meta-1", "/v1/chat/completions", "acme", "key_abc", "default@" + "v" * 64,
                 "gpt-x", "gpt-x-2026", "JP_PHONE", "3–16", "&lt;JP_PHONE&gt;", "violence",
                 "0.720", "heads-2026.11"):
        assert text in page, text
    [access] = service.history(srv.store, inc, ("access",))
    assert access["reviewer"] == "kato"


def test_decisions_from_the_page_need_a_reason_and_show_in_the_history(page_server):
    srv, ids = page_server
    add_person(srv, "sato", "reviewer")
    with sign_in(srv, "kato") as c:
        page = c.get(f"/review/incidents/{ids['new']}")
        token = csrf_in(page.text)
        assert 'id="decide"' in page.text and 'value="open"' in page.text
        r = c.post(f"/review/incidents/{ids['new']}",
                   data={"decision": "reject", "reason": " ", "csrf_token": token})
        assert r.status_code == 400 and 'data-code="reason_required"' in r.text
        r = c.post(f"/review/incidents/{ids['new']}",
                   data={"decision": "escalate", "reason": "legal", "csrf_token": token})
        assert r.status_code == 400  # escalate needs a target
        r = c.post(f"/review/incidents/{ids['new']}",
                   data={"decision": "escalate", "reason": "ask legal", "escalate_to": "admin",
                         "expected_status": "open", "csrf_token": token})
        assert r.status_code == 303
        # a form shown before the escalation is out of date
        stale = c.post(f"/review/incidents/{ids['new']}",
                       data={"decision": "reject", "reason": "x", "expected_status": "open",
                             "csrf_token": token})
        assert stale.status_code == 409 and 'data-code="decision_conflict"' in stale.text
        r = c.post(f"/review/incidents/{ids['new']}",
                   data={"decision": "reject", "reason": "the copy is real",
                         "expected_status": "escalated", "csrf_token": token})
        assert r.status_code == 303
        page = c.get(f"/review/incidents/{ids['new']}").text
        assert 'id="decide"' not in page and 'id="decided"' in page
        history = page[page.index('id="history"'):]
        assert "ask legal" in history and "the copy is real" in history and "admin" in history
    rec = srv.store.get(ids["new"])
    assert (rec["review_status"], rec["reviewer"]) == ("rejected", "kato")
    assert rec["decided_at"] is not None
    with sign_in(srv, "sato") as c:
        page = c.get(f"/review/incidents/{ids['new']}")
        r = c.post(f"/review/incidents/{ids['new']}",
                   data={"decision": "release", "reason": "no", "csrf_token": csrf_in(page.text)})
        assert r.status_code == 409 and 'data-code="already_decided"' in r.text
    assert people(srv).get("kato")["role"] == "reviewer"
