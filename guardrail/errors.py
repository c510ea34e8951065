"""guardrail's exception tree, and the one place where third-party errors become ours.

::

    GuardrailError
    ├── ConfigError                 bad settings or policy (start-up)
    │   └── PolicyError             names file, field and problem
    ├── ScannerError
    │   ├── ScannerLoadError        a backend could not load (start-up)
    │   └── ScannerRuntimeError     a scan failed at run time
    │       ├── RemoteBackendError  a remote backend (moderation API, LLM judge) failed
    │       │   ├── RemoteBackendTimeoutError  no answer in time
    │       │   └── RemoteAnswerError          answered, but not in the expected form
    │       ├── QueueFullError      the harm batch queue is full (harm/batcher.py)
    │       └── ScanTimeoutError    a bounded step (a policy regex) ran out of time
    ├── WebhookDeliveryError        a decision webhook attempt failed (retried, recorded)
    ├── StoreError                  the database failed (any SQLAlchemy error, mapped)
    │   ├── StoreUnavailableError   unreachable, locked, read-only, pool exhausted: 503
    │   └── StoreConflictError      a constraint refused the write (a duplicate)
    └── ApiError                    rendered as OpenAI-style error JSON
        ├── BadRequestError         400 invalid_request_error
        ├── AuthenticationError     401 invalid_api_key
        ├── PermissionDeniedError   403
        ├── NotFoundError           404
        ├── ConflictError           409 (a decision that contradicts one already made)
        ├── GoneError               410 (a held response rejected or expired)
        ├── PayloadTooLargeError    413
        ├── UpstreamError           upstream 4xx/5xx passed through with its body
        ├── UpstreamUnreachableError 502
        ├── UpstreamTimeoutError    504
        └── ServiceUnavailableError 503

Boundaries (each third-party family is caught in one place):

* httpx: :func:`httpx_errors` is the only ``except`` on httpx's exceptions (upstream calls,
  the SSE relay, remote scanner backends, image fetches); it classifies the failure
  (:class:`HttpFailure`) and a translator makes it ours: :func:`upstream_failure`,
  :func:`remote_failure`, the image fetcher's own.
* SQLAlchemy: :func:`map_store_exception` turns any SQLAlchemy error into a
  :class:`StoreError`; :func:`guardrail.db.make_engine` installs it on every engine (driver
  errors, connect errors included) and :func:`guardrail.db.store_errors` at the stores'
  methods for the rest (a pool timeout).
* The app (:mod:`guardrail.app`) renders every :class:`GuardrailError` in OpenAI's error
  format: :class:`ApiError` as itself, :class:`StoreError` as 503 ``store_unavailable``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


class GuardrailError(Exception):
    """Base of every error guardrail raises on purpose."""


class ConfigError(GuardrailError):
    pass


class PolicyError(ConfigError):
    def __init__(self, file: str, problems: list[tuple[str, str]]) -> None:
        self.file = file
        self.problems = problems
        lines = [f"{file}: {field}: {msg}" for field, msg in problems]
        super().__init__("invalid policy\n  " + "\n  ".join(lines))


class ScannerError(GuardrailError):
    pass


class ScannerLoadError(ScannerError):
    def __init__(self, scanner: str, backend: str, model: str | None, missing: str) -> None:
        self.scanner, self.backend, self.model, self.missing = scanner, backend, model, missing
        super().__init__(
            f"scanner {scanner!r} could not load: backend={backend} model={model or '-'}: {missing}"
        )


class ScannerRuntimeError(ScannerError):
    pass


class RemoteBackendError(ScannerRuntimeError):
    """A remote scanner backend (a moderation endpoint, an LLM judge) failed: unreachable, an
    HTTP error status, or an answer that cannot be read. Never read as "safe": the runner
    records it and applies the scanner's ``on_error``. Messages name backend and host, never a
    key."""

    def __init__(self, backend: str, host: str, problem: str) -> None:
        self.backend, self.host, self.problem = backend, host, problem
        super().__init__(f"{backend} at {host}: {problem}")


class RemoteBackendTimeoutError(RemoteBackendError):
    """The remote backend did not answer within its own connect/request timeouts."""


class RemoteAnswerError(RemoteBackendError):
    """The remote backend answered, but not in the expected form (not JSON, fields missing,
    an unexpected label)."""


class ScanTimeoutError(ScannerRuntimeError, TimeoutError):
    """A bounded step inside a scan ran out of its time (a policy regular expression): the
    runner records it as a timeout and applies the scanner's ``on_error``."""


class WebhookDeliveryError(GuardrailError):
    """One webhook attempt failed (network, timeout, or a non-2xx answer)."""


class StoreError(GuardrailError):
    """The database failed. Never shown to a client as more than "unavailable": the message
    may name tables and constraints."""


class StoreUnavailableError(StoreError):
    """The database cannot be reached or cannot take the write now."""


class StoreConflictError(StoreError):
    """A constraint refused the write (a unique name or key taken)."""


class ApiError(GuardrailError):
    status_code = 500
    error_type = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


class BadRequestError(ApiError):
    status_code = 400
    error_type = "invalid_request_error"


class AuthenticationError(ApiError):
    status_code = 401
    error_type = "invalid_request_error"
    code = "invalid_api_key"


class PermissionDeniedError(ApiError):
    status_code = 403
    error_type = "permission_error"


class NotFoundError(ApiError):
    status_code = 404
    error_type = "invalid_request_error"
    code = "not_found"


class ConflictError(ApiError):
    status_code = 409
    error_type = "invalid_request_error"
    code = "conflict"


class GoneError(ApiError):
    status_code = 410
    error_type = "invalid_request_error"
    code = "gone"


class PayloadTooLargeError(ApiError):
    status_code = 413
    error_type = "invalid_request_error"
    code = "request_too_large"


class ServiceUnavailableError(ApiError):
    status_code = 503
    error_type = "server_error"
    code = "service_unavailable"


class UpstreamUnreachableError(ApiError):
    status_code = 502
    error_type = "upstream_error"
    code = "upstream_unreachable"


class UpstreamTimeoutError(ApiError):
    status_code = 504
    error_type = "upstream_error"
    code = "upstream_timeout"


class UpstreamError(ApiError):
    """An upstream HTTP error response, passed through with its status and body."""

    error_type = "upstream_error"

    def __init__(self, status_code: int, content: bytes, content_type: str | None) -> None:
        super().__init__(f"upstream returned HTTP {status_code}")
        self.status_code = status_code
        self.content = content
        self.content_type = content_type or "application/json"


@dataclass(frozen=True)
class HttpFailure:
    """An httpx failure, classified: ``kind`` is ``connect_timeout``, ``timeout`` (read, write,
    pool), ``connect`` (refused, unresolvable), ``transport`` (other network or protocol
    failure), ``invalid_url`` or ``failed`` (anything else httpx raised); ``name`` its class
    name (messages name it, never the URL or a header)."""

    kind: str
    name: str

    @property
    def timed_out(self) -> bool:
        return self.kind in ("connect_timeout", "timeout")


def _classify(exc: Exception) -> HttpFailure:
    import httpx

    name = type(exc).__name__
    if isinstance(exc, httpx.ConnectTimeout):
        return HttpFailure("connect_timeout", name)
    if isinstance(exc, httpx.TimeoutException):
        return HttpFailure("timeout", name)
    if isinstance(exc, httpx.ConnectError):
        return HttpFailure("connect", name)
    if isinstance(exc, httpx.TransportError):
        return HttpFailure("transport", name)
    if isinstance(exc, httpx.InvalidURL):
        return HttpFailure("invalid_url", name)
    return HttpFailure("failed", name)


@contextmanager
def httpx_errors(translate: Callable[[HttpFailure], GuardrailError]) -> Iterator[None]:
    """The httpx boundary (after httpx's own ``map_httpcore_exceptions``): any httpx error
    raised in the block becomes ``translate(failure)``; ours pass through untouched. The
    httpx exception is not chained (its text may hold a URL with a query string)."""
    import httpx

    try:
        yield
    except (httpx.HTTPError, httpx.StreamError, httpx.InvalidURL) as exc:
        raise translate(_classify(exc)) from None


def upstream_failure(f: HttpFailure) -> ApiError:
    """The upstream (an OpenAI-compatible API) failed: 504 on a timeout, else 502."""
    if f.timed_out:
        return UpstreamTimeoutError(f"upstream timed out ({f.name})")
    if f.kind in ("connect", "transport"):
        return UpstreamUnreachableError(f"upstream unreachable ({f.name})")
    return UpstreamUnreachableError(f"upstream failed ({f.name})")


def remote_failure(backend: str, host: str, connect_s: float,
                   request_s: float) -> Callable[[HttpFailure], RemoteBackendError]:
    """A translator for a remote scanner backend's httpx failures (timeouts name the bound
    that ran out)."""

    def translate(f: HttpFailure) -> RemoteBackendError:
        if f.kind == "connect_timeout":
            return RemoteBackendTimeoutError(
                backend, host,
                f"no connection within {connect_s * 1000:.0f} ms (connect_timeout_ms)")
        if f.timed_out:
            return RemoteBackendTimeoutError(
                backend, host,
                f"no answer within {request_s * 1000:.0f} ms (request_timeout_ms; {f.name})")
        if f.kind in ("connect", "transport"):
            return RemoteBackendError(backend, host, f"unreachable ({f.name})")
        return RemoteBackendError(backend, host, f"request failed ({f.name})")

    return translate


def map_store_exception(exc: BaseException) -> StoreError:
    """Any SQLAlchemy (or driver) error as ours: unreachable, locked, read-only or a pool
    timeout is :class:`StoreUnavailableError`, a constraint :class:`StoreConflictError`."""
    from sqlalchemy import exc as sa

    if isinstance(exc, StoreError):
        return exc
    message = f"store failed: {type(exc).__name__}: {exc}".splitlines()[0]
    if isinstance(exc, sa.IntegrityError):
        return StoreConflictError(message)
    if isinstance(exc, sa.OperationalError | sa.InterfaceError | sa.DisconnectionError
                  | sa.TimeoutError):
        return StoreUnavailableError(message)
    return StoreError(message)


def api_error_of(exc: GuardrailError) -> ApiError:
    """How any of our errors answers a client (OpenAI's error format). A store failure is 503
    ``store_unavailable``: whatever the request was waiting on (an incident record, above
    all) could not be written or read, so nothing it concerns was released."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, StoreError):
        return ServiceUnavailableError(
            "guardrail's store is unavailable; the response was withheld (an intervention is "
            "never released without its incident record). Retry later.",
            code="store_unavailable", headers={"Retry-After": "5"})
    return ApiError("Internal error in guardrail.", code="internal_error")
