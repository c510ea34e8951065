from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import openai
import pytest
from sqlalchemy import update

from guardrail.incidents.models import IncidentRow
from guardrail.incidents.store import IncidentDraft
from tests.people.helpers import held  # noqa: F401

IP_POLICY = """
name: default
review:
  sla_minutes: 60
scanners:
  - type: ip
    min_passage_words: 20
    min_passage_cjk_chars: 40
"""


def ip_finding(corpus: str, holder: str, title: str, score: float = 0.9) -> dict[str, Any]:
    """An IP finding as the incident records it (see guardrail/scanners/ip.py)."""
    passage = {"output": {"start": 0, "end": 30, "excerpt": "copied words of the work here"},
               "work": {"start": 100, "end": 130, "excerpt": "copied words of the work here"},
               "words": 6, "cjk_chars": 0, "similarity": 1.0}
    return {"scanner": "ip", "kind": "near_duplicate", "category": corpus, "score": score,
            "span": [0, 30], "action": "hold", "threshold": 0.5,
            "evidence": {"corpus": corpus, "work_id": 1, "title": title, "external_id": None,
                         "rights_holder": holder, "license": "all rights reserved",
                         "source_url": None, "similarity": score, "coverage": 0.5,
                         "passages": [passage]}}


def harm_finding(category: str, score: float) -> dict[str, Any]:
    return {"scanner": "harm", "kind": "harm", "category": category, "score": score,
            "span": [0, 40], "action": "block", "threshold": 0.5,
            "evidence": {"backend": "embedded", "model_version": "heads-2026.11", "chunk": 0,
                         "chunks": 1, "language": "en"}}


def pii_finding(entity: str, start: int, end: int) -> dict[str, Any]:
    return {"scanner": "pii", "kind": "pii", "category": entity, "score": 0.85,
            "span": [start, end], "action": "flag", "threshold": 0.5,
            "evidence": {"entity_type": entity, "score": 0.85, "recognizer": "JpPhone",
                         "span": [start, end], "language": "ja"}}


def draft(findings: list[dict[str, Any]], *, action: str = "hold", status: str = "open",
          tenant: str | None = "acme", system: str = "chat-assistant", policy: str = "default",
          **kw: Any) -> IncidentDraft:
    lead = findings[0] if findings else {}
    return IncidentDraft(
        request_id=kw.pop("request_id", "req-1"), system_id=system, policy_name=policy,
        policy_version="v" * 64, route="/v1/chat/completions", stage="output",
        kind="decision", action=action, evidence={"findings": findings}, scanners=[],
        tenant=tenant, scanner=lead.get("scanner"), category=lead.get("category"),
        score=lead.get("score"), threshold=lead.get("threshold"), review_status=status,
        excerpt="an excerpt", **kw)


def age(store, incident_id: str, **delta: float) -> None:
    """Move an incident's creation time back (its chain hash no longer verifies: tests of
    the queue only)."""
    with store.engine.begin() as conn:
        conn.execute(update(IncidentRow).where(IncidentRow.id == incident_id)
                     .values(created_at=datetime.now(UTC) - timedelta(**delta)))


@pytest.fixture
def ip_server(make_server):
    """A server with the IP scanner, a registered corpus (press, Old Press Ltd) and its
    English work: ``(server, text of the work)``."""
    return press_server(make_server)


def press_server(make_server, **settings):
    """(server, work text): the IP policy and the press corpus with one English work."""
    from guardrail.corpus.registry import WorkInput
    from guardrail.corpus.service import get_registry
    from tests.corpus.conftest import en_text

    srv = make_server(IP_POLICY, **settings)
    text = en_text(301, 1500)
    reg = get_registry(srv.state.runtime)
    reg.upsert_corpus("press", "Old Press Ltd", "all rights reserved", "https://press.example")
    reg.add_works("press", [WorkInput("The English Book", text)])
    return srv, text


def hold_copy(srv, text: str, start: int, words: int = 45) -> str:
    """Ask for an answer that copies ``words`` words of the work from ``start``: the
    incident id of the hold."""
    copy = " ".join(text.split()[start:start + words])
    client = openai.OpenAI(base_url=srv.base_url, api_key=srv.client_key, max_retries=0)
    resp = client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": f"Here it is: {copy} Enjoy!"}])
    g = resp.model_extra["guardrail"]
    assert g["decision"] == "hold", g
    return g["incident_ids"][0]
