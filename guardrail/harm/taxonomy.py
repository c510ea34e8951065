"""guardrail's harm taxonomy, its mapping onto the standard ones, and backend label maps.

Categories (what a ``harm`` finding's ``category`` can be), with OpenAI's moderation categories
and Llama Guard 3's hazards (S1-S14) they correspond to:

=====================  ===================================  ==============================  =====
ours                   meaning                              OpenAI moderation               Llama
=====================  ===================================  ==============================  =====
harassment             insults, bullying, abuse aimed at a  harassment                      (S10)
                       person (incl. the user)
threat                 threats of violence against a        harassment/threatening,         S1
                       person or group                      hate/threatening
hate                   attacks on people for a protected    hate                            S10
                       attribute (race, religion, ...)
sexual                 sexual content, sexual harassment    sexual                          S3, S12
sexual_minors          sexual content involving minors      sexual/minors                   S4
violence               violent or graphic content,          violence, violence/graphic      S1
                       incitement
self_harm              encouragement of suicide or self-    self-harm, self-harm/intent,    S11
                       harm, methods                        self-harm/instructions
illicit                help with non-violent crime: fraud,  illicit                         S2, S14
                       malware, drugs, theft
harmful_assistance     output that materially helps         illicit/violent (and the        S9
                       serious harm (weapons, attacks,      instructions side of every
                       cybercrime, dangerous drugs), how-   category)
                       ever politely written
profanity              obscene or vulgar language on its    (none: OpenAI does not flag     (none)
                       own (flagged, not blocked, by        profanity alone)
                       default)
toxic                  abusive language in general (the     (none; Perspective's TOXICITY)  (none)
                       embedded backend's language head;
                       detoxify's ``toxicity``)
=====================  ===================================  ==============================  =====

Llama Guard hazards with no harm category of ours (S5 defamation, S6 specialized advice,
S7 privacy, S8 intellectual property, S13 elections) are ignored by the harm scanner: privacy is
the ``pii`` scanner's, intellectual property the ``ip`` scanner's; the others are left to
the policy (``label_map`` can map them onto a category).

Backend label maps (backend label -> category; ``None`` = ignored):

* ``embedded``: logistic heads over the encoder's features (``models/harm/MODEL_CARD.md``).
* ``detoxify``: :data:`DETOXIFY_LABELS` (original / unbiased / multilingual checkpoints).
* ``openai-moderation``: :data:`OPENAI_MODERATION`.
* ``llm-judge``: :data:`LLAMA_GUARD` (S1-S14 codes).
* ``transformers``: the policy's ``label_map``; labels not in it are matched against
  :data:`COMMON_LABELS` (lower-cased), and unknown labels are ignored.
"""

from __future__ import annotations

CATEGORIES: tuple[str, ...] = (
    "hate",
    "harassment",
    "threat",
    "sexual",
    "sexual_minors",
    "violence",
    "self_harm",
    "profanity",
    "illicit",
    "harmful_assistance",
)
GENERAL = "toxic"
ALL_CATEGORIES: tuple[str, ...] = (*CATEGORIES, GENERAL)

# OpenAI /v1/moderations category -> ours
OPENAI_MODERATION: dict[str, str | None] = {
    "harassment": "harassment",
    "harassment/threatening": "threat",
    "hate": "hate",
    "hate/threatening": "threat",
    "illicit": "illicit",
    "illicit/violent": "harmful_assistance",
    "self-harm": "self_harm",
    "self-harm/intent": "self_harm",
    "self-harm/instructions": "self_harm",
    "sexual": "sexual",
    "sexual/minors": "sexual_minors",
    "violence": "violence",
    "violence/graphic": "violence",
}

# Llama Guard 3 hazard code -> ours (None: not a harm category of ours; see the table above)
LLAMA_GUARD: dict[str, str | None] = {
    "S1": "violence",          # violent crimes
    "S2": "illicit",           # non-violent crimes
    "S3": "sexual",            # sex-related crimes
    "S4": "sexual_minors",     # child sexual exploitation
    "S5": None,                # defamation
    "S6": None,                # specialized advice
    "S7": None,                # privacy (the pii scanner)
    "S8": None,                # intellectual property (the ip scanner)
    "S9": "harmful_assistance",  # indiscriminate weapons
    "S10": "hate",             # hate
    "S11": "self_harm",        # suicide and self-harm
    "S12": "sexual",           # sexual content
    "S13": None,               # elections
    "S14": "illicit",          # code interpreter abuse
}

DETOXIFY_LABELS: dict[str, str | None] = {
    "toxicity": GENERAL,
    "toxic": GENERAL,
    "severe_toxicity": GENERAL,
    "severe_toxic": GENERAL,
    "obscene": "profanity",
    "threat": "threat",
    "insult": "harassment",
    "identity_hate": "hate",
    "identity_attack": "hate",
    "sexual_explicit": "sexual",
}

COMMON_LABELS: dict[str, str | None] = {
    **DETOXIFY_LABELS,
    **OPENAI_MODERATION,
    "hateful": "hate",
    "hate_speech": "hate",
    "offensive": "profanity",
    "profanity": "profanity",
    "abusive": "harassment",
    "abuse": "harassment",
    "threatening": "threat",
    "sexual_minors": "sexual_minors",
    "violent": "violence",
    "self_harm": "self_harm",
    "illegal": "illicit",
    "harmful_assistance": "harmful_assistance",
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
