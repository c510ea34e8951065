"""The embedded harm model's trained parameters (``models/harm/heads.npz``): both tiers' heads,
the per-language centres and cascade gates, and their file format. Trained by
``benchmarks/train_harm.py``; run by :class:`guardrail.harm.embedded.EmbeddedBackend`."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from guardrail.harm.taxonomy import GENERAL
from guardrail.harm.tokstatic import TokenStatic
from guardrail.pipeline.types import detect_language

ENCODER_LABELS_EXTRA = ("any", "toxic")  # encoder heads besides the categories


def _sigmoid(z: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1.0 / (1.0 + np.exp(-z))
    return out


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-6, 1 - 1e-6)
    out: np.ndarray = np.log(q / (1 - q))
    return out


@dataclass
class Heads:
    """Everything the embedded backend needs besides the encoder."""

    labels: list[str]  # head order: categories + "any" + "toxic" (both stages)
    W: np.ndarray  # (384 * len(layers), len(labels))
    b: np.ndarray  # (len(labels),)
    static: TokenStatic  # stage 1: same labels
    center: dict[str, np.ndarray] = field(default_factory=dict)  # language -> mean features
    gate: dict[str, dict[str, float]] = field(default_factory=dict)  # lang -> head -> gate
    gate_model: dict[str, str] = field(default_factory=dict)  # lang -> "linear" | "mlp"
    meta: dict[str, Any] = field(default_factory=dict)
    layers: tuple[int, ...] = (12,)  # encoder layers the heads read
    # one-hidden-layer heads averaged with the linear ones for some labels: W1, b1, W2, b2
    mlp: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, float]] = field(
        default_factory=dict)

    def stage1(self, texts: list[str], langs: list[str] | None = None) -> np.ndarray:
        """Static probabilities, (n, len(labels))."""
        return self.static.predict(texts, langs)

    def stage1_gate(self, texts: list[str], langs: list[str]
                    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Static probabilities and the gate MLP's (None without one), one tokenisation."""
        return self.static.predict_with_gate(texts, langs)

    def settles(self, lang: str, p: np.ndarray, pm: np.ndarray | None = None) -> bool:
        """Whether the static stage alone settles this chunk as benign: every gated head
        below its gate for the chunk's language (read from the gate MLP where the language's
        gate was calibrated on it, else from the linear heads)."""
        g = self.gate.get(lang)
        if not g:
            return False
        mlp = self.static.gate_mlp
        if self.gate_model.get(lang) == "mlp":
            if pm is None or mlp is None:
                return False
            return all(pm[mlp.labels.index(k)] < v for k, v in g.items())
        lab = self.labels
        return all(p[lab.index(k)] < v for k, v in g.items())

    def gate_reads_positions(self, lang: str) -> bool:
        """Whether the language's gate is the convolution over token positions
        (:class:`~guardrail.harm.tokstatic.GateCNN`) rather than a bag of tokens."""
        g = self.static.gate_mlp
        return self.gate_model.get(lang) == "mlp" and g is not None and g.kind == "cnn"

    def _scores(self, p: np.ndarray) -> list[dict[str, float]]:
        ai, ti = self.labels.index("any"), self.labels.index("toxic")
        out = []
        for row in p:
            d = {lab: float(min(v, row[ai])) for lab, v in zip(self.labels, row, strict=True)
                 if lab not in ENCODER_LABELS_EXTRA}
            d[GENERAL] = float(row[ti])
            out.append(d)
        return out

    def static_scores(self, p: np.ndarray, pm: np.ndarray | None = None,
                      lang: str | None = None) -> dict[str, float]:
        """Category scores from the static stage alone (``min(p_category, p_any)``). Where
        the language's gate reads the gate MLP (``pm``), its ``toxic`` and ``any`` stand in
        for the linear ones, so a chunk the gate settled reports the scores it was settled
        on (all below the gates)."""
        mlp = self.static.gate_mlp
        if pm is not None and mlp is not None and self.gate_model.get(lang or "") == "mlp":
            p = p.copy()
            for k in mlp.labels:
                p[self.labels.index(k)] = pm[mlp.labels.index(k)]
        return self._scores(p[None, :])[0]

    def stage2(self, texts: list[str], emb: np.ndarray,
               langs: list[str] | None = None) -> list[dict[str, float]]:
        """Category scores from encoder features (n, 384 * len(layers))."""
        langs = langs or [detect_language(t) for t in texts]
        emb = emb.astype(np.float32, copy=True)
        for i, lang in enumerate(langs):
            c = self.center.get(lang)
            if c is not None:
                emb[i] -= c
        p = _sigmoid(emb @ self.W + self.b)
        for lab, (W1, b1, W2, b2) in self.mlp.items():
            # the mean of the linear and the one-hidden-layer head: the MLP separates more,
            # the linear head keeps its tails smooth
            j = self.labels.index(lab)
            hidden = np.maximum(emb @ W1 + b1, 0.0)
            p[:, j] = 0.5 * (p[:, j] + _sigmoid(hidden @ W2 + b2))
        return self._scores(p)

    def save(self, path: Path) -> None:
        arrays: dict[str, Any] = self.static.arrays()
        for lab, (W1, b1, W2, b2) in self.mlp.items():
            arrays |= {f"mlp_{lab}_W1": W1.astype(np.float16), f"mlp_{lab}_b1": b1,
                       f"mlp_{lab}_W2": W2, f"mlp_{lab}_b2": np.array(b2, np.float32)}
        np.savez_compressed(
            path,
            W=self.W.astype(np.float32),
            b=self.b.astype(np.float32),
            center=np.stack([self.center[k] for k in sorted(self.center)]).astype(np.float32)
            if self.center else np.zeros((0, self.W.shape[0]), np.float32),
            config=np.array(json.dumps({
                "labels": self.labels, "gate": self.gate, "gate_model": self.gate_model,
                "center_langs": sorted(self.center),
                "meta": self.meta, "layers": list(self.layers), "format": 3,
                "mlp": sorted(self.mlp),
            })),
            **arrays,
        )

    @classmethod
    def load(cls, path: Path) -> Heads:
        with np.load(path, allow_pickle=False) as z:
            cfg = json.loads(str(z["config"]))
            static = TokenStatic.from_arrays(z, cfg["labels"])
            mlp = {lab: (z[f"mlp_{lab}_W1"].astype(np.float32),
                         z[f"mlp_{lab}_b1"].astype(np.float32),
                         z[f"mlp_{lab}_W2"].astype(np.float32), float(z[f"mlp_{lab}_b2"]))
                   for lab in cfg.get("mlp", [])}
            return cls(
                labels=cfg["labels"], W=z["W"], b=z["b"], static=static,
                center=dict(zip(cfg["center_langs"], z["center"], strict=True)),
                gate=cfg["gate"], gate_model=cfg.get("gate_model", {}),
                meta=cfg.get("meta", {}), layers=tuple(cfg["layers"]), mlp=mlp,
            )


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
