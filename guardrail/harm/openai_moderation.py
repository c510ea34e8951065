"""The ``openai-moderation`` harm backend: any ``/v1/moderations`` endpoint, OpenAI's or one
that speaks its format.

One request carries up to ``max_batch`` chunk texts as a list ``input``; larger scans send
several requests concurrently. Each result's ``category_scores`` are mapped onto our taxonomy
through the policy's ``label_map`` first, then :data:`guardrail.harm.taxonomy.OPENAI_MODERATION`
(the highest score wins where two of theirs map onto one of ours, e.g. ``self-harm`` and
``self-harm/intent``); categories that map to nothing are ignored. An answer in which no
category maps onto ours, a result count that differs from the input count, or a score that is
not a number in [0, 1] is a :class:`guardrail.errors.RemoteAnswerError`, never "safe".
"""

from __future__ import annotations

import math
from typing import Any

from guardrail.harm.remote import RemoteBackend, gather_all
from guardrail.harm.taxonomy import OPENAI_MODERATION


class OpenAIModerationBackend(RemoteBackend):
    name = "openai-moderation"
    path = "moderations"

    def __init__(self, url: str, model: str | None = None, *, max_batch: int = 16,
                 **kw: Any) -> None:
        super().__init__(url, model, **kw)
        self.max_batch = max_batch

    def _category(self, label: str) -> str | None:
        if label in self.label_map:
            return self.label_map[label]
        return OPENAI_MODERATION.get(label)

    def body(self, texts: list[str]) -> dict[str, Any]:
        body: dict[str, Any] = {"input": texts}
        if self.model:
            body["model"] = self.model
        return body

    def read(self, answer: Any, texts: list[str]) -> list[dict[str, float]]:
        results = answer.get("results") if isinstance(answer, dict) else None
        if not isinstance(results, list):
            raise self.answer_error("answer has no 'results' list")
        if len(results) != len(texts):
            raise self.answer_error(f"{len(results)} results for {len(texts)} inputs")
        out: list[dict[str, float]] = []
        for i, res in enumerate(results):
            scores = res.get("category_scores") if isinstance(res, dict) else None
            if not isinstance(scores, dict):
                raise self.answer_error(f"result {i} has no 'category_scores' object")
            d: dict[str, float] = {}
            for label, v in scores.items():
                cat = self._category(str(label))
                if cat is None:
                    continue
                if isinstance(v, bool) or not isinstance(v, int | float) \
                        or not math.isfinite(v) or not 0.0 <= v <= 1.0:
                    raise self.answer_error(f"result {i}: score of {label!r} is not in [0, 1]")
                d[cat] = max(d.get(cat, 0.0), float(v))
            if not d:
                raise self.answer_error(
                    f"result {i}: no category maps onto ours (got {sorted(scores)[:8]})")
            out.append(d)
        if isinstance(answer.get("model"), str):
            self.version = answer["model"]
        return out

    async def apredict(self, texts: list[str]) -> list[dict[str, float]]:
        if not texts:
            return []
        n = self.max_batch
        parts = [texts[i:i + n] for i in range(0, len(texts), n)]
        if len(parts) == 1:
            return await self.post(parts[0])
        done = await gather_all([self.post(p) for p in parts])
        return [d for part in done for d in part]
