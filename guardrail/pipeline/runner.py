"""Runs a policy's scanners concurrently, each under its timeout, and decides."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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


@dataclass
class LoadedScanner:
    scanner: Scanner | None
    config: ScannerConfig
    info: ScannerInfo
    timeout_s: float
    fail_mode: str
    available: bool


class ScannerCache:
    """Loads each distinct scanner config once per process, shared across policies."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._by_key: dict[str, tuple[Scanner | None, ScannerInfo, bool]] = {}

    def get(self, config: ScannerConfig) -> tuple[Scanner | None, ScannerInfo, bool]:
        key = config.model_dump_json()
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
            log.warning("optional scanner %s not loaded: %s", config.instance_name, exc)
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


class Pipeline:
    """The scanners of one policy, ready to run."""

    def __init__(self, policy: Policy, cache: ScannerCache, observer: ScanObserver | None = None):
        self.policy = policy
        self.observer = observer
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
        """Split loaded scanners into inline (run in turn, no task, no timeout: they never
        await) and concurrent ones (each in a task under its timeout)."""
        self._active = [s for s in self.scanners if s.scanner is not None]
        self._inline = [s for s in self._active if getattr(s.scanner, "inline", False)]
        self._concurrent = [s for s in self._active if s not in self._inline]

    @property
    def holdback_chars(self) -> int:
        need = [s.scanner.holdback_chars for s in self.scanners if s.scanner is not None]
        return max([self.policy.stream.holdback_chars, *need])

    def describe(self) -> list[dict[str, Any]]:
        return [
            {**s.info.as_dict(), "type": s.config.type, "loaded": s.available,
             "fail_mode": s.fail_mode, "timeout_ms": int(s.timeout_s * 1000)}
            for s in self.scanners
        ]

    async def run(self, ctx: ScanContext) -> Decision:
        active = self._active
        if not active or not ctx.text:
            return Decision(action=Action.ALLOW)
        # Inline scanners (pure CPU, microseconds) run in turn without task overhead; the
        # rest run concurrently.
        inline = [await self._run_inline(s, ctx) for s in self._inline]
        others = self._concurrent
        if len(others) == 1:
            rest = [await self._run_one(others[0], ctx)]
        else:
            rest = list(await asyncio.gather(*(self._run_one(s, ctx) for s in others)))
        active = [*self._inline, *others]
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
        """Inline scanners never await: a timeout could not interrupt them, so none is set."""
        assert loaded.scanner is not None
        start = time.perf_counter()
        try:
            result = await loaded.scanner.scan(ctx)
        except Exception as exc:  # noqa: BLE001
            log.exception("scanner %s failed", loaded.info.name)
            return self._failure(loaded, "error", f"{type(exc).__name__}: {exc}"[:500], start)
        if self.observer:
            self.observer(loaded.info.name, "ok", time.perf_counter() - start)
        return result

    async def _run_one(
        self, loaded: LoadedScanner, ctx: ScanContext
    ) -> ScanResult | ScannerFailure:
        assert loaded.scanner is not None
        start = time.perf_counter()
        reason, message = "", ""
        try:
            async with asyncio.timeout(loaded.timeout_s):
                result = await loaded.scanner.scan(ctx)
        except TimeoutError:
            reason, message = "timeout", f"no result within {loaded.timeout_s * 1000:.0f} ms"
        except Exception as exc:  # noqa: BLE001 - any scanner bug becomes a recorded failure
            log.exception("scanner %s failed", loaded.info.name)
            reason, message = "error", f"{type(exc).__name__}: {exc}"[:500]
        else:
            if self.observer:
                self.observer(loaded.info.name, "ok", time.perf_counter() - start)
            return result
        return self._failure(loaded, reason, message, start)

    def _failure(
        self, loaded: LoadedScanner, reason: str, message: str, start: float
    ) -> ScannerFailure:
        if self.observer:
            self.observer(loaded.info.name, reason, time.perf_counter() - start)
        closed = loaded.fail_mode == "fail_closed"
        return ScannerFailure(
            scanner=loaded.info.name,
            info=loaded.info,
            reason=reason,
            message=message,
            fail_mode=loaded.fail_mode,
            action=self.policy.fail_closed_action if closed else Action.FLAG,
        )
