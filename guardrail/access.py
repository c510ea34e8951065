"""Who may call each route: one access rule per (method, path template).

The rules are enforced where the route is (its dependencies in :mod:`guardrail.deps`, or the
page handler's sign-in check); this table states what they must enforce, so a reader (or an
auditor) sees the whole surface in one place. ``tests/test_access_matrix.py`` walks the built
app's route table and calls every route with no credentials, a client key, the admin key,
each role's API token and each role's browser session: a route without a rule here fails
that test, and so does one whose behaviour differs from its rule.

========== ===============================================================================
public      anyone (liveness, the sign-in form, an unguessable signed-image URL)
client      a client key (``GUARDRAIL_API_KEYS`` or ``guardrail keys add``): the proxy
api         the admin key or a person's API token with one of the roles (``person``: a
            person's token only, never the admin key, e.g. a decision names a person)
page        a signed-in person's browser session with one of the roles
========== ===============================================================================

Denied: ``api`` and ``client`` routes answer 401 (no or unknown credential) or 403 (known,
not allowed) in the OpenAI-style ``{"error": {...}}`` format; ``page`` routes redirect to the
sign-in form (303) when nobody is signed in, and show a 403 page to a person without the role.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from starlette.routing import Mount

from guardrail.people.roles import ROLES

Kind = Literal["public", "client", "api", "page"]


@dataclass(frozen=True)
class Access:
    kind: Kind
    roles: frozenset[str] = frozenset()
    person: bool = False  # a person only: the admin key (no person) is refused

    def __str__(self) -> str:
        if self.kind in ("public", "client"):
            return self.kind
        who = "person " if self.person and self.kind == "api" else ""
        return f"{self.kind}({who}{'|'.join(sorted(self.roles))})"


PUBLIC = Access("public")
CLIENT = Access("client")
ANY_ROLE = frozenset(ROLES)


def api(*roles: str, person: bool = False) -> Access:
    """The admin key or a person's API token with one of ``roles``."""
    return Access("api", frozenset(roles) or ANY_ROLE, person)


def page(*roles: str) -> Access:
    """A signed-in person (browser session) with one of ``roles``."""
    return Access("page", frozenset(roles) or ANY_ROLE, person=True)


ADMIN = api("admin")

ACCESS: dict[tuple[str, str], Access] = {
    # OpenAI-compatible proxy
    ("POST", "/v1/chat/completions"): CLIENT,
    ("POST", "/v1/completions"): CLIENT,
    ("GET", "/v1/models"): CLIENT,
    ("POST", "/v1/images/generations"): CLIENT,
    ("POST", "/v1/images/edits"): CLIENT,
    # a response_format=url image: the id (128 random bits) is the capability
    ("GET", "/v1/guardrail/images/{image_id}"): PUBLIC,
    ("POST", "/v1/guardrail/verify"): CLIENT,
    # corpora (IP scanner): admin
    ("GET", "/v1/guardrail/corpora"): ADMIN,
    ("POST", "/v1/guardrail/corpora"): ADMIN,
    ("GET", "/v1/guardrail/corpora/{name}"): ADMIN,
    ("PATCH", "/v1/guardrail/corpora/{name}"): ADMIN,
    ("DELETE", "/v1/guardrail/corpora/{name}"): ADMIN,
    ("POST", "/v1/guardrail/corpora/{name}/works"): ADMIN,
    ("GET", "/v1/guardrail/corpora/{name}/works/{work_id}"): ADMIN,
    ("DELETE", "/v1/guardrail/corpora/{name}/works/{work_id}"): ADMIN,
    # incidents and their review: every role reads, reviewers (and admins) decide
    ("GET", "/v1/guardrail/incidents"): api(),
    ("GET", "/v1/guardrail/incidents/verify"): api(),
    ("GET", "/v1/guardrail/incidents/{incident_id}"): api(),
    ("GET", "/v1/guardrail/incidents/{incident_id}/reviews"): api(),
    ("POST", "/v1/guardrail/incidents/{incident_id}/decisions"): api("admin", "reviewer",
                                                                     person=True),
    ("POST", "/v1/guardrail/incidents/{incident_id}/assignee"): api("admin", "reviewer",
                                                                    person=True),
    # governance: incident lifecycle (guardrail.governance.lifecycle_routes); triage is open
    # to reviewers, the later steps need compliance or admin (checked in the handler)
    ("GET", "/v1/guardrail/incidents/{incident_id}/lifecycle"): api(),
    ("POST", "/v1/guardrail/incidents/{incident_id}/lifecycle"): api(
        "admin", "compliance", "reviewer", person=True),
    ("GET", "/governance/incidents"): page("admin", "compliance"),
    # governance: redress (guardrail.governance.redress_routes, redress_pages). Intake and
    # status are public (rate-limited per address; status needs the 128-bit acknowledgement
    # id and shows only status and answer); the form takes a double-submit CSRF token
    ("POST", "/v1/guardrail/redress"): PUBLIC,
    ("GET", "/v1/guardrail/redress/{ack_id}"): PUBLIC,
    ("POST", "/v1/guardrail/redress/{ack_id}/answer"): api("admin", "compliance", "reviewer",
                                                          person=True),
    ("GET", "/redress"): PUBLIC,
    ("POST", "/redress"): PUBLIC,
    ("GET", "/redress/status"): PUBLIC,
    # governance: AI system inventory, assessments' status and the compliance report
    # (guardrail.governance.routes): admin, compliance and auditor
    ("GET", "/v1/guardrail/systems"): api("admin", "compliance", "auditor"),
    ("GET", "/v1/guardrail/systems/{system_id}"): api("admin", "compliance", "auditor"),
    ("GET", "/v1/guardrail/report"): api("admin", "compliance", "auditor"),
    ("GET", "/governance/systems"): page("admin", "compliance", "auditor"),
    ("GET", "/governance/report"): page("admin", "compliance", "auditor"),
    # held responses: the application that was held, with its own key (tenant checked)
    ("GET", "/v1/guardrail/responses/{response_id}"): CLIENT,
    # review pages (browser sessions)
    ("GET", "/review/login"): PUBLIC,
    ("POST", "/review/login"): PUBLIC,
    ("POST", "/review/logout"): PUBLIC,  # signs out whoever is signed in
    ("GET", "/review"): page(),
    ("GET", "/review/incidents/{incident_id}"): page(),
    ("POST", "/review/incidents/{incident_id}"): page("admin", "reviewer"),
    ("POST", "/review/incidents/{incident_id}/assign"): page("admin", "reviewer"),
    ("GET", "/review/settings"): page(),  # one's own language and time zone
    ("POST", "/review/settings"): page(),
    ("GET", "/review/static/{name}"): PUBLIC,  # the pages' CSS and script, no CDN
    # operations
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,  # ready or not, nothing more
    ("GET", "/v1/guardrail/readyz"): ADMIN,
    ("GET", "/metrics"): PUBLIC,  # Prometheus scrape: route templates and policy names only
}


def rule_for(method: str, path: str) -> Access | None:
    return ACCESS.get((method.upper(), path))


def _walk(routes: Sequence[Any], prefix: str) -> Iterator[tuple[str, str]]:
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if callable(contexts):  # FastAPI >= 0.16x keeps an included router as one entry
            for ctx in contexts():
                for method in sorted(getattr(ctx, "methods", None) or ("*",)):
                    yield method, prefix + str(ctx.path)
        elif isinstance(route, Mount):
            if route.routes:  # a mounted router or sub-application
                yield from _walk(route.routes, prefix + route.path)
            else:  # an opaque ASGI app: one rule for all of it
                yield "*", prefix + route.path + "/{path:path}"
        elif isinstance(getattr(route, "path", None), str):
            methods = getattr(route, "methods", None) or {"*"}
            for method in sorted(methods):
                if method != "HEAD" or "GET" not in methods:  # Starlette adds HEAD to GET
                    yield method, prefix + route.path


def routes_of(app: Any) -> list[tuple[str, str]]:
    """Every (method, path template) ``app`` serves, included routers and mounts walked."""
    return sorted(set(_walk(app.router.routes, "")), key=lambda r: (r[1], r[0]))


def unruled(app: Any) -> list[tuple[str, str]]:
    """The routes of ``app`` that have no access rule."""
    return [r for r in routes_of(app) if r not in ACCESS]
