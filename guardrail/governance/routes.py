"""The governance package's routers, included by :func:`guardrail.app.create_app`.

Started minimal by the lifecycle/redress helper (issue 14); whoever owns the inventory,
assessments and report routes adds theirs to :data:`routers`. Modules listed here:
``guardrail.governance.lifecycle_routes`` (``router``, ``pages``),
``guardrail.governance.redress_routes`` (``router``), ``guardrail.governance.redress_pages``
(``router``). Note for ``guardrail.governance.setup.setup(state)``: it should also call
``guardrail.governance.lifecycle.setup(state)`` (the ``guardrail_incidents_overdue{clock}``
gauge).
"""

from __future__ import annotations

from fastapi import APIRouter

from guardrail.governance import lifecycle_routes, redress_pages, redress_routes

routers: list[APIRouter] = [lifecycle_routes.router, lifecycle_routes.pages,
                            redress_routes.router, redress_pages.router]
