"""Imports every ORM module so that ``Base.metadata`` knows all tables (Alembic env uses it)."""

from guardrail.incidents import models as incident_models  # noqa: F401
