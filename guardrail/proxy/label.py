"""The label stage: every disclosure decision for one response, in one object.

Built once per exchange from the policy, the requested model and the request id; the JSON
path, the SSE relay, the held copy and the image routes all ask it (headers, the
``guardrail.disclosure`` field, the visible notice on whole texts and as a stream delta), so no
route decides labelling on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from guardrail.labelling.disclosure import (
    apply_notice,
    disclosure_field,
    disclosure_headers,
    notice_delta,
)
from guardrail.pipeline.types import detect_language

if TYPE_CHECKING:
    from guardrail.policy import Policy


@dataclass(frozen=True)
class Labels:
    policy: Policy
    model: str | None  # the model the client asked for (what the disclosure names)
    request_id: str

    @property
    def notice_on(self) -> bool:
        lab = self.policy.labelling
        return bool(lab.disclosure and lab.notice.position != "off")

    @property
    def kind(self) -> str | None:
        """How a released text response counts as labelled (guardrail/labelling/counts.py):
        ``notice`` (visible notice and metadata), ``text`` (metadata only) or None (the
        policy discloses nothing)."""
        if not self.policy.labelling.disclosure:
            return None
        return "notice" if self.notice_on else "text"

    def released(self, extras: dict[str, Any]) -> None:
        """Count one labelled text response going out."""
        counts = extras.get("label_counts")
        if counts is not None and self.kind is not None:
            counts.add(self.policy.name, self.kind)

    def headers(self) -> dict[str, str]:
        return disclosure_headers(self.policy, self.model, self.request_id)

    def field(self) -> dict[str, Any] | None:
        return disclosure_field(self.policy, self.model)

    def text(self, released: str, original: str) -> str:
        """A whole output text with the visible notice, in the language of ``original``."""
        if not self.notice_on:
            return released
        return apply_notice(self.policy, released, detect_language(original), self.model,
                            self.request_id)

    def stream_notice(self, text_so_far: str | None
                      ) -> tuple[Literal["prepend", "append"], str] | None:
        """The notice as an extra SSE content delta (None: no notice); language from the
        text so far (None: the position only)."""
        lang = detect_language(text_so_far) if text_so_far else None
        return notice_delta(self.policy, lang, self.model, self.request_id)
