"""Browser sign-in plumbing shared by server-rendered pages: the session cookie, CSRF checks.

Cookies carry only random ASCII ids (never a name, so no Latin-1 header limit), are
``HttpOnly`` and ``SameSite=Lax``, and ``Secure`` when the request came over https or
``GUARDRAIL_PUBLIC_SCHEME=https``. Every POST carries the session's CSRF token as the form
field ``csrf_token``; the sign-in form, before any session exists, a double-submit token.
"""

from __future__ import annotations

import hmac
import secrets
from typing import TYPE_CHECKING

import anyio
from fastapi import Request
from fastapi.responses import Response

from guardrail.errors import PermissionDeniedError
from guardrail.people.auth import sessions
from guardrail.people.sessions import SignedIn

if TYPE_CHECKING:
    from guardrail.deps import AppState

SESSION_COOKIE = "guardrail_session"
SIGNIN_COOKIE = "guardrail_signin_csrf"
SIGNIN_PATH = "/review/login"


class CsrfError(PermissionDeniedError):
    code = "csrf_failed"


def secure(request: Request, state: AppState) -> bool:
    scheme = state.settings.public_scheme
    return scheme == "https" or (scheme == "auto" and request.url.scheme == "https")


def client_addr(request: Request) -> str:
    return request.client.host if request.client else "-"


async def signed_in(request: Request, state: AppState) -> SignedIn | None:
    sid = request.cookies.get(SESSION_COOKIE)
    if not sid:
        return None
    return await anyio.to_thread.run_sync(sessions(state).get, sid)


def set_session(response: Response, request: Request, state: AppState, sid: str) -> None:
    response.set_cookie(SESSION_COOKIE, sid, max_age=int(state.settings.session_ttl_s),
                        path="/", httponly=True, samesite="lax", secure=secure(request, state))
    response.delete_cookie(SIGNIN_COOKIE, path=SIGNIN_PATH)


def clear_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")


def signin_token(request: Request) -> str:
    """The sign-in form's CSRF token: the one in the browser's cookie, or a new one."""
    return request.cookies.get(SIGNIN_COOKIE) or secrets.token_urlsafe(32)


def set_signin_cookie(response: Response, request: Request, state: AppState, token: str) -> None:
    response.set_cookie(SIGNIN_COOKIE, token, max_age=3600, path=SIGNIN_PATH, httponly=True,
                        samesite="lax", secure=secure(request, state))


async def check_csrf(request: Request, expected: str | None) -> None:
    """Raise :class:`CsrfError` unless the form's ``csrf_token`` equals ``expected``."""
    form = await request.form()
    got = form.get("csrf_token")
    if not expected or not isinstance(got, str) or not hmac.compare_digest(
            got.encode(), expected.encode()):
        raise CsrfError("Missing or wrong CSRF token: reload the page and try again.")
