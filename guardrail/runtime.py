"""Process-wide resources handed to scanners and routes (no module-level globals)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from guardrail.settings import Settings


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
