"""Small deterministic texts and a temporary corpus database for the corpus tests."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

_EN = (
    "the a of and to in that it was he she his her they we you not with for on as at by "
    "from this had but be have which one all were there their when would been so what if "
    "who out up said into could then more very will some about no them time only upon "
    "now these may such other great made little before must any should over after well "
    "river garden window letter morning evening family country house season journey "
    "silence promise anger fortune courage winter summer village harbour lantern meadow "
    "quiet bright distant gentle sudden proud humble careful curious honest patient "
    "walked spoke wrote looked turned smiled waited answered believed remembered carried"
).split()
_JA = (
    "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをん"
    "山川海空雨雪花木森村町道家人子女男父母友心手目耳口声言話書読見聞行来帰食飲待思知分"
)


def en_text(seed: int, words: int) -> str:
    rng = random.Random(seed)
    out = []
    for i in range(words):
        w = rng.choice(_EN)
        out.append(w.capitalize() if i % 12 == 0 else w)
        if i % 12 == 11:
            out[-1] += "."
    return " ".join(out)


def ja_text(seed: int, chars: int) -> str:
    rng = random.Random(seed)
    out = []
    for i in range(chars):
        out.append(rng.choice(_JA))
        if i % 25 == 24:
            out.append("。")
    return "".join(out)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'g.db'}"


@pytest.fixture
def registry(db_url: str) -> Iterator[object]:
    from guardrail.corpus.service import get_registry
    from guardrail.db import make_engine, upgrade
    from guardrail.runtime import Runtime
    from guardrail.settings import Settings

    settings = Settings(database_url=db_url)
    engine = make_engine(db_url)
    upgrade(db_url, engine)
    runtime = Runtime(settings=settings, engine=engine)
    yield get_registry(runtime)
    engine.dispose()
