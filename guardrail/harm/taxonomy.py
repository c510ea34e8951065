"""guardrail's harm taxonomy and each backend's label mapping onto it.

Categories (what a ``harm`` finding's ``category`` can be):

============  ==========================================================================
hate          attacks on people for a protected attribute (race, religion, gender, ...)
harassment    insults, bullying, abuse aimed at a person (incl. the user)
sexual        sexual content, sexual harassment, sexual content involving minors
violence      threats, incitement or instructions for physical harm
self_harm     suicide / self-harm encouragement or methods
profanity     obscene or vulgar language
illicit       help with crime: weapons, drugs, fraud, malware, other illegal activity
toxic         general toxicity with no finer category (detoxify's ``toxicity`` head,
              the embedded backend's "any harm" head)
============  ==========================================================================

Backend label maps (backend label -> category; ``None`` = ignored):

* ``embedded``: one logistic head per category over multilingual-e5-small embeddings, plus
  ``any`` reported as ``toxic``.
* ``detoxify``: :data:`DETOXIFY_LABELS` (original / unbiased / multilingual checkpoints).
* ``transformers``: the policy's ``label_map``; labels not in it are matched against
  :data:`COMMON_LABELS` (lower-cased), and unknown labels are ignored.
"""

from __future__ import annotations

CATEGORIES: tuple[str, ...] = (
    "hate",
    "harassment",
    "sexual",
    "violence",
    "self_harm",
    "profanity",
    "illicit",
)
GENERAL = "toxic"
ALL_CATEGORIES: tuple[str, ...] = (*CATEGORIES, GENERAL)

DETOXIFY_LABELS: dict[str, str | None] = {
    "toxicity": GENERAL,
    "toxic": GENERAL,
    "severe_toxicity": GENERAL,
    "severe_toxic": GENERAL,
    "obscene": "profanity",
    "threat": "violence",
    "insult": "harassment",
    "identity_hate": "hate",
    "identity_attack": "hate",
    "sexual_explicit": "sexual",
}

COMMON_LABELS: dict[str, str | None] = {
    **DETOXIFY_LABELS,
    "hate": "hate",
    "hateful": "hate",
    "hate_speech": "hate",
    "offensive": "profanity",
    "profanity": "profanity",
    "harassment": "harassment",
    "abusive": "harassment",
    "abuse": "harassment",
    "sexual": "sexual",
    "violence": "violence",
    "violent": "violence",
    "self_harm": "self_harm",
    "self-harm": "self_harm",
    "illicit": "illicit",
    "illegal": "illicit",
    "harmful": GENERAL,
    "unsafe": GENERAL,
    "label_1": GENERAL,  # binary classifiers without names: LABEL_1 = positive class
    "neutral": None,
    "non-toxic": None,
    "non_toxic": None,
    "not_toxic": None,
    "safe": None,
    "normal": None,
    "label_0": None,
}


def map_label(label: str, label_map: dict[str, str | None] | None = None) -> str | None:
    """Our category for a backend label, or None when the label is ignored/unknown."""
    if label_map and label in label_map:
        return label_map[label]
    return COMMON_LABELS.get(label.lower())
