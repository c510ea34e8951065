"""Process-wide resources handed to scanners and routes (no module-level globals)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from guardrail.logs import event
from guardrail.settings import Settings

log = logging.getLogger("guardrail")


@dataclass
class Runtime:
    """What a scanner may need beyond its config: settings, the database, and named shared
    services (e.g. the corpus index, shared by the IP scanner and the corpus admin API)."""

    settings: Settings
    engine: Engine
    services: dict[str, Any] = field(default_factory=dict)

    def service(self, name: str, factory: Any) -> Any:
        """Get or create a named shared service (created once per process)."""
        if name not in self.services:
            self.services[name] = factory()
        return self.services[name]

    async def aclose(self) -> None:
        """Release what the services hold (threads, clients), newest first: each service, or
        each part of a tuple-valued one (a backend and its batcher pool), that has
        ``aclose()``. Called once, from the app's lifespan at shutdown."""
        from guardrail.pipeline.protocol import Closeable

        for name, service in reversed(list(self.services.items())):
            for part in service if isinstance(service, tuple) else (service,):
                if isinstance(part, Closeable):
                    try:
                        await part.aclose()
                    except Exception as exc:  # noqa: BLE001 - the others still close
                        event(log, logging.WARNING, "service_close_failed", service=name,
                              error=type(exc).__name__)
