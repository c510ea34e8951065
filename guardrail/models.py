"""Imports every ORM module so that ``Base.metadata`` knows all tables (Alembic env uses it)."""

from guardrail.corpus import models as corpus_models  # noqa: F401
from guardrail.governance import lifecycle as governance_lifecycle  # noqa: F401
from guardrail.governance import models as governance_models  # noqa: F401
from guardrail.governance import redress as governance_redress  # noqa: F401
from guardrail.incidents import events as incident_events  # noqa: F401
from guardrail.incidents import models as incident_models  # noqa: F401
from guardrail.labelling import counts as labelling_counts  # noqa: F401
from guardrail.people import models as people_models  # noqa: F401
from guardrail.review import models as review_models  # noqa: F401
