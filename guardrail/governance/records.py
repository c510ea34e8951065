"""Loading governance records (inventory systems, risk assessments) from YAML files.

Each file holds one record, validated by pydantic. Errors are :class:`PolicyError`s, as for
policies: they name the file, the field and the problem
(``policies/systems/chat.yaml: owner.title: Field required``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from guardrail.errors import PolicyError
from guardrail.policy import _loc

M = TypeVar("M", bound=BaseModel)


class RecordError(PolicyError):
    """A governance record file that does not validate (file, field, problem)."""

    def __init__(self, file: str, problems: list[tuple[str, str]], kind: str = "record") -> None:
        super().__init__(file, problems)
        self.kind = kind
        lines = [f"{file}: {field}: {msg}" for field, msg in problems]
        self.args = (f"invalid {kind}\n  " + "\n  ".join(lines),)


def read_mapping(path: Path, kind: str) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RecordError(str(path), [("(file)", str(exc))], kind) from exc
    except yaml.YAMLError as exc:
        raise RecordError(str(path), [("(yaml)", str(exc).replace("\n", " "))], kind) from exc
    if not isinstance(raw, dict):
        raise RecordError(str(path), [("(root)", "expected a mapping")], kind)
    return raw


def load_record(path: Path, model: type[M], kind: str, id_field: str = "id",
                context: dict[str, Any] | None = None) -> M:
    """One file as ``model``; a missing ``id_field`` defaults to the file's stem.
    ``context`` reaches the model's validators (``info.context``)."""
    raw = read_mapping(path, kind)
    raw.setdefault(id_field, path.stem)
    try:
        return model.model_validate(raw, context=context)
    except ValidationError as exc:
        problems = [(_loc(tuple(e["loc"])), e["msg"]) for e in exc.errors()]
        raise RecordError(str(path), problems, kind) from None


def yaml_files(directory: Path | None) -> list[Path]:
    if directory is None or not directory.is_dir():
        return []
    return sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])


def load_dir(directory: Path | None, load: Callable[[Path], M], kind: str,
             key: Callable[[M], str]) -> dict[str, tuple[Path, M]]:
    """Every record file of ``directory`` by its key; two files with one key fail."""
    out: dict[str, tuple[Path, M]] = {}
    for path in yaml_files(directory):
        rec = load(path)
        k = key(rec)
        if k in out:
            raise RecordError(str(path), [("id", f"{k!r} is already defined in {out[k][0]}")],
                              kind)
        out[k] = (path, rec)
    return out
