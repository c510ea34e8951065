"""Signed evidence bundles: export, then verify offline (no database); any edit to a line,
a removed line or an edited manifest fails verification."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from guardrail.cli import main
from guardrail.governance import bundle, lifecycle, redress, retention
from guardrail.governance.lifecycle import Change
from guardrail.review import decisions, service
from tests.governance.chain_helpers import (  # noqa: F401
    AUDITOR,
    COMPLIANCE,
    REVIEWER,
    chain_fixture,
    draft,
)

ORIGIN = redress.Origin("chat", "default", "v1", "/redress", "req_r")


@pytest.fixture
def exported(chain, tmp_path, monkeypatch, capsys):
    """A chain with incidents, decisions, an access, lifecycle steps, an answered redress
    intake and a purge, exported with the CLI; (chain, bundle dir, public key file)."""
    monkeypatch.setenv("GUARDRAIL_BUNDLE_KEY_FILE", str(tmp_path / "keys" / "bundle.pem"))
    a, b = chain.store.append([draft(1), draft(2)])
    decisions.decide(chain.store, a, decision="reject", reason="right", who=REVIEWER)
    service.open_incident(chain.store, b, AUDITOR, "test")
    lifecycle.change(chain.store, b, Change("look", to="triage", serious="appi"), COMPLIANCE)
    ack, _ = redress.submit(chain.store, redress.Intake(incident_id=b, text="mine"), ORIGIN)
    redress.answer(chain.store, ack, "answered", REVIEWER)
    retention.purge(chain.store, retention.Retention({"default": 200}),
                    now=datetime.now(UTC) + timedelta(days=400))
    assert chain.store.get(a)["excerpt"] is None  # purged: the bundle must vouch for it
    out_dir = tmp_path / "bundle"
    assert main(["incidents", "export", "--bundle", str(out_dir)]) == 0
    out = capsys.readouterr().out
    pem = re.search(r"-----BEGIN PUBLIC KEY-----.*?-----END PUBLIC KEY-----\n", out, re.S)
    assert pem, out
    key_file = tmp_path / "signer.pem"
    key_file.write_text(pem.group(0))
    assert (tmp_path / "keys" / "bundle.pem").stat().st_mode & 0o777 == 0o600
    return chain, out_dir, key_file


def offline(monkeypatch, tmp_path):
    """No database to reach: verify --bundle must not need one."""
    monkeypatch.setenv("GUARDRAIL_DATABASE_URL", f"sqlite:///{tmp_path}/nowhere/none.db")


def test_an_untampered_bundle_verifies_offline(exported, monkeypatch, tmp_path, capsys):
    chain, out_dir, key_file = exported
    m = json.loads((out_dir / "manifest.json").read_text())
    head = chain.scalar("SELECT last_seq FROM incident_chain_head")
    assert m["chain"]["first_seq"] == 1 and m["chain"]["last_seq"] == head
    assert m["counts"]["incidents"] == 3 and m["counts"]["events"] == head - 3
    assert m["chain"]["last_hash"] == chain.scalar("SELECT last_hash FROM incident_chain_head")
    offline(monkeypatch, tmp_path)
    assert main(["incidents", "verify", "--bundle", str(out_dir),
                 "--public-key", str(key_file)]) == 0
    out = capsys.readouterr().out
    assert f"OK: bundle {out_dir}: {head} records, chain intact" in out
    assert main(["incidents", "verify", "--bundle", str(out_dir)]) == 0  # the manifest's key
    assert "not who signed it" in capsys.readouterr().out
    assert not (tmp_path / "nowhere").exists()


def _edit_line(path, n, change):
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    obj = json.loads(lines[n])
    change(obj)
    lines[n] = json.dumps(obj, ensure_ascii=False, sort_keys=True) + "\n"
    path.write_text("".join(lines), encoding="utf-8")


def _drop_line(path, n):
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    del lines[n]
    path.write_text("".join(lines), encoding="utf-8")


def _edit_manifest(d, change):
    m = json.loads((d / "manifest.json").read_text())
    change(m)
    (d / "manifest.json").write_text(json.dumps(m, indent=2, sort_keys=True) + "\n")


TAMPER = [
    pytest.param(lambda d: _edit_line(d / "incidents.jsonl", 1,
                                      lambda o: o.update(action="allow")),
                 ["incidents.jsonl: SHA-256 differs", "content does not match its hash"],
                 id="edited-incident"),
    pytest.param(lambda d: _edit_line(d / "incidents.jsonl", 0,
                                      lambda o: o.update(excerpt="restored?")),
                 ["content does not match its hash"], id="purged-incident-refilled"),
    pytest.param(lambda d: _edit_line(d / "events.jsonl", 0,
                                      lambda o: o.update(reviewer="mallory")),
                 ["events.jsonl: SHA-256 differs", "content does not match its hash"],
                 id="edited-event"),
    pytest.param(lambda d: _drop_line(d / "events.jsonl", 1),
                 ["events.jsonl: SHA-256 differs", "missing (deleted?)"], id="deleted-event"),
    pytest.param(lambda d: _drop_line(d / "incidents.jsonl", 2),
                 ["incidents.jsonl: SHA-256 differs", "missing (deleted?)"],
                 id="deleted-incident"),
    pytest.param(lambda d: _drop_line(d / "events.jsonl", -1),
                 ["events.jsonl: SHA-256 differs", "records removed from the end"],
                 id="deleted-last"),
    pytest.param(lambda d: _edit_line(d / "incidents.jsonl", 1,
                                      lambda o: o.pop("evidence")),
                 ["not a complete chain record"], id="field-removed"),
    pytest.param(lambda d: _edit_manifest(d, lambda m: m["counts"].update(incidents=2)),
                 ["manifest signature does not verify"], id="edited-manifest"),
    pytest.param(lambda d: _edit_manifest(d, lambda m: m["files"]["events.jsonl"].update(
        sha256="0" * 64)), ["manifest signature does not verify", "events.jsonl: SHA-256"],
                 id="manifest-hash-edited"),
    pytest.param(lambda d: (d / "manifest.sig").write_text("AAAA\n"),
                 ["manifest signature does not verify"], id="signature-replaced"),
    pytest.param(lambda d: (d / "events.jsonl").unlink(), ["events.jsonl: missing"],
                 id="file-removed"),
]


@pytest.mark.parametrize(("tamper", "needles"), TAMPER)
def test_a_tampered_bundle_fails(exported, monkeypatch, tmp_path, capsys, tamper, needles):
    _, out_dir, key_file = exported
    tamper(out_dir)
    offline(monkeypatch, tmp_path)
    assert main(["incidents", "verify", "--bundle", str(out_dir),
                 "--public-key", str(key_file)]) == 1
    err = capsys.readouterr().err
    assert "TAMPERED" in err
    for needle in needles:
        assert needle in err


def test_a_bundle_resigned_by_someone_else_fails_with_the_signers_key(exported, tmp_path,
                                                                        capsys):
    _, out_dir, key_file = exported
    mallory = bundle.Ed25519PrivateKey.generate()
    _edit_line(out_dir / "incidents.jsonl", 1, lambda o: o.update(action="allow"))
    body = (out_dir / "manifest.json").read_bytes()
    (out_dir / "manifest.sig").write_bytes(bundle.base64.b64encode(mallory.sign(body)))
    assert main(["incidents", "verify", "--bundle", str(out_dir),
                 "--public-key", str(key_file)]) == 1
    assert "manifest signature does not verify" in capsys.readouterr().err


def test_a_range_bundle_links_to_its_start_and_carries_later_purges(chain, tmp_path):
    [a] = chain.store.append([draft(1)])
    t1 = datetime.now(UTC)
    [b] = chain.store.append([draft(2)])
    t2 = datetime.now(UTC)
    [c] = chain.store.append([draft(3)])
    # decided later, then purged: the purge event comes after the range
    for inc in (a, b, c):
        decisions.decide(chain.store, inc, decision="reject", reason="r", who=REVIEWER)
    retention.purge(chain.store, retention.Retention({"default": 200}),
                    now=datetime.now(UTC) + timedelta(days=400))
    key = bundle.Ed25519PrivateKey.generate()
    m = bundle.export(chain.store, tmp_path / "r", key, since=t1, until=t2)
    assert (m["chain"]["first_seq"], m["chain"]["last_seq"]) == (2, 2)
    assert m["counts"] == {"incidents": 1, "events": 0, "purge_events_after": 1}
    rep = bundle.verify(tmp_path / "r")
    assert rep.ok and rep.checked == 1, rep.problems
    (tmp_path / "r" / "purges.jsonl").write_text("")  # without the purge: cannot vouch
    assert not bundle.verify(tmp_path / "r").ok
    with pytest.raises(Exception, match="already holds a bundle"):
        bundle.export(chain.store, tmp_path / "r", key)


def test_signing_key_from_settings(tmp_path):
    from cryptography.hazmat.primitives import serialization

    from guardrail.settings import Settings

    key = bundle.Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    got, source = bundle.signing_key(Settings(bundle_signing_key=pem,
                                              database_url=f"sqlite:///{tmp_path}/x.db"))
    assert source == "GUARDRAIL_BUNDLE_SIGNING_KEY"
    assert bundle.key_id(got.public_key()) == bundle.key_id(key.public_key())
    with pytest.raises(Exception, match="not a PEM private key"):
        bundle.signing_key(Settings(bundle_signing_key="nope",
                                    database_url=f"sqlite:///{tmp_path}/x.db"))
