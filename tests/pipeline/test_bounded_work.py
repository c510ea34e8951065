"""Bounded work (issue 12, finding 7): per-scanner worker pools whose slots are held until a
thread really finishes, policy regexes under a match timeout, and everything closed at
shutdown."""

from __future__ import annotations

import asyncio
import threading
import tomllib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from guardrail.harm import batcher as batcher_module
from guardrail.harm.batcher import BatcherPool
from guardrail.pipeline.runner import Pipeline, ScannerCache
from guardrail.pipeline.types import Action, RequestMeta, ScanContext, ScannerInfo, ScanResult
from guardrail.policy import Policy
from guardrail.scanners.ip import IPConfig, IPScanner
from guardrail.scanners.pii import PiiConfig, PiiScanner

META = RequestMeta(request_id="req_bounded", route="/v1/chat/completions",
                   policy_name="t", policy_version="v", system_id="s")
ROOT = Path(__file__).resolve().parents[2]


def _workers():
    from guardrail.pipeline import workers

    return workers


async def test_a_timed_out_job_keeps_its_slot_until_its_thread_ends():
    pool = _workers().WorkerPool("unit", 1)
    release = threading.Event()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await pool.run(release.wait)  # the scan gives up; the thread does not
    assert pool.load()["busy"] == 1  # honest: the thread is still working
    ran: list[int] = []
    with pytest.raises(TimeoutError):  # no slot within its timeout: it fails, never queues
        async with asyncio.timeout(0.05):
            await pool.run(ran.append, 1)
    assert ran == [] and pool.load() == {"busy": 1, "size": 1, "waiting": 0}
    release.set()  # the stuck thread ends: its slot comes back
    assert await pool.run(lambda: 42) == 42
    assert pool.load()["busy"] == 0
    await pool.aclose()


async def test_waiters_get_freed_slots_in_turn_and_close_refuses_the_rest():
    w = _workers()
    pool = w.WorkerPool("unit", 1)
    gate = threading.Event()
    first = asyncio.ensure_future(pool.run(gate.wait))
    second = asyncio.ensure_future(pool.run(lambda: "second"))
    await asyncio.sleep(0.01)
    assert pool.load() == {"busy": 1, "size": 1, "waiting": 1}
    gate.set()
    assert await first is True and await second == "second"
    blocker = threading.Event()
    busy = asyncio.ensure_future(pool.run(blocker.wait))
    waiting = asyncio.ensure_future(pool.run(lambda: "never"))
    await asyncio.sleep(0.01)
    await pool.aclose()
    with pytest.raises(w.WorkerPoolClosedError):
        await waiting
    with pytest.raises(w.WorkerPoolClosedError):
        await pool.run(lambda: "after close")
    blocker.set()
    assert await busy is True  # the job already running finishes


class _FakeAnalyzer:
    def __init__(self) -> None:
        self.threads: list[str] = []

    def analyze(self, text: str, language: str, entities: list[str]) -> list:
        self.threads.append(threading.current_thread().name)
        return []


async def test_pii_and_ip_scan_on_their_own_named_threads():
    pii = PiiScanner(PiiConfig(workers=3))
    fake = _FakeAnalyzer()
    pii._analyzer, pii._entities = fake, ["EMAIL_ADDRESS"]  # no presidio needed here
    pii._info = ScannerInfo(name="pii", backend="presidio")
    await pii.scan(ScanContext(text="mail me", meta=META))
    ip = IPScanner(IPConfig())
    ip_threads: list[str] = []
    ip._scan_sync = lambda text: ip_threads.append(threading.current_thread().name) or []
    ip.info = lambda: ScannerInfo(name="ip", backend="minhash-lsh")
    await ip.scan(ScanContext(text="some words", meta=META))
    assert fake.threads[0].startswith("guardrail-pii") and ip_threads[0].startswith("guardrail-ip")
    assert (pii.workers.size, ip.workers.size) == (3, 2)  # config, else the default
    assert pii.workers is not ip.workers
    await pii.aclose()
    await ip.aclose()


class _Pooled:
    """A thread-backed scanner whose work hangs (a model stuck on one input)."""

    inline = False
    holdback_chars = 0

    def __init__(self) -> None:
        self.workers = _workers().WorkerPool("stuck", 1)
        self.release = threading.Event()

    async def scan(self, ctx: ScanContext) -> ScanResult:
        await self.workers.run(self.release.wait)
        return ScanResult(scanner="stuck", info=ScannerInfo(name="stuck", backend="t"))


async def test_a_scan_that_gets_no_worker_fails_by_its_mode_and_says_so():
    policy = Policy.model_validate({"name": "t", "on_scanner_error": "fail_closed",
                                    "scanners": [{"type": "denylist", "name": "stuck",
                                                  "terms": ["x"], "timeout_ms": 30}]})
    pipe = Pipeline(policy, ScannerCache(runtime=None))
    stuck = _Pooled()
    pipe.scanners[0].scanner = stuck
    pipe.partition()
    ctx = ScanContext(text="anything at all", meta=META)
    first = await pipe.run(ctx)  # times out while its thread works on
    second = await pipe.run(ctx)  # times out waiting for that thread
    for decision in (first, second):
        [failure] = decision.failures
        assert failure.reason == "timeout" and decision.action is Action.BLOCK
    assert "stuck workers 1/1 busy" in second.failures[0].message
    stuck.release.set()
    await stuck.workers.aclose()


async def test_a_catastrophic_policy_regex_is_a_timeout_not_a_stall():
    """``(a|aa)+$`` backtracks exponentially on a run of a's that does not end the text; the
    scan ends at match_timeout_ms as a timeout and the policy's fail mode applies."""
    policy = Policy.model_validate({"name": "t", "on_scanner_error": "fail_closed", "scanners": [
        {"type": "denylist", "name": "evil", "patterns": ["(a|aa)+$"],
         "match_timeout_ms": 20}]})
    pipe = Pipeline(policy, ScannerCache(runtime=None))
    decision = await pipe.run(ScanContext(text="a" * 32 + "!", meta=META))
    [failure] = decision.failures
    assert failure.reason == "timeout" and "match_timeout_ms" in failure.message
    assert decision.action is Action.BLOCK


async def test_batcher_pool_close_fails_waiters_and_ends_the_model_thread():
    gate = threading.Event()

    def model(items: list[str]) -> list[int]:
        gate.wait()
        return [len(i) for i in items]

    pool = BatcherPool(model, max_batch=1, max_wait_ms=0)
    mb = pool.get()
    busy = asyncio.ensure_future(mb.submit("in the model"))
    queued = asyncio.ensure_future(mb.submit("queued"))
    await asyncio.sleep(0.02)
    await pool.aclose()
    closed = batcher_module.BatcherClosedError
    for fut in (busy, queued):
        with pytest.raises(closed):
            await fut
    with pytest.raises(closed):
        await mb.submit("after close")
    gate.set()
    assert pool._executor._shutdown


def test_lifespan_closes_every_scanners_pool(tmp_path):
    from guardrail.app import create_app
    from guardrail.settings import Settings

    pdir = tmp_path / "policies"
    pdir.mkdir()
    (pdir / "default.yaml").write_text(
        "name: default\nscanners:\n  - type: pii\n  - type: ip\n  - type: denylist\n"
        "    terms: [x]\n", encoding="utf-8")
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/g.db", policy_dir=pdir,
                              api_keys=["k"], scanner_workers=1))
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
    cache = app.state.guardrail.runtime.services["scanners"]
    pooled = [s.workers for s, _, _ in cache._by_key.values() if hasattr(s, "workers")]
    assert len(pooled) == 2 and all(p.size == 1 for p in pooled)

    async def after_shutdown() -> None:
        for workers in pooled:
            with pytest.raises(_workers().WorkerPoolClosedError):
                await workers.run(lambda: None)

    asyncio.run(after_shutdown())


def test_pytest_hides_no_resource_or_unraisable_warnings():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    filters = config["tool"]["pytest"]["ini_options"]["filterwarnings"]
    assert filters[0] == "error"
    hidden = [f for f in filters if f.startswith("ignore::")
              and f.split("::")[1].split(":")[0] in ("ResourceWarning",
                                                     "pytest.PytestUnraisableExceptionWarning")]
    assert hidden == []


class _StarvedOnce:
    """A compiled pattern whose first match runs out of wall-clock time without spending this
    thread's CPU (the process was descheduled, another thread held the GIL), then matches."""

    def __init__(self, real: object) -> None:
        self.real = real
        self.timeouts: list[float] = []

    def finditer(self, text: str, timeout: float) -> object:
        self.timeouts.append(timeout)
        if len(self.timeouts) == 1:
            raise TimeoutError("regex time out")
        return self.real.finditer(text, timeout=timeout)  # type: ignore[attr-defined]


async def test_a_match_starved_by_a_busy_machine_is_retried_not_failed_closed():
    """The regex bound is wall-clock; on a loaded machine an ordinary pattern can run out of it
    without backtracking. Starved (little CPU spent), the match gets one longer try and the
    redaction happens; CI once blocked an answer this way."""
    from guardrail.scanners.denylist import STARVED_RETRY
    policy = Policy.model_validate({"name": "t", "on_scanner_error": "fail_closed", "scanners": [
        {"type": "denylist", "name": "secrets", "action": "redact",
         "patterns": ["sk-[a-z0-9]{20,}"], "match_timeout_ms": 20}]})
    pipe = Pipeline(policy, ScannerCache(runtime=None))
    [loaded] = pipe.scanners
    fake = _StarvedOnce(loaded.scanner._regex)
    loaded.scanner._regex = fake
    decision = await pipe.run(ScanContext(text="the key is sk-abcdefghijklmnopqrstuvwx.",
                                          meta=META))
    assert not decision.failures
    assert decision.action is Action.REDACT
    assert fake.timeouts == [0.02, 0.02 * STARVED_RETRY]
