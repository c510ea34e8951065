"""Client-side helpers shared by end-to-end tests."""

from __future__ import annotations

import shutil
from typing import Any

import pytest

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def collect(stream: Any) -> tuple[str, str | None, dict[str, Any]]:
    """Drain an openai SDK chat stream: released text, last finish_reason, guardrail object."""
    text, finish, guard = "", None, {}
    for chunk in stream:
        extra = chunk.model_extra or {}
        if "guardrail" in extra:
            guard = extra["guardrail"]
        for ch in chunk.choices:
            text += ch.delta.content or ""
            finish = ch.finish_reason or finish
    return text, finish, guard


def launch_chromium(playwright: Any) -> Any:
    """Debian's chromium driven by Playwright (no browser download)."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("Debian chromium is not installed (apt-get install chromium)")
    return playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
