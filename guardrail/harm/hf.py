"""The ``detoxify`` and ``transformers`` harm backends (torch; imported only in ``load()``).

detoxify: the real library. ``model`` is a variant name (``original``, ``unbiased``,
``multilingual``, ``original-small``, ``unbiased-small``; downloaded by the library where the
network allows, or found in ``$TORCH_HOME/hub/checkpoints``) or a local ``.ckpt`` path.
Offline trap: detoxify always calls ``from_pretrained(config.arch.args.model_type)``, a hub id
for the published checkpoints. With ``huggingface_config_path`` (a directory holding the
base model's config.json and tokenizer files) we point ``model_type`` at that directory, so a
local checkpoint loads with no network.

transformers: any sequence-classification model from a local directory or hub id. Labels go
through the policy's ``label_map`` and then :data:`guardrail.harm.taxonomy.COMMON_LABELS`;
activation is sigmoid for multi-label models and softmax otherwise (or as configured).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from guardrail.harm.backends import BackendLoadError
from guardrail.harm.taxonomy import map_label

DETOXIFY_VARIANTS = ("original", "unbiased", "multilingual", "original-small", "unbiased-small")
_RENAME = {"toxic": "toxicity", "identity_hate": "identity_attack",
           "severe_toxic": "severe_toxicity"}


def _merge(labels: list[str], rows: list[list[float]],
           label_map: dict[str, str | None] | None) -> list[dict[str, float]]:
    cats = [map_label(lab, label_map) for lab in labels]
    out = []
    for row in rows:
        d: dict[str, float] = {}
        for cat, v in zip(cats, row, strict=True):
            if cat is not None:
                d[cat] = max(d.get(cat, 0.0), float(v))
        out.append(d)
    return out


class DetoxifyBackend:
    name = "detoxify"

    def __init__(self, model: str = "original", huggingface_config_path: str | None = None,
                 label_map: dict[str, str | None] | None = None, max_length: int = 512) -> None:
        self.model = model
        self.hf_path = huggingface_config_path
        self.label_map = label_map
        self.max_length = max_length
        self.version = ""
        self._det: Any = None

    def missing(self) -> str | None:
        if self.model in DETOXIFY_VARIANTS:
            return None
        if not Path(self.model).is_file():
            return (f"checkpoint {self.model!r} is neither a file nor one of "
                    f"{', '.join(DETOXIFY_VARIANTS)}")
        if self.hf_path and not (Path(self.hf_path) / "config.json").is_file():
            return f"huggingface_config_path {self.hf_path!r} has no config.json"
        return None

    def load(self) -> None:
        try:
            import torch
            from detoxify import Detoxify
            from detoxify.detoxify import get_model_and_tokenizer
        except ImportError as exc:
            raise BackendLoadError(f"python package missing: {exc.name}") from exc
        try:
            if self.model in DETOXIFY_VARIANTS:
                det = Detoxify(self.model, device="cpu",
                               huggingface_config_path=self.hf_path)
                self.version = self.model
            else:
                loaded = torch.load(self.model, map_location="cpu", weights_only=False)
                if "config" not in loaded or "state_dict" not in loaded:
                    raise BackendLoadError(f"{self.model} lacks 'config'/'state_dict'")
                args = dict(loaded["config"]["arch"]["args"])
                if self.hf_path and not Path(str(args["model_type"])).is_dir():
                    args["model_type"] = self.hf_path  # the offline trap, see module docstring
                model, tok = get_model_and_tokenizer(
                    **args, state_dict=loaded["state_dict"],
                    huggingface_config_path=self.hf_path)
                det = Detoxify.__new__(Detoxify)
                det.model, det.tokenizer, det.device = model, tok, "cpu"
                det.class_names = [_RENAME.get(c, c) for c in
                                   loaded["config"]["dataset"]["args"]["classes"]]
                det.model.to("cpu")
                self.version = f"{Path(self.model).name}:{os.path.getsize(self.model)}"
        except BackendLoadError:
            raise
        except Exception as exc:  # noqa: BLE001 - library/hub errors become one clear message
            hint = ("" if self.hf_path else
                    "; offline, pass huggingface_config_path (dir with config.json + tokenizer)")
            raise BackendLoadError(f"{type(exc).__name__}: {str(exc)[:300]}{hint}") from exc
        det.model.eval()
        self._det = det

    def predict(self, texts: list[str]) -> list[dict[str, float]]:
        import torch

        det = self._det
        with torch.no_grad():
            inputs = det.tokenizer(texts, return_tensors="pt", truncation=True, padding=True,
                                   max_length=self.max_length)
            probs = torch.sigmoid(det.model(**inputs)[0]).tolist()
        return _merge(list(det.class_names), probs, self.label_map)

    def details(self) -> dict[str, Any]:
        return {"checkpoint": self.model, "huggingface_config_path": self.hf_path,
                "labels": list(self._det.class_names) if self._det else None}


class TransformersBackend:
    name = "transformers"

    def __init__(self, model: str, label_map: dict[str, str | None] | None = None,
                 activation: str = "auto", max_length: int = 512) -> None:
        self.model = model
        self.label_map = label_map
        self.activation = activation
        self.max_length = max_length
        self.version = ""
        self._tok: Any = None
        self._mdl: Any = None
        self._labels: list[str] = []

    def missing(self) -> str | None:
        p = Path(self.model)
        if (p.is_absolute() or self.model.startswith(".")) and not (p / "config.json").is_file():
            return f"model directory {self.model!r} has no config.json"
        return None

    def load(self) -> None:
        try:
            from transformers import AutoModelForSequenceClassification, AutoTokenizer
        except ImportError as exc:
            raise BackendLoadError(f"python package missing: {exc.name}") from exc
        try:
            self._tok = AutoTokenizer.from_pretrained(self.model)
            self._mdl = AutoModelForSequenceClassification.from_pretrained(self.model).eval()
        except Exception as exc:  # noqa: BLE001
            raise BackendLoadError(f"{type(exc).__name__}: {str(exc)[:300]}") from exc
        cfg = self._mdl.config
        self._labels = [cfg.id2label[i] for i in range(cfg.num_labels)]
        mapped = [lab for lab in self._labels if map_label(lab, self.label_map)]
        if not mapped:
            raise BackendLoadError(
                f"no model label maps onto a harm category: {self._labels}; set label_map")
        if self.activation == "auto":
            multi = getattr(cfg, "problem_type", None) == "multi_label_classification"
            self.activation = "sigmoid" if multi else "softmax"
        self.version = str(getattr(cfg, "_commit_hash", None) or getattr(cfg, "name_or_path", ""))

    def predict(self, texts: list[str]) -> list[dict[str, float]]:
        import torch

        with torch.no_grad():
            enc = self._tok(texts, return_tensors="pt", truncation=True, padding=True,
                            max_length=self.max_length)
            logits = self._mdl(**enc).logits
            probs = (torch.sigmoid(logits) if self.activation == "sigmoid"
                     else torch.softmax(logits, dim=-1)).tolist()
        return _merge(self._labels, probs, self.label_map)

    def details(self) -> dict[str, Any]:
        return {"labels": self._labels, "activation": self.activation,
                "label_map": self.label_map}
