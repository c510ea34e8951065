"""The operations log: stdlib logging, one JSON object per line or ``key=value`` text.

``GUARDRAIL_LOG_FORMAT=json`` (the default, what ``guardrail serve`` writes) or ``text`` (for a
terminal). :func:`configure` installs the one handler on the root logger; everything logs
through it, uvicorn and the libraries included.

An event is a logging call made through :func:`event`: a name and its facts. A JSON line is
``{"ts", "level", "logger", "event", ...facts}``; every other formatter (text, pytest's) shows
the record's message, ``name key=value ...``::

    event(log, logging.INFO, "decision", request_id=rid, decision="redact", ...)

Events guardrail writes:

* ``access`` (``guardrail.access``, info): ``method``, ``route`` (the route *template*, e.g.
  ``/v1/guardrail/incidents/{incident_id}``, never the raw path or its query string),
  ``status``, ``ms``, ``request_id``.
* ``decision`` (``guardrail.decision``, info): one per proxied response: ``request_id``,
  ``key_id``, ``tenant``, ``policy`` (``name@version``), ``route``, ``decision``,
  ``incident_ids``, ``scanner_ms`` (scanner -> milliseconds, summed over the texts and stream
  windows it scanned), ``stream``, and ``failed`` (scanners that timed out or errored).
* ``scanner_failure`` (``guardrail.pipeline``, warning): ``reason`` (``timeout`` | ``error``),
  ``fail_mode``, ``fail_open`` (true: the response goes out without that scanner's verdict),
  ``enforcement``, ``error`` (the exception's type), ``ms``, and ``workers`` for a scanner
  with a worker pool (how busy it was).
* ``scanner_degraded`` / ``scanner_not_loaded`` (warning, at start-up).
* ``store_unavailable``, ``stream_withheld`` (error): a response withheld because its incident
  could not be written.

Never in a line: the text under scan or any part of it, request or response bodies, headers,
client or upstream keys (a key's id, a hash prefix, stands for it), exception messages (they
may quote content: the type is logged; JSON lines carry a traceback's frames, not its text).
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from datetime import UTC, datetime
from typing import IO, Any

# Libraries whose INFO lines are per-call chatter, or name URLs (httpx logs every request's
# URL, query string included): warnings and errors only.
QUIET = ("presidio-analyzer", "presidio-anonymizer", "alembic", "httpx", "httpcore",
         "uvicorn.access", "multipart", "filelock", "urllib3")
HANDLER_NAME = "guardrail"


class _Message:
    """A record's message, rendered only when a formatter asks (``name key=value ...``)."""

    __slots__ = ("name", "facts")

    def __init__(self, name: str, facts: dict[str, Any]) -> None:
        self.name, self.facts = name, facts

    def __str__(self) -> str:
        return " ".join([self.name, *(f"{k}={_value(v)}" for k, v in self.facts.items())])


def _value(v: Any) -> str:
    if isinstance(v, str):
        return v if v and " " not in v and "=" not in v else json.dumps(v, ensure_ascii=False)
    return json.dumps(v, ensure_ascii=False, default=str, separators=(",", ":"))


def event(logger: logging.Logger, level: int, name: str, /, *,
          exc_info: BaseException | None = None, **facts: Any) -> None:
    """Log event ``name`` with ``facts`` (JSON-serialisable values: ids, names, numbers)."""
    if logger.isEnabledFor(level):
        logger.log(level, "%s", _Message(name, facts), exc_info=exc_info, stacklevel=2,
                   extra={"event": name, "fields": facts})


def facts_of(record: logging.LogRecord) -> dict[str, Any]:
    """The facts an event carries (empty for a plain log line)."""
    f = getattr(record, "fields", None)
    return f if isinstance(f, dict) else {}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        name = getattr(record, "event", None)
        if isinstance(name, str):
            out["event"] = name
            out.update({k: v for k, v in facts_of(record).items() if k not in out})
        else:
            out["message"] = record.getMessage()
        if record.exc_info and record.exc_info[0] is not None:
            out["exc_type"] = record.exc_info[0].__name__
            out["exc_frames"] = [f"{fr.filename}:{fr.lineno} {fr.name}"
                                 for fr in traceback.extract_tb(record.exc_info[2])][-12:]
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")


class _StderrHandler(logging.StreamHandler[IO[str]]):
    """Writes to whatever ``sys.stderr`` is when a record is emitted (not when configured), so
    a replaced stderr (a test runner's capture, since closed) is never written to."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, value: IO[str]) -> None:
        pass


def formatter(fmt: str) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else TextFormatter()


def configure(fmt: str = "json", level: str = "info", stream: IO[str] | None = None) -> None:
    """One handler on the root logger (replacing ours if called again), at ``level``; the
    chatty libraries at warning; Python warnings (deprecations) logged through it too."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if h.get_name() == HANDLER_NAME:
            root.removeHandler(h)
    handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(formatter(fmt))
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    logging.captureWarnings(True)
