from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from guardrail.corpus.registry import WorkInput
from guardrail.pipeline.types import Action, RequestMeta, ScanContext
from guardrail.policy import Policy
from guardrail.scanners.ip import IPConfig, IPScanner
from tests.corpus.conftest import en_text, ja_text

META = RequestMeta(request_id="r1", route="/v1/chat/completions", policy_name="p",
                   policy_version="v", system_id="s")
ADMIN = "adm-key"


@pytest.fixture
def loaded(registry):
    registry.upsert_corpus("books", "Old Press", "CC-BY-4.0", "https://press.example")
    en, ja = en_text(21, 2000), ja_text(22, 2000)
    ids = registry.add_works("books", [WorkInput("Book EN", en, external_id="isbn-1"),
                                       WorkInput("Book JA", ja)]).added
    runtime = SimpleNamespace(settings=None, engine=registry.engine,
                              services={"corpus_registry": registry})
    runtime.service = lambda name, factory: runtime.services[name]
    scanner = IPScanner(IPConfig(), runtime)
    scanner.load()
    return scanner, en, ja, ids


async def test_scanner_finding_and_evidence(loaded) -> None:
    scanner, en, ja, (en_id, ja_id) = loaded
    copy = " ".join(en.split()[300:350])
    out = "Here you go. " + copy
    res = await scanner.scan(ScanContext(text=out, meta=META))
    [f] = res.findings
    assert f.category == "books" and f.kind == "near_duplicate" and f.score == 1.0
    assert out[f.span[0] : f.span[1]] == copy
    ev = f.evidence
    assert ev["work_id"] == en_id and ev["title"] == "Book EN" and ev["external_id"] == "isbn-1"
    assert ev["rights_holder"] == "Old Press" and ev["license"] == "CC-BY-4.0"
    assert ev["longest_passage"]["words"] == 50 and 0.7 < ev["coverage"] <= 1
    p = ev["passages"][0]
    assert p["output"]["excerpt"] == copy[:240] and en[p["work"]["start"] :].startswith(
        p["work"]["excerpt"])
    json.dumps(ev)  # incident-storable
    assert IPConfig().rule_for("books") == (0.5, Action.HOLD)
    res = await scanner.scan(ScanContext(text="以下。" + ja[500:580], meta=META))
    assert [f.evidence["work_id"] for f in res.findings] == [ja_id]


async def test_scanner_passes_unrelated_and_filters_corpora(loaded) -> None:
    scanner, en, _, _ = loaded
    res = await scanner.scan(ScanContext(text=en_text(77, 200), meta=META))
    assert res.findings == ()
    scanner.config = IPConfig(corpora=["other"])
    res = await scanner.scan(ScanContext(text=" ".join(en.split()[:60]), meta=META))
    assert res.findings == ()


def test_policy_accepts_ip_and_holdback() -> None:
    pol = Policy.model_validate({"name": "p", "scanners": [
        {"type": "ip", "threshold": 0.6, "min_passage_words": 30,
         "categories": {"lyrics": {"threshold": 0.4, "action": "block"}}}]})
    cfg = pol.scanners[0]
    assert isinstance(cfg, IPConfig) and cfg.action is Action.HOLD
    assert cfg.rule_for("lyrics") == (0.4, Action.BLOCK)
    assert IPScanner(cfg).holdback_chars >= 30 * 6  # a 30-word passage fits in the holdback


@pytest.fixture
def api(registry):
    from guardrail.corpus.routes import router
    from guardrail.errors import ApiError

    app = FastAPI()
    runtime = SimpleNamespace(services={"corpus_registry": registry})
    runtime.service = lambda name, factory: runtime.services[name]
    settings = SimpleNamespace(admin_key=SimpleNamespace(get_secret_value=lambda: ADMIN))
    app.state.guardrail = SimpleNamespace(settings=settings, runtime=runtime)

    @app.exception_handler(ApiError)
    async def _err(_r: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status_code)

    app.include_router(router)
    return TestClient(app, headers={"Authorization": f"Bearer {ADMIN}"})


def test_admin_api(api) -> None:
    assert TestClient(api.app).get("/v1/guardrail/corpora").status_code == 401
    r = api.post("/v1/guardrail/corpora", json={"name": "news", "rights_holder": "Daily",
                                                "license": "all rights reserved"})
    assert r.status_code == 201 and r.json()["name"] == "news"
    text = en_text(5, 300)
    body = {"works": [{"title": "Article", "text": text, "id": "a-1"}]}
    r = api.post("/v1/guardrail/corpora/news/works", json=body)
    assert r.status_code == 201
    [wid] = r.json()["added"]
    assert api.post("/v1/guardrail/corpora/news/works", json=body).json()["duplicates"] == [wid]
    r = api.get("/v1/guardrail/corpora")
    assert r.json()["data"][0]["works"] == 1 and r.json()["index"]["works"] == 1
    assert api.get(f"/v1/guardrail/corpora/news/works/{wid}?text=true").json()["text"] == text
    r = api.patch("/v1/guardrail/corpora/news", json={"license": "CC-BY-4.0"})
    assert r.json()["license"] == "CC-BY-4.0"
    assert api.patch("/v1/guardrail/corpora/none", json={"license": "x"}).status_code == 404
    assert api.post("/v1/guardrail/corpora/none/works", json=body).status_code == 404
    assert api.delete(f"/v1/guardrail/corpora/news/works/{wid}").json()["deleted"]
    assert api.delete("/v1/guardrail/corpora/news").json() == {"deleted": True, "name": "news",
                                                               "works": 0}
    assert api.get("/v1/guardrail/corpora/news").status_code == 404


def test_cli(db_url: str, tmp_path: Path, monkeypatch, capsys) -> None:
    from guardrail.corpus.cli import register

    monkeypatch.setenv("GUARDRAIL_DATABASE_URL", db_url)
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="cmd", required=True))

    def run(*argv: str) -> int:
        args = parser.parse_args(list(argv))
        return int(args.func(args))

    f = tmp_path / "work.txt"
    f.write_text(en_text(8, 300), encoding="utf-8")
    assert run("corpus", "add", "--corpus", "c1", "--rights-holder", "RH", "--license", "L",
               str(f)) == 0
    assert json.loads(capsys.readouterr().out)["windows"] > 0
    assert run("corpus", "add", "--corpus", "c1", str(f)) == 0
    assert json.loads(capsys.readouterr().out)["added"] == []
    assert run("corpus", "list") == 0
    assert "c1" in capsys.readouterr().out
    assert run("corpus", "show", "c1") == 0
    assert json.loads(capsys.readouterr().out)["data"][0]["title"] == "work.txt"
    assert run("corpus", "add", "--corpus", "c2", str(f)) == 1  # new corpus without rights
    assert run("corpus", "remove", "c1") == 0
    assert run("corpus", "show", "c1") == 1
