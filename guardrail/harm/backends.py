"""The harm backends' contract and registry.

Every backend the ``harm`` scanner can run implements :class:`HarmBackend` (name, model,
version, ``missing()``, ``load()``, ``details()``) and one way of scoring: a blocking
:class:`BatchHarmBackend` (``predict``, run in the model thread through the micro-batcher),
optionally tiered (:class:`TieredHarmBackend`: ``prefilter`` runs inline before queueing,
``predict_deep`` is the batcher's model function), or an awaited
:class:`guardrail.harm.remote.AsyncHarmBackend` (network). :func:`build_backend` is the one
place that maps a policy's ``backend:`` onto a class; backend modules import only this one,
never each other. :class:`BackendLoadError` is what a backend raises when it cannot load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from guardrail.errors import ScannerError


class BackendLoadError(ScannerError):
    """Raised by a backend's ``load()``; the scanner turns it into ScannerLoadError."""


@runtime_checkable
class HarmBackend(Protocol):
    name: str

    @property
    def version(self) -> str | None:
        """The loaded model's version (a file hash, a revision), shown on every incident."""

    @property
    def model(self) -> Any:
        """What it loaded (a path, a variant or hub id, a remote model name)."""

    def missing(self) -> str | None:
        """What prevents loading (a package, a file), or None."""

    def load(self) -> None:
        """Load once; raise :class:`BackendLoadError`."""

    def details(self) -> dict[str, Any]:
        """What runs, for start-up logs, ``/readyz`` details and incidents."""


@runtime_checkable
class BatchHarmBackend(HarmBackend, Protocol):
    def predict(self, texts: list[str]) -> list[dict[str, float]]:
        """Per text, category -> score in [0, 1] (blocking; the model thread runs it)."""


@runtime_checkable
class TieredHarmBackend(BatchHarmBackend, Protocol):
    cascade: bool

    def prefilter(self, texts: list[str]) -> list[dict[str, float] | None]:
        """Scores of the texts the cheap tier settles (inline), None for the rest."""

    def predict_deep(self, texts: list[str]) -> list[dict[str, float]]:
        """Scores of texts the cheap tier did not settle (the batcher's model function)."""


def build_backend(kind: str, model: str | None, **kw: Any) -> HarmBackend:
    """Backend object for ``kind`` (used by the scanner and the benchmarks)."""
    if kind in ("detoxify", "transformers"):
        from guardrail.harm.hf import DetoxifyBackend, TransformersBackend

        if kind == "detoxify":
            return DetoxifyBackend(model or "original", **kw)
        if not model:
            raise BackendLoadError("transformers backend needs model (a directory or hub id)")
        return TransformersBackend(model, **kw)
    if kind == "embedded":
        from guardrail.harm.embedded import EmbeddedBackend

        return EmbeddedBackend(Path(model) if model else None, **kw)
    if kind in ("openai-moderation", "llm-judge", "serving"):
        url = kw.pop("url", None)
        if not url:
            raise BackendLoadError(f"{kind} backend needs url (the server's base URL)")
        if kind == "openai-moderation":
            from guardrail.harm.openai_moderation import OpenAIModerationBackend

            return OpenAIModerationBackend(url, model, **kw)
        if kind == "serving":  # a classifier on TEI or a KServe v2 server
            from guardrail.harm.serving import ServingBackend

            return ServingBackend(url, model, **kw)
        from guardrail.harm.llm_judge import LLMJudgeBackend

        return LLMJudgeBackend(url, model, **kw)
    raise BackendLoadError(f"unknown harm backend {kind!r}")
