"""Registered shingles: which of an output's shingles occur in any registered work.

Alignment (:mod:`guardrail.corpus.align`) anchors a copied passage only on output shingles
that occur exactly in the work, so an output none of whose shingles occurs in *any*
registered work cannot be part of a copied passage. Each segment therefore also stores the
sorted, de-duplicated 32-bit shingle hashes of each of its works (``shingles.npy``, with
``shingle_offsets.npy``: work ``i`` owns ``shingles[off[i]:off[i+1]]``); the index keeps, per
segment, one sorted array of its *live* works' shingles, so membership is one
``np.searchsorted`` per segment (microseconds for a stream window).

:func:`copy_release_bound` turns that into how far a stream may be released: the streaming
relay asks it after each scan (see :meth:`guardrail.scanners.ip.IPScanner.safe_release`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from guardrail.corpus.text import Tokens, shingle_hashes, tokenize

EMPTY = np.zeros(0, dtype=np.uint32)


def work_shingles(tokens: Tokens, k: int) -> np.ndarray:
    """Sorted unique shingle hashes (uint32) of one work, as alignment computes them."""
    if len(tokens) == 0:
        return EMPTY
    return np.unique(shingle_hashes(tokens, k)).astype(np.uint32)


def text_shingles(text: str, k: int) -> np.ndarray:
    return work_shingles(tokenize(text), k)


def pack(per_work: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-work arrays back to back, and where each starts (``len + 1`` offsets)."""
    offsets = np.zeros(len(per_work) + 1, dtype=np.int64)
    if per_work:
        offsets[1:] = np.cumsum([a.shape[0] for a in per_work])
        flat = np.concatenate(per_work).astype(np.uint32)
    else:
        flat = EMPTY
    return flat, offsets


def union(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """One sorted unique array holding every value of ``arrays``."""
    parts = [a for a in arrays if a.shape[0]]
    if not parts:
        return EMPTY
    return np.unique(np.concatenate(parts)).astype(np.uint32)


def contains(sorted_sets: Sequence[np.ndarray], values: np.ndarray) -> np.ndarray:
    """Boolean mask: which of ``values`` occur in any of the sorted arrays."""
    v = np.asarray(values, dtype=np.uint32)
    hit = np.zeros(v.shape[0], dtype=bool)
    for arr in sorted_sets:
        n = arr.shape[0]
        if n == 0 or v.shape[0] == 0:
            continue
        pos = np.searchsorted(arr, v)
        np.minimum(pos, n - 1, out=pos)
        hit |= arr[pos] == v
    return hit


def copy_release_bound(
    text: str,
    scanned_upto: int,
    registered: Callable[[np.ndarray], np.ndarray],
    k: int,
    max_gap_units: int,
    max_hold: int,
) -> int:
    """Offset up to which ``text[:scanned_upto]`` (already scanned) may be released without
    letting out any part of a copied passage that a later scan could still report.

    - A shingle whose last token may still grow (a word at the very end) or that needs tokens
      not yet seen can still become an anchor: text from its first token stays held, so when
      nothing matches, all but the last partial shingle is released.
    - Matching shingles (``registered`` says which) closer together than ``max_gap_units``
      form a cluster, as alignment chains anchors. The last cluster is *alive* while the next
      shingle that can still form is within ``max_gap_units`` of its last anchor: a passage
      through it could still grow, so text from the cluster's first anchor stays held. A dead
      cluster can grow no more; the scan that just ran saw it whole (and reported it if it
      was long enough), so it is released.
    - A live cluster is held for at most ``max_hold`` characters (the scanner's fixed window,
      sized for its shortest reportable passage): a run of common shingles that has lasted
      longer without becoming a passage holds no more than the fixed window did, and a real
      copy starting inside it is still held from its start until it is long enough to report.
    """
    text = text[:scanned_upto]
    tokens = tokenize(text)
    n = len(tokens)
    if n == 0:
        return scanned_upto
    # the last token is incomplete when it is a word running to the end of the text
    last_open = not bool(tokens.cjk[-1]) and int(tokens.ends[-1]) >= len(text)
    complete = n - 1 if last_open else n
    first_open = max(0, complete - k + 1)  # first token of a shingle that is not complete
    bound = int(tokens.starts[first_open]) if first_open < n else scanned_upto
    m = complete - k + 1  # complete shingles
    if m <= 0:
        return bound
    hit = registered(shingle_hashes(tokens, k)[:m])
    if not hit.any():
        return bound
    idx = np.nonzero(hit)[0]
    cum = np.cumsum(tokens.units)  # as align measures gaps between anchors
    breaks = np.nonzero(np.diff(cum[idx]) > max_gap_units)[0]
    first = int(idx[breaks[-1] + 1]) if breaks.shape[0] else int(idx[0])
    last = int(idx[-1])
    alive = first_open >= n or int(cum[first_open]) - int(cum[last]) <= max_gap_units
    if alive:
        bound = min(bound, max(int(tokens.starts[first]), scanned_upto - max_hold))
    return max(0, bound)
