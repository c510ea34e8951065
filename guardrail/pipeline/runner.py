"""Runs a policy's scanners concurrently, each under its timeout, and decides."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from guardrail.logs import event
from guardrail.pipeline.protocol import Pooled
from guardrail.pipeline.registry import scanner_class
from guardrail.pipeline.types import (
    Action,
    Decision,
    RuledFinding,
    ScanContext,
    ScannerFailure,
    ScannerInfo,
    ScanResult,
)

if TYPE_CHECKING:
    from guardrail.pipeline.protocol import Scanner, ScannerConfig
    from guardrail.policy import Policy
    from guardrail.runtime import Runtime

log = logging.getLogger("guardrail.pipeline")

# Observer hooks (metrics) get (scanner_name, outcome, seconds); outcome is ok|timeout|error.
ScanObserver = Callable[[str, str, float], None]
# Failure hooks get (scanner_name, reason, fail_mode, enforcement): reason timeout|error,
# fail_mode fail_open|fail_closed, enforcement enforce|monitor.
FailureObserver = Callable[[str, str, str, str], None]


@dataclass
class LoadedScanner:
    scanner: Scanner | None
    config: ScannerConfig
    info: ScannerInfo
    timeout_s: float
    fail_mode: str
    available: bool

    @property
    def enforcement(self) -> str:
        """``enforce`` or ``monitor``."""
        return self.config.enforcement


class ScannerCache:
    """Loads each distinct scanner config once per process, shared across policies."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._by_key: dict[str, tuple[Scanner | None, ScannerInfo, bool]] = {}

    def get(self, config: ScannerConfig) -> tuple[Scanner | None, ScannerInfo, bool]:
        # enforcement decides when a scanner runs, not what it loads: an enforce and a
        # monitor instance of the same config share one loaded scanner
        key = config.model_dump_json(exclude={"enforcement"})
        hit = self._by_key.get(key)
        if hit is not None:
            return hit
        from guardrail.errors import ScannerLoadError

        cls = scanner_class(config.type)
        scanner = cls(config, self.runtime)
        try:
            scanner.load()
            entry: tuple[Scanner | None, ScannerInfo, bool] = (scanner, scanner.info(), True)
        except ScannerLoadError as exc:
            if not config.optional:
                raise
            event(log, logging.WARNING, "scanner_not_loaded", scanner=config.instance_name,
                  backend=exc.backend, optional=True, missing=exc.missing)
            entry = (
                None,
                ScannerInfo(
                    name=config.instance_name,
                    backend=exc.backend,
                    model=exc.model,
                    degraded=f"not loaded: {exc.missing}",
                ),
                False,
            )
        self._by_key[key] = entry
        return entry

    async def aclose(self) -> None:
        """Release every loaded scanner's threads and clients (the app's lifespan, at
        shutdown); each one once, whatever the number of policies sharing it."""
        from guardrail.pipeline.protocol import Closeable

        for scanner, info, _ok in self._by_key.values():
            if isinstance(scanner, Closeable):
                try:
                    await scanner.aclose()
                except Exception as exc:  # noqa: BLE001 - one failure must not stop the rest
                    event(log, logging.WARNING, "scanner_close_failed", scanner=info.name,
                          error=type(exc).__name__)


class Pipeline:
    """The scanners of one policy, ready to run.

    :meth:`run` runs the enforce-mode scanners (the response waits for them and their actions
    apply); :meth:`run_monitor` runs the monitor-mode ones, which the proxy calls in the
    background after (or alongside) the release, so they never delay or change a response.
    """

    def __init__(self, policy: Policy, cache: ScannerCache, observer: ScanObserver | None = None,
                 on_failure: FailureObserver | None = None):
        self.policy = policy
        self.observer = observer
        self.on_failure = on_failure
        self.scanners: list[LoadedScanner] = []
        for cfg in policy.scanners:
            scanner, info, ok = cache.get(cfg)
            self.scanners.append(
                LoadedScanner(
                    scanner=scanner,
                    config=cfg,
                    info=info,
                    timeout_s=(cfg.timeout_ms or policy.scanner_timeout_ms) / 1000.0,
                    fail_mode=cfg.on_error or policy.on_scanner_error,
                    available=ok,
                )
            )

        self.partition()

    def partition(self) -> None:
        """Split loaded scanners by enforcement, then into inline (run in turn, no task, no timeout:
        they never await) and concurrent ones (each in a task under its timeout)."""
        loaded = [s for s in self.scanners if s.scanner is not None]
        self._active = [s for s in loaded if s.enforcement == "enforce"]
        self._inline = [s for s in self._active if getattr(s.scanner, "inline", False)]
        self._concurrent = [s for s in self._active if s not in self._inline]
        self._monitors = [s for s in loaded if s.enforcement == "monitor"]
        self._monitor_inline = [s for s in self._monitors if getattr(s.scanner, "inline", False)]
        self._monitor_concurrent = [s for s in self._monitors if s not in self._monitor_inline]

    @property
    def monitored(self) -> list[str]:
        """Names of the loaded monitor-mode scanners (empty: nothing runs after release)."""
        return [s.info.name for s in self._monitors]

    @property
    def holdback_chars(self) -> int:
        """Only enforce-mode scanners hold text back: monitor ones scan the whole text once
        the stream has ended."""
        need = [s.scanner.holdback_chars for s in self.scanners
                if s.scanner is not None and s.enforcement == "enforce"]
        return max([self.policy.stream.holdback_chars, *need])

    @property
    def release_floor(self) -> int:
        """Trailing characters a stream holds whatever the text: the policy's
        ``stream.holdback_chars`` and the fixed window of each scanner that cannot bound its
        release by the text (no ``safe_release``)."""
        from guardrail.pipeline.protocol import ReleaseBounded

        need = [s.scanner.holdback_chars for s in self._active
                if s.scanner is not None and not isinstance(s.scanner, ReleaseBounded)]
        return max([self.policy.stream.holdback_chars, *need])

    def safe_release(self, text: str, scanned_upto: int) -> int:
        """How far a stream may be released: the smallest offset into ``text`` (just scanned
        up to ``scanned_upto``) that any scanner allows
        (:func:`~guardrail.pipeline.protocol.release_bound`), and never within the policy's
        ``stream.holdback_chars`` of the end. A bound that raises falls back to the
        scanner's fixed window."""
        from guardrail.pipeline.protocol import release_bound

        bound = scanned_upto - self.policy.stream.holdback_chars
        for s in self._active:
            if s.scanner is None:
                continue
            try:
                b = release_bound(s.scanner, text, scanned_upto)
            except Exception as exc:  # noqa: BLE001 - a bound bug must not end the stream
                event(log, logging.WARNING, "release_bound_failed",  # holds its fixed window
                      scanner=s.info.name, error=type(exc).__name__)
                b = scanned_upto - s.scanner.holdback_chars
            bound = min(bound, b)
        return max(0, bound)

    def describe(self) -> list[dict[str, Any]]:
        return [
            {**s.info.as_dict(), "type": s.config.type, "loaded": s.available,
             "enforcement": s.enforcement, "fail_mode": s.fail_mode,
             "timeout_ms": int(s.timeout_s * 1000)}
            for s in self.scanners
        ]

    async def run(self, ctx: ScanContext) -> Decision:
        """The enforce-mode scanners' decision on ``ctx.text``."""
        return await self._run(ctx, self._inline, self._concurrent)

    async def run_monitor(self, ctx: ScanContext) -> Decision:
        """The monitor-mode scanners' decision on ``ctx.text``: what the policy would have done
        had they been enforced. The caller records it and never applies it."""
        return await self._run(ctx, self._monitor_inline, self._monitor_concurrent)

    async def _run(self, ctx: ScanContext, inline_scanners: list[LoadedScanner],
                   others: list[LoadedScanner]) -> Decision:
        if not (inline_scanners or others) or not ctx.text:
            return Decision(action=Action.ALLOW)
        # Inline scanners (pure CPU, microseconds) run in turn without task overhead; the
        # rest run concurrently.
        inline = [await self._run_inline(s, ctx) for s in inline_scanners]
        if len(others) == 1:
            rest = [await self._run_one(others[0], ctx)]
        else:
            rest = list(await asyncio.gather(*(self._run_one(s, ctx) for s in others)))
        active = [*inline_scanners, *others]
        outcomes = [*inline, *rest]
        ruled: list[RuledFinding] = []
        failures: list[ScannerFailure] = []
        results: list[ScanResult] = []
        for loaded, outcome in zip(active, outcomes, strict=True):
            if isinstance(outcome, ScannerFailure):
                failures.append(outcome)
                continue
            results.append(outcome)
            for f in outcome.findings:
                tier = loaded.config.decide_finding(f)
                if tier is not None:
                    ruled.append(RuledFinding(f, tier[1], tier[0]))
        actions = [r.action for r in ruled] + [f.action for f in failures]
        return Decision(
            action=Action.strongest(actions),
            findings=tuple(ruled),
            failures=tuple(failures),
            results=tuple(results),
        )

    async def _run_inline(
        self, loaded: LoadedScanner, ctx: ScanContext
    ) -> ScanResult | ScannerFailure:
        """Inline scanners never await: a timeout could not interrupt them, so none is set;
        they bound their own work (the denylist's regular expressions have a match timeout,
        :class:`guardrail.errors.ScanTimeoutError`, recorded as a timeout)."""
        assert loaded.scanner is not None
        start = time.perf_counter()
        try:
            result = await loaded.scanner.scan(ctx)
        except TimeoutError as exc:
            return self._failure(loaded, ctx, "timeout", str(exc)[:500], start)
        except Exception as exc:  # noqa: BLE001
            return self._failure(loaded, ctx, "error", f"{type(exc).__name__}: {exc}"[:500],
                                 start, exc)
        if self.observer:
            self.observer(loaded.info.name, "ok", time.perf_counter() - start)
        return result

    async def _run_one(
        self, loaded: LoadedScanner, ctx: ScanContext
    ) -> ScanResult | ScannerFailure:
        assert loaded.scanner is not None
        start = time.perf_counter()
        reason, message = "", ""
        error: Exception | None = None
        try:
            async with asyncio.timeout(loaded.timeout_s):
                result = await loaded.scanner.scan(ctx)
        except TimeoutError:
            reason, message = "timeout", f"no result within {loaded.timeout_s * 1000:.0f} ms"
            if isinstance(loaded.scanner, Pooled):  # honest: was it waiting for a thread?
                message += f" ({loaded.scanner.workers.describe_load()})"
        except Exception as exc:  # noqa: BLE001 - any scanner bug becomes a recorded failure
            reason, message, error = "error", f"{type(exc).__name__}: {exc}"[:500], exc
        else:
            if self.observer:
                self.observer(loaded.info.name, "ok", time.perf_counter() - start)
            return result
        return self._failure(loaded, ctx, reason, message, start, error)

    def _failure(
        self, loaded: LoadedScanner, ctx: ScanContext, reason: str, message: str, start: float,
        error: Exception | None = None,
    ) -> ScannerFailure:
        name = loaded.info.name
        elapsed = time.perf_counter() - start
        if self.observer:
            self.observer(name, reason, elapsed)
        if self.on_failure:
            self.on_failure(name, reason, loaded.fail_mode, loaded.enforcement)
        # Never silent, never content: the exception's message may quote the text under scan,
        # so the line names only its type (the message goes to the incident record, and the
        # traceback to DEBUG).
        closed = loaded.fail_mode == "fail_closed"
        facts: dict[str, Any] = {
            "request_id": ctx.meta.request_id, "scanner": name, "reason": reason,
            "fail_mode": loaded.fail_mode, "fail_open": not closed,
            "enforcement": loaded.enforcement, "ms": round(elapsed * 1000, 1)}
        if error is not None:
            facts["error"] = type(error).__name__
        if isinstance(loaded.scanner, Pooled):
            facts["workers"] = loaded.scanner.workers.load()
        event(log, logging.WARNING, "scanner_failure", **facts)
        if error is not None:
            log.debug("scanner %s traceback (request_id=%s)", name, ctx.meta.request_id,
                      exc_info=error)
        return ScannerFailure(
            scanner=name,
            info=loaded.info,
            reason=reason,
            message=message,
            fail_mode=loaded.fail_mode,
            action=self.policy.fail_closed_action if closed else Action.FLAG,
            elapsed_ms=elapsed * 1000,
        )
