"""A stream's text so far, appended to chunk by chunk and read by slices.

``text += chunk`` on an attribute copies the whole string each time (CPython's in-place
concatenation applies to local variables only): a 1 MB answer in 10-character deltas cost
~14 s of CPU in copies alone. Here appends are kept as parts, folded into blocks of at least
``BLOCK`` characters, and a slice joins only the blocks it covers, so the relay's reads of its
scan window cost the window, not the text.
"""

from __future__ import annotations

from bisect import bisect_right

BLOCK = 4096


class TextBuffer:
    __slots__ = ("_blocks", "_starts", "_tail", "_tail_len", "_len", "_whole")

    def __init__(self, text: str = "") -> None:
        self._blocks: list[str] = []  # folded parts, each >= BLOCK chars (the last may be less)
        self._starts: list[int] = []  # offset of each block
        self._tail: list[str] = []  # appended since the last fold
        self._tail_len = 0
        self._len = 0
        self._whole: str | None = ""  # the joined text, while nothing was appended since
        if text:
            self.append(text)

    def append(self, s: str) -> None:
        if not s:
            return
        self._tail.append(s)
        self._tail_len += len(s)
        self._len += len(s)
        self._whole = None
        if self._tail_len >= BLOCK:
            self._fold()

    def _fold(self) -> None:
        if self._tail:
            self._starts.append(self._len - self._tail_len)
            self._blocks.append("".join(self._tail))
            self._tail, self._tail_len = [], 0

    def __len__(self) -> int:
        return self._len

    def __str__(self) -> str:
        if self._whole is None:
            self._fold()
            if len(self._blocks) > 1:  # one block from now on: later appends fold after it
                self._blocks, self._starts = ["".join(self._blocks)], [0]
            self._whole = self._blocks[0] if self._blocks else ""
        return self._whole

    def __getitem__(self, key: slice) -> str:
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("TextBuffer supports slices with step 1 only")
        start, stop, _ = key.indices(self._len)
        if start >= stop:
            return ""
        if self._whole is not None:
            return self._whole[start:stop]
        self._fold()
        i = bisect_right(self._starts, start) - 1
        parts = []
        while i < len(self._blocks) and self._starts[i] < stop:
            b0 = self._starts[i]
            parts.append(self._blocks[i][max(0, start - b0):stop - b0])
            i += 1
        return "".join(parts)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TextBuffer):
            return str(self) == str(other)
        if isinstance(other, str):
            return str(self) == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"TextBuffer({len(self)} chars)"
