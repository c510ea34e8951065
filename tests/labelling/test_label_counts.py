"""Labelled outputs are counted in the store (the compliance report's evidence for the
disclosure control): text, with a visible notice, images."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from guardrail.labelling.counts import LabelCounts

NOTICE = """
name: default
scanners:
  - type: denylist
    name: banned
    terms: [forbidden-codename]
labelling:
  notice:
    position: append
"""


def _chat(srv, text: str, stream: bool = False) -> httpx.Response:
    return httpx.post(srv.base_url + "/chat/completions", timeout=30,
                      headers={"Authorization": f"Bearer {srv.client_key}"},
                      json={"model": "echo", "stream": stream,
                            "messages": [{"role": "user", "content": text}]})


def test_released_labelled_responses_are_counted(make_server):
    srv = make_server(NOTICE, labelling_flush_s=3600)
    assert _chat(srv, "hello").status_code == 200
    assert _chat(srv, "hello again", stream=True).status_code == 200
    assert _chat(srv, "the forbidden-codename").json()["guardrail"]["decision"] == "block"
    counts: LabelCounts = srv.state.extras["label_counts"]
    assert counts.flush() == 2  # the blocked one was not released, so not counted
    today = datetime.now(UTC).date()
    assert counts.totals(today, today + timedelta(days=1)) == {"notice": 2}
    _chat(srv, "once more")
    counts.flush()
    assert counts.totals(today, today + timedelta(days=1)) == {"notice": 3}  # added to the row


def test_counts_survive_a_store_outage(make_server, monkeypatch):
    from tests.mocks.stores import cut_store

    srv = make_server(NOTICE, labelling_flush_s=3600)
    counts: LabelCounts = srv.state.extras["label_counts"]
    counts.add("default", "text", 5)
    with monkeypatch.context() as m:
        cut_store(srv.store.engine, m)
        assert counts.flush() == 0  # kept for the next flush
    assert counts.flush() == 5
