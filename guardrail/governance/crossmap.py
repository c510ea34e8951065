"""The compliance report's requirements and cross-map, read from ``data/crossmap.yaml``.

The data file is the place to correct a mapping: each requirement (METI's ten common guiding
principles, then the guidelines' key requirements) names the guardrail control that serves
it, the organisation's own part (``gap``), the evidence and configuration the report shows,
and its counterparts in the OECD AI Principles, the Hiroshima Process Code of Conduct and the
EU AI Act, each with its source and, where a mapping is approximate or uncertain, a note.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from guardrail.governance.records import load_record

DATA = Path(__file__).parent / "data" / "crossmap.yaml"
FRAMEWORKS = ("oecd", "hiroshima", "eu_ai_act")
SOURCE_PREFIX = {"oecd": "OECD Recommendation on AI", "meti": "METI AI Guidelines for Business",
                 "hiroshima": "Hiroshima Process International Code of Conduct",
                 "eu_ai_act": "EU AI Act (Regulation (EU) 2024/1689)"}
EVIDENCE = ("interventions", "scanner_failures", "reviews", "time_to_decision", "holds",
            "incidents", "labelled_outputs", "assessments", "models_seen", "inventory",
            "redress", "lifecycle", "chain", "access", "corpora", "none")
CONFIG = ("inventory", "policies", "scanners", "fail_mode", "review", "labelling", "retention",
          "auth", "incident_owner", "assessments")


class Texts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    en: str
    ja: str

    def get(self, lang: str) -> str:
        return self.ja if lang == "ja" else self.en


class Ref(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ref: str | None = Field(description="Section or article; null: no counterpart (see note).")
    source: str = Field(min_length=1)
    note: str = ""
    note_ja: str = ""

    @model_validator(mode="after")
    def _notes(self) -> Ref:
        if self.ref is None and not self.note:
            raise ValueError("an entry without a counterpart (ref: null) needs a note")
        if bool(self.note) != bool(self.note_ja):
            raise ValueError("note and note_ja go together (English and Japanese)")
        return self

    def note_in(self, lang: str) -> str:
        return self.note_ja if lang == "ja" else self.note


class CrossMap(BaseModel):
    model_config = ConfigDict(extra="forbid")

    oecd: list[Ref] = Field(min_length=1)
    hiroshima: list[Ref] = Field(min_length=1)
    eu_ai_act: list[Ref] = Field(min_length=1)


class Requirement(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    group: Literal["principle", "requirement"]
    meti: str
    meti_note: str = ""
    meti_note_ja: str = ""
    title: Texts
    control: Texts
    gap: Texts
    config: list[str]
    evidence: list[str] = Field(min_length=1)
    cross_map: CrossMap

    @model_validator(mode="after")
    def _known_keys(self) -> Requirement:
        if bool(self.meti_note) != bool(self.meti_note_ja):
            raise ValueError("meti_note and meti_note_ja go together")
        for e in self.evidence:
            if e.split(":")[0] not in EVIDENCE:
                raise ValueError(f"unknown evidence {e!r}; one of {EVIDENCE}")
        for c in self.config:
            if c.split(":")[0] not in CONFIG:
                raise ValueError(f"unknown config {c!r}; one of {CONFIG}")
        return self


class Catalogue(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = ""
    documents: dict[str, str]
    notes: dict[Literal["en", "ja"], list[str]]
    references: dict[str, dict[str, Texts]]
    requirements: list[Requirement] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Catalogue:
        ids = [r.id for r in self.requirements]
        if len(set(ids)) != len(ids):
            raise ValueError("requirement ids must be unique")
        for r in self.requirements:
            if not r.meti.startswith(SOURCE_PREFIX["meti"]):
                raise ValueError(f"{r.id}: meti source must start with {SOURCE_PREFIX['meti']!r}")
            for fw in FRAMEWORKS:
                for entry in getattr(r.cross_map, fw):
                    if not entry.source.startswith(SOURCE_PREFIX[fw]):
                        raise ValueError(f"{r.id}: {fw} source {entry.source!r} must start "
                                         f"with {SOURCE_PREFIX[fw]!r}")
                    if entry.ref is not None and entry.ref not in self.references.get(fw, {}):
                        raise ValueError(f"{r.id}: {fw} ref {entry.ref!r} is not in references")
        return self

    def title_of(self, framework: str, ref: str | None, lang: str) -> str:
        t = self.references.get(framework, {}).get(ref or "")
        return t.get(lang) if t else ""


@cache
def catalogue(path: Path = DATA) -> Catalogue:
    return load_record(path, Catalogue, "cross-map")
