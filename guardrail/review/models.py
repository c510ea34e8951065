"""The review log: one row per decision on an incident, and per access to its content.

The table is defined with the chain that seals it (:mod:`guardrail.incidents.events`); review
fields on an incident change over its life and are not part of the incident's own sealed
hash, so these sealed events are where every change (and who made it) is accounted for.
"""

from __future__ import annotations

from guardrail.incidents.events import IncidentEventRow as ReviewEventRow

__all__ = ["ReviewEventRow"]
