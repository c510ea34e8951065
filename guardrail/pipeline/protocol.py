"""The one contract every detector implements.

A scanner is built as ``cls(config, runtime)`` from its validated config (a
:class:`ScannerConfig` subclass) and the process :class:`guardrail.runtime.Runtime`; it loads its
models once in :meth:`Scanner.load` (start-up, not per request), and returns findings from
:meth:`Scanner.scan`. It never decides the action: the policy does, in the runner.

Scanner modules must not import heavy libraries (torch, presidio, ...) at module level:
the policy loader imports them to validate configs, and ``guardrail policy check`` must stay
fast. Import inside ``load()``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from guardrail.pipeline.types import Action, Finding, ScanContext, ScannerInfo, ScanResult

if TYPE_CHECKING:
    from guardrail.pipeline.workers import WorkerPool

FailMode = Literal["fail_open", "fail_closed"]
Enforcement = Literal["enforce", "monitor"]


class CategoryRule(BaseModel):
    """Threshold and action for one finding category."""

    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(0.5, ge=0.0, le=1.0)
    action: Action | None = None
    flag_threshold: float | None = Field(None, ge=0.0, le=1.0)


class ScannerConfig(BaseModel):
    """Fields every scanner config has. Subclasses add their own and set ``type``."""

    model_config = ConfigDict(extra="forbid")

    type: str
    name: str | None = Field(None, description="Instance name; defaults to the type.")
    action: Action = Field(Action.BLOCK, description="Action for findings at/above threshold.")
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    flag_threshold: float | None = Field(
        None, ge=0.0, le=1.0,
        description="Findings scoring at/above this but below `threshold` are flagged for "
        "review (a second, softer tier; e.g. block >= 0.95, flag >= 0.8).",
    )
    categories: dict[str, CategoryRule] = Field(
        default_factory=dict, description="Per-category threshold/action overrides."
    )
    timeout_ms: int | None = Field(None, gt=0, description="Overrides the policy default.")
    on_error: FailMode | None = Field(None, description="Overrides the policy default.")
    optional: bool = Field(
        False, description="If it cannot load, run without it (shown at /readyz, on incidents)."
    )
    # not ``mode``: the pii scanner's config already has a ``mode`` (pattern | ner)
    enforcement: Enforcement = Field(
        "enforce",
        description="`enforce`: the response waits for this scanner and its action applies. "
        "`monitor`: the response is released without waiting; the scanner runs in the "
        "background and its findings are recorded as incidents (with the action the policy "
        "would have taken) but never change the response.",
    )

    @property
    def instance_name(self) -> str:
        return self.name or self.type

    def rule_for(self, category: str) -> tuple[float, Action]:
        rule = self.categories.get(category)
        if rule is None:
            return self.threshold, self.action
        return rule.threshold, rule.action or self.action

    def decide(self, category: str, score: float,
               override: CategoryRule | None = None) -> tuple[float, Action] | None:
        """The (threshold, action) a finding of this score earns, or None below every tier.
        ``override`` (a narrower rule, e.g. per language) wins field by field; its unset
        fields fall back to the category rule, then to the scanner's own."""
        threshold, action = self.rule_for(category)
        rule = self.categories.get(category)
        soft = rule.flag_threshold if rule is not None and rule.flag_threshold is not None \
            else self.flag_threshold
        if override is not None:
            threshold, action = override.threshold, override.action or action
            if override.flag_threshold is not None:
                soft = override.flag_threshold
        if score >= threshold:
            return threshold, action
        if soft is not None and soft < threshold and score >= soft:
            return soft, Action.FLAG
        return None

    def decide_finding(self, finding: Finding) -> tuple[float, Action] | None:
        """What the runner calls: :meth:`decide` on the finding's category and score. A config
        whose rules depend on more than that (the harm scanner's per-language rules) overrides
        this."""
        return self.decide(finding.category, finding.score)


@runtime_checkable
class Scanner(Protocol):
    """A detector. See the module docstring for the contract."""

    config_class: ClassVar[type[ScannerConfig]]
    name: str
    config: Any

    def load(self) -> None:
        """Load models/resources. Raise :class:`guardrail.errors.ScannerLoadError` on failure."""

    def info(self) -> ScannerInfo:
        """Backend, model and version actually in use."""

    @property
    def holdback_chars(self) -> int:
        """How many trailing characters of a stream must stay unreleased so that a match
        starting there can still be completed by the next chunk."""

    async def scan(self, ctx: ScanContext) -> ScanResult:
        """Scan ``ctx.text``; never mutate it."""


@runtime_checkable
class ReleaseBounded(Protocol):
    """Optional part of the contract: a scanner that says, from the text itself, how far a
    stream may be released (instead of a fixed :attr:`Scanner.holdback_chars` window)."""

    def safe_release(self, text: str, scanned_upto: int) -> int:
        """Offset into ``text`` up to which this scanner is satisfied: no finding it could make
        once more text follows would include anything before it. ``text[:scanned_upto]`` has
        just been scanned by this scanner (the relay's window: released context, then held
        text). At most ``scanned_upto``; must be cheap (it runs after every stream scan)."""


@runtime_checkable
class Pooled(Protocol):
    """Optional: a scanner whose blocking work runs on its own bounded
    :class:`guardrail.pipeline.workers.WorkerPool` (the runner reports the pool's load when
    such a scan times out)."""

    @property
    def workers(self) -> WorkerPool: ...


@runtime_checkable
class Closeable(Protocol):
    """Optional: a scanner holding resources (threads, clients) that the app's lifespan
    releases at shutdown, through :meth:`guardrail.pipeline.runner.ScannerCache.aclose`."""

    async def aclose(self) -> None: ...


def release_bound(scanner: Scanner, text: str, scanned_upto: int) -> int:
    """:meth:`ReleaseBounded.safe_release` where the scanner has it, else everything but its
    fixed :attr:`Scanner.holdback_chars` window."""
    if isinstance(scanner, ReleaseBounded):
        return min(scanned_upto, scanner.safe_release(text, scanned_upto))
    return scanned_upto - scanner.holdback_chars
