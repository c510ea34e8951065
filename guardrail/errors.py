"""guardrail's exception tree, and the one place where third-party errors become ours.

::

    GuardrailError
    ├── ConfigError                 bad settings or policy (start-up)
    │   └── PolicyError             names file, field and problem
    ├── ScannerError
    │   ├── ScannerLoadError        a backend could not load (start-up)
    │   └── ScannerRuntimeError     a scan failed at run time
    │       └── RemoteBackendError  a remote backend (moderation API, LLM judge) failed
    │           ├── RemoteBackendTimeoutError  no answer in time
    │           └── RemoteAnswerError          answered, but not in the expected form
    ├── StoreError                  incident store unreachable / failed
    └── ApiError                    rendered as OpenAI-style error JSON
        ├── BadRequestError         400 invalid_request_error
        ├── AuthenticationError     401 invalid_api_key
        ├── PermissionDeniedError   403
        ├── NotFoundError           404
        ├── PayloadTooLargeError    413
        ├── UpstreamError           upstream 4xx/5xx passed through with its body
        ├── UpstreamUnreachableError 502
        ├── UpstreamTimeoutError    504
        └── ServiceUnavailableError 503

:func:`map_upstream_exception` is the boundary for httpx (the upstream);
:func:`map_remote_exception` for httpx in remote scanner backends; :func:`map_store_exception`
for SQLAlchemy.
"""

from __future__ import annotations

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


class StoreError(GuardrailError):
    pass


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


def map_upstream_exception(exc: Exception) -> ApiError:
    """Translate an httpx exception into our API error (never leaks the upstream key)."""
    import httpx

    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamTimeoutError(f"upstream timed out ({type(exc).__name__})")
    if isinstance(exc, httpx.TransportError):
        return UpstreamUnreachableError(f"upstream unreachable ({type(exc).__name__})")
    return UpstreamUnreachableError(f"upstream failed ({type(exc).__name__})")


def map_remote_exception(exc: Exception, backend: str, host: str) -> RemoteBackendError:
    """Translate an httpx exception raised while calling a remote scanner backend."""
    import httpx

    if isinstance(exc, RemoteBackendError):
        return exc
    if isinstance(exc, httpx.TimeoutException):
        return RemoteBackendTimeoutError(backend, host, f"timed out ({type(exc).__name__})")
    if isinstance(exc, httpx.TransportError):
        return RemoteBackendError(backend, host, f"unreachable ({type(exc).__name__})")
    return RemoteBackendError(backend, host, f"request failed ({type(exc).__name__})")


def map_store_exception(exc: Exception) -> StoreError:
    return StoreError(f"incident store failed: {type(exc).__name__}: {exc}".splitlines()[0])
