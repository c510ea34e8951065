"""Process-wide access to the corpus index and registry, and reading works from files.

The index directory comes from ``settings.corpus_index_dir`` when set, else
``<directory of the SQLite file>/.guardrail/<db name>.index`` (``./.guardrail/index`` for other
databases). It is local to a node (its worker processes share it); the store is the source of
truth, and every node keeps its own directory in step with it (guardrail/corpus/sync.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guardrail.corpus.index import CorpusIndex
from guardrail.corpus.registry import CorpusRegistry, WorkInput
from guardrail.errors import GuardrailError

if TYPE_CHECKING:
    from guardrail.runtime import Runtime
    from guardrail.settings import Settings

TEXT_SUFFIXES = {".txt", ".md", ".text", ".rst", ".html", ".htm", ".csv", ".py", ".js", ".ts",
                 ".java", ".c", ".h", ".cpp", ".go", ".rs", ".rb", ".json", ".xml", ".srt", ""}


def index_dir(settings: Settings) -> Path:
    explicit = getattr(settings, "corpus_index_dir", None)
    if explicit:
        return Path(explicit)
    url = settings.database_url
    if url.startswith("sqlite:///") and ":memory:" not in url:
        db = Path(url.removeprefix("sqlite:///"))
        return db.parent / ".guardrail" / f"{db.stem}.index"
    return Path(".guardrail") / "index"


def get_index(runtime: Runtime) -> CorpusIndex:
    return runtime.service(  # type: ignore[no-any-return]
        "corpus_index", lambda: CorpusIndex.open(index_dir(runtime.settings))
    )


def get_registry(runtime: Runtime) -> CorpusRegistry:
    return runtime.service(  # type: ignore[no-any-return]
        "corpus_registry", lambda: CorpusRegistry(runtime.engine, get_index(runtime))
    )


class CorpusInputError(GuardrailError, ValueError):
    """A corpus file that cannot be read as works (bad JSON, no text)."""


class CorpusPathNotFound(GuardrailError, FileNotFoundError):
    """A corpus path that does not exist."""


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    for enc in ("utf-8-sig", "cp932", "latin-1"):
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    return data.decode("utf-8", errors="replace")


def work_from_json(obj: dict[str, Any], default_title: str) -> WorkInput:
    """One JSONL record: ``text`` required; ``title``, ``id``, ``source_url``,
    ``rights_holder``, ``license`` optional; anything else is kept as metadata."""
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
        raise CorpusInputError("each JSON record needs a string field 'text'")
    known = {"text", "title", "id", "source_url", "rights_holder", "license"}
    return WorkInput(
        title=str(obj.get("title") or default_title),
        text=obj["text"],
        source_url=obj.get("source_url"),
        external_id=str(obj["id"]) if obj.get("id") is not None else None,
        rights_holder=obj.get("rights_holder"),
        license=obj.get("license"),
        meta={k: v for k, v in obj.items() if k not in known},
    )


def read_paths(paths: Iterable[str | Path]) -> list[WorkInput]:
    """Works from text files, directories (recursively, text files only) and JSONL files."""
    out: list[WorkInput] = []
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
            out.extend(read_paths(f for f in files if f.suffix.lower() in TEXT_SUFFIXES | {
                ".jsonl"}))
        elif p.suffix.lower() == ".jsonl":
            for n, line in enumerate(_read_text(p).splitlines(), 1):
                if line.strip():
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise CorpusInputError(f"{p}:{n}: invalid JSON: {exc}") from exc
                    out.append(work_from_json(obj, f"{p.stem} #{n}"))
        elif p.is_file():
            out.append(WorkInput(title=p.name, text=_read_text(p), meta={"path": str(p)}))
        else:
            raise CorpusPathNotFound(f"{p}: no such file or directory")
    return out
