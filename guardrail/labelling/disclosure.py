"""Disclosure of AI-generated text: response headers, the ``guardrail.disclosure`` field, and
an optional visible notice (METI AI Guidelines for Business; G7 Hiroshima Code action 7; EU AI
Act Art. 50(2) machine-readable marking).

Pure functions: the chat/completions routes call them; nothing here does I/O.

Text is not C2PA-signed. The C2PA 2.3+ "Embedding Manifests into Unstructured Text" method
needs a signed manifest store hard-bound to the text; c2pa-python cannot sign ``text/plain``
and the packages that embed the variation-selector wrapper (c2pa-text,
c2pa-unstructured-text) do not produce the signed manifest themselves. We do not hand-roll
C2PA, so the headers and field below are the machine-readable marking for text.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from guardrail.labelling.config import DEFAULT_NOTICE_TEXTS

if TYPE_CHECKING:
    from guardrail.policy import Policy

_UNSAFE = re.compile(r"[^\x20-\x7e]")


def _header_value(value: str, limit: int = 200) -> str:
    """Header values must be visible ASCII: replace anything else, cap the length."""
    return _UNSAFE.sub("?", value)[:limit]


def disclosure_headers(
    policy: Policy, upstream_model: str | None, request_id: str | None = None
) -> dict[str, str]:
    """Headers stating that the response is AI-generated, by which model, under which policy.

    Empty when the policy turns disclosure or headers off. Names: ``X-AI-Generated: true``,
    ``X-Guardrail-AI-Model``, ``X-Guardrail-Policy: name@version``,
    ``X-Guardrail-Request-Id`` (prefix configurable with ``labelling.header_prefix``).
    """
    lab = policy.labelling
    if not (lab.disclosure and lab.headers):
        return {}
    p = lab.header_prefix
    out = {
        "X-AI-Generated": "true",
        f"{p}AI-Model": _header_value(upstream_model or "unknown"),
        f"{p}Policy": _header_value(f"{policy.name}@{policy.version}"),
        f"{p}AI-Disclosure": "ai-generated; notice="
        + (lab.notice.position if lab.notice.position != "off" else "none"),
    }
    if request_id:
        out[f"{p}Request-Id"] = _header_value(request_id)
    return out


def disclosure_field(policy: Policy, upstream_model: str | None) -> dict[str, Any] | None:
    """The value of ``guardrail["disclosure"]`` in a response, or None when disabled."""
    lab = policy.labelling
    if not lab.disclosure:
        return None
    return {
        "ai_generated": True,
        "model": upstream_model,
        "generator": "guardrail",
        "policy": policy.name,
        "policy_version": policy.version,
        "system": policy.system,
        "notice": None if lab.notice.position == "off" else lab.notice.position,
        "text_c2pa": False,
    }


def _notice_text(policy: Policy, language: str | None) -> str:
    texts = policy.labelling.notice.texts
    lang = (language or "en").lower().split("-")[0]
    for candidate in (lang, "en"):
        if candidate in texts:
            return texts[candidate]
    if texts:
        return next(iter(texts.values()))
    return DEFAULT_NOTICE_TEXTS.get(lang, DEFAULT_NOTICE_TEXTS["en"])


def visible_notice(
    policy: Policy, language: str | None, upstream_model: str | None,
    request_id: str | None = None,
) -> tuple[Literal["prepend", "append"], str] | None:
    """``(position, text)`` of the visible notice for ``language`` ('en', 'ja', ...; falls
    back to 'en'), or None when the policy does not ask for one. ``text`` excludes the
    separator; :func:`apply_notice` and :func:`notice_delta` add it."""
    lab = policy.labelling
    pos = lab.notice.position
    if not lab.disclosure or pos == "off":
        return None
    text = _notice_text(policy, language).format(
        model=upstream_model or "an AI model", policy=policy.name, version=policy.version,
        request_id=request_id or "-",
    )
    return pos, text


def apply_notice(
    policy: Policy, content: str, language: str | None, upstream_model: str | None,
    request_id: str | None = None,
) -> str:
    """``content`` with the visible notice added where the policy asks (non-streaming)."""
    notice = visible_notice(policy, language, upstream_model, request_id)
    if notice is None:
        return content
    pos, text = notice
    sep = policy.labelling.notice.separator
    return text + sep + content if pos == "prepend" else content + sep + text


def notice_delta(
    policy: Policy, language: str | None, upstream_model: str | None,
    request_id: str | None = None,
) -> tuple[Literal["prepend", "append"], str] | None:
    """For streaming: the text of the extra content delta, separator included. A ``prepend``
    delta goes before the first content chunk, an ``append`` delta in a final chunk before
    ``[DONE]``."""
    notice = visible_notice(policy, language, upstream_model, request_id)
    if notice is None:
        return None
    pos, text = notice
    sep = policy.labelling.notice.separator
    return pos, (text + sep if pos == "prepend" else sep + text)
