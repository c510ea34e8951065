"""What the API's own error format is, checked in one place (access matrix and fuzzing)."""

from __future__ import annotations


def error_problem(status: int, content_type: str | None, content: bytes) -> str | None:
    """Why a JSON route's error response is not in guardrail's (OpenAI-style) format:
    ``{"error": {"message": str, "type": str, "param": str | null, "code": str | null}}``
    as ``application/json``. None when it is."""
    import json

    ctype = (content_type or "").split(";")[0].strip()
    if ctype != "application/json":
        return f"HTTP {status}: content-type {ctype!r}, not application/json"
    try:
        body = json.loads(content)
    except ValueError:
        return f"HTTP {status}: body is not JSON: {content[:200]!r}"
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return f"HTTP {status}: no 'error' object: {content[:300]!r}"
    problems = []
    if not isinstance(err.get("message"), str) or not err["message"]:
        problems.append("message is not a non-empty string")
    if not isinstance(err.get("type"), str) or not err["type"]:
        problems.append("type is not a non-empty string")
    for field in ("param", "code"):
        if field not in err:
            problems.append(f"no {field!r}")
        elif err[field] is not None and not isinstance(err[field], str):
            problems.append(f"{field} is {type(err[field]).__name__}, not a string or null")
    if problems:
        return f"HTTP {status}: {', '.join(problems)}: {content[:300]!r}"
    return None
