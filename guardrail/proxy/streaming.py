"""SSE relay that holds back only what a scanner could still need.

Per choice, content deltas are queued with their character offsets. When enough new text has
arrived the pipeline scans a window (the already-released tail as context + everything held),
so a match split across chunks is seen whole. Text is then released only up to the offset
every scanner calls safe (:meth:`guardrail.pipeline.runner.Pipeline.safe_release`: the IP
scanner up to where no shingle of a registered work could still start a copied passage, PII
before any identifier still growing, harm to the end of the last complete sentence, other
scanners all but their fixed ``holdback_chars``; never within the policy's
``stream.holdback_chars`` of the end, and never inside a pending redaction), so a match that
starts in held text can still be completed by the next chunk before anything of it leaves.
Until something has been released, scans come every ``first_release_chars`` and as soon as a
sentence ends (the harm scanner releases whole sentences, so that is when the first token can
go); then every ``scan_every_chars``. Events whose text needs no change are re-emitted
byte-for-byte; redacted ones are rewritten. On block/hold the stream ends with a
``finish_reason: "content_filter"`` chunk, then ``[DONE]``.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import httpx

from guardrail.errors import (
    StoreError,
    UpstreamTimeoutError,
    UpstreamUnreachableError,
    api_error_of,
)
from guardrail.holds.store import new_response_id
from guardrail.logs import event
from guardrail.pipeline.types import (
    Action,
    Decision,
    RequestMeta,
    RuledFinding,
    ScanContext,
    Stage,
    apply_redactions,
)
from guardrail.proxy.exchange import summary as build_summary
from guardrail.proxy.guard import ScanTally, hold_ids, incident_drafts, keep_held, record
from guardrail.proxy.label import Labels
from guardrail.proxy.schemas import upstream_json
from guardrail.proxy.textbuffer import TextBuffer
from guardrail.proxy.upstream import UpstreamClient

if TYPE_CHECKING:
    from guardrail.deps import AppState, Client

log = logging.getLogger("guardrail.proxy")


@dataclass
class Event:
    raw: str  # original SSE data payload
    payload: dict[str, Any]
    start: int = 0  # content offsets in the choice's text
    end: int = 0
    tool: bool = False


@dataclass
class ChoiceState:
    index: int
    text: TextBuffer = field(default_factory=TextBuffer)  # appended per chunk, read by slices
    queue: list[Event] = field(default_factory=list)
    released: int = 0  # offset up to which content has been released
    scanned: int = 0  # offset up to which text has been scanned
    checked: int = 0  # offset of the last release-bound check that found nothing to release
    safe: int = 0  # offset up to which the last scan allows release
    redactions: list[list[Any]] = field(default_factory=list)  # [start, end, replacement]
    seen: list[tuple[tuple[str, str, str], int, int]] = field(default_factory=list)
    tool_args: dict[int, str] = field(default_factory=dict)  # call index (-1: function_call)
    tool_out: dict[int, str] = field(default_factory=dict)  # the scanned, redacted arguments
    finished: bool = False
    noticed: bool = False
    finish_reason: str | None = None
    tool_meta: dict[int, dict[str, Any]] = field(default_factory=dict)  # id, type, name


# a terminator (and closing quotes) followed by whitespace (after a CJK terminator: by any
# character, which is when the harm bound treats its sentence as finished), or a newline;
# searched from a few characters before the last scan, so a terminator that ended the last
# scan's text counts once the whitespace after it arrives (see StreamGuard._scan_due)
_SENTENCE_END = re.compile(r"[.!?][\"'”』」)]*\s|[。！？][\"'”』」）)]*[^\"'”』」）)]|\n")


def _content_of(payload: dict[str, Any], chat: bool) -> tuple[int | None, str, bool]:
    choices = payload.get("choices") or []
    if len(choices) != 1:
        return None, "", False
    ch = choices[0]
    if chat:
        delta = ch.get("delta") or {}
        text = delta.get("content") or ""
        tool = bool(delta.get("tool_calls") or delta.get("function_call"))
    else:
        text, tool = ch.get("text") or "", False
    return ch.get("index", 0), text if isinstance(text, str) else "", tool


def _tool_parts(payload: dict[str, Any]) -> list[tuple[int, str]]:
    """The (call index, argument text) pieces a chat chunk's delta carries; the legacy
    ``function_call`` is index -1."""
    ch = (payload.get("choices") or [{}])[0]
    delta = ch.get("delta") if isinstance(ch, dict) else None
    if not isinstance(delta, dict):
        return []
    out: list[tuple[int, str]] = []
    calls = delta.get("tool_calls")
    for call in calls if isinstance(calls, list) else []:
        if isinstance(call, dict):
            args = (call.get("function") or {}).get("arguments")
            key = call.get("index", 0)
            out.append((key if isinstance(key, int) else 0, args if isinstance(args, str) else ""))
    fc = delta.get("function_call")
    if isinstance(fc, dict) and isinstance(fc.get("arguments"), str):
        out.append((-1, fc["arguments"]))
    return out


def _split_choices(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """A chunk carrying several choices is split into one chunk per choice."""
    return [{**payload, "choices": [c]} for c in payload.get("choices") or []]


def sse(data: str) -> bytes:
    return f"data: {data}\n\n".encode()


class StreamGuard:
    def __init__(self, state: AppState, client: Client, meta: RequestMeta, chat: bool,
                 on_first_content: Callable[[], None] | None = None,
                 labels: Labels | None = None) -> None:
        if meta.response_id is None:  # where a held copy would be kept
            meta = replace(meta, response_id=new_response_id())
        self.state, self.client, self.meta, self.chat = state, client, meta, chat
        self.policy = client.policy
        # context re-read before held text on each scan (the scanners' fixed windows)
        self.holdback = client.pipeline.holdback_chars
        # held whatever the text: the policy's floor, scanners without safe_release
        self.floor = client.pipeline.release_floor
        self.scan_every = self.policy.stream.scan_every_chars
        self.first_release = self.policy.stream.first_release_chars
        self.choices: dict[int, ChoiceState] = {}
        self.action = Action.ALLOW
        self.incident_ids: list[str] = []
        self.tally = ScanTally()  # per-scanner ms over every window, for the decision line
        self.stopped = False
        self.template: dict[str, Any] = {}
        self.trailing: list[str] = []  # non-choice events (usage) released at the end
        self.on_first_content = on_first_content
        self._first = False
        # the label stage's decisions for this response (the exchange's, when there is one)
        self.labels = labels or Labels(self.policy, meta.upstream_model, meta.request_id)
        self.notice = self.labels.stream_notice(None)
        # a hold: nothing more leaves; the stream is read to its end (up to the policy's
        # max_stream_chars) so that the whole response can be kept and released later
        self.holding = False
        self.hold_truncated = False
        self.response_id: str | None = None
        self.hold_ids: list[str] = []
        self.usage: dict[str, Any] | None = None

    @property
    def done_reading(self) -> bool:
        return self.stopped or self.hold_truncated

    # -- feeding ---------------------------------------------------------------------------
    async def feed(self, raw: str) -> list[bytes]:
        try:
            payload = upstream_json(raw)
        except json.JSONDecodeError:
            return [sse(raw)]
        if not isinstance(payload, dict):
            return [sse(raw)]
        if "error" in payload:
            return [sse(raw)]
        if not self.template:
            self.template = {k: payload[k] for k in ("id", "object", "created", "model")
                             if k in payload}
        if self.meta.answered_model is None and isinstance(payload.get("model"), str):
            # incidents record the model that answered (the chunks' ``model``)
            self.meta = replace(self.meta, answered_model=payload["model"])
            observe = getattr(self.state, "extras", {}).get("observe_model")
            if observe is not None:  # governance: models seen per system
                observe(self.state, self.policy.system, payload["model"])
        choices = payload.get("choices") or []
        if not choices:
            self.trailing.append(raw)
            if isinstance(payload.get("usage"), dict):
                self.usage = payload["usage"]
            return []
        if len(choices) > 1:
            out: list[bytes] = []
            for sub in _split_choices(payload):
                out += await self.feed(json.dumps(sub, ensure_ascii=False))
            return out
        idx, text, tool = _content_of(payload, self.chat)
        assert idx is not None
        st = self.choices.setdefault(idx, ChoiceState(idx))
        ev = Event(raw=raw, payload=payload, start=len(st.text), end=len(st.text) + len(text),
                   tool=tool)
        st.text.append(text)
        if tool:
            self._collect_tool_args(st, payload)
        st.queue.append(ev)
        reason = payload["choices"][0].get("finish_reason")
        if reason:
            st.finish_reason = reason if isinstance(reason, str) else "stop"
        if self.holding:
            if len(st.text) > self.policy.hold.max_stream_chars:
                self.hold_truncated = True
            return []
        if reason:
            st.finished = True
            return await self._scan_and_release(st, final=True)
        if self._scan_due(st):
            if st.released > 0 or self._could_release(st):
                return await self._scan_and_release(st, final=False)
            st.checked = len(st.text)  # the next check waits for the next due point
        return []

    def _could_release(self, st: ChoiceState) -> bool:
        """Would a scan now release anything? The scanners' release bounds depend on the text,
        not on what a scan finds, so this is known before scanning (microseconds). Before the
        first release a scan that could release nothing is skipped: it would re-read held
        text (the harm model on half a sentence) that the next scan reads anyway, and nothing
        has left that it could stop."""
        base = max(0, st.released - self.holdback)
        window = st.text[base:]
        return base + self.client.pipeline.safe_release(window, len(window)) > st.released

    def _scan_due(self, st: ChoiceState) -> bool:
        """Scan when text can be released: first once ``first_release_chars`` lie beyond the
        fixed hold-back floor (earlier scans could release nothing), again every
        ``first_release_chars`` or as soon as a sentence ends, until something is released
        (so the first token waits for what the scanners need, e.g. the first sentence, not for
        a whole ``scan_every``), then every ``scan_every``."""
        if st.released == 0:
            # counted from the last scan, or the last bound check that could release nothing
            start = max(st.scanned, st.checked, self.floor)
            if len(st.text) - start >= self.first_release:
                return True
            # a sentence ended since the last scan: the harm bound (the end of the last
            # complete sentence) can move now, so the first sentence need not wait for the
            # next first_release_chars (at an LLM's ~200 chars/s, 32 chars are 160 ms)
            # (a match must end in the new text: a terminator seen by the last scan does not
            # trigger again)
            lo = max(0, start - 4)
            return any(lo + m.end() > start for m in _SENTENCE_END.finditer(st.text[lo:]))
        return len(st.text) - st.scanned >= self.scan_every

    def _collect_tool_args(self, st: ChoiceState, payload: dict[str, Any]) -> None:
        for key, args in _tool_parts(payload):
            st.tool_args[key] = st.tool_args.get(key, "") + args
        delta = (payload.get("choices") or [{}])[0].get("delta") or {}
        for call in delta.get("tool_calls") or []:
            if not isinstance(call, dict):
                continue
            key = call.get("index", 0)
            meta = st.tool_meta.setdefault(key if isinstance(key, int) else 0, {})
            for k in ("id", "type"):
                if isinstance(call.get(k), str):
                    meta[k] = call[k]
            name = (call.get("function") or {}).get("name")
            if isinstance(name, str):
                meta["name"] = meta.get("name", "") + name
        fc = delta.get("function_call")
        if isinstance(fc, dict) and isinstance(fc.get("name"), str):
            meta = st.tool_meta.setdefault(-1, {})
            meta["name"] = meta.get("name", "") + fc["name"]

    # -- scanning --------------------------------------------------------------------------
    async def _scan(self, st: ChoiceState, text: str, base: int, stage: Stage,
                    final: bool = False, scope: str = "") -> tuple[Action, Decision]:
        ctx = ScanContext(text=text, meta=self.meta, stage=stage)
        decision = await self.client.pipeline.run(ctx)
        self.tally.add(decision)
        recorded = text
        if stage is Stage.STREAM_WINDOW and not final:
            safe = self.client.pipeline.safe_release(text, len(text))
            st.safe = base + safe
            # incidents keep what the scanners are done with, and the findings: not the tail
            # an identifier may still be arriving in (it would be stored unmasked)
            ends = [rf.finding.span[1] for rf in decision.findings if rf.finding.span]
            recorded = text[:max([safe, *ends])]
        new: list[RuledFinding] = []
        for rf in decision.findings:
            f = rf.finding
            span = (f.span[0] + base, f.span[1] + base) if f.span else (-1, -1)
            key = (stage.value + scope, f.scanner, f.category)
            if rf.action is not Action.ALLOW and not any(
                k == key and span[0] < e and s < span[1] for k, s, e in st.seen
            ):
                new.append(rf)
            if rf.action is not Action.ALLOW:
                st.seen.append((key, *span))
            if rf.action is Action.REDACT and f.span and stage is Stage.STREAM_WINDOW:
                self._add_redaction(st, span[0], span[1],
                                    f.replacement or f"<{f.category.upper()}>")
        drafts = incident_drafts(self.state, self.client, self.meta, stage, recorded, decision,
                                 findings=tuple(new),
                                 extra={"choice": st.index, "window_offset": base})
        if drafts:
            ids = await record(self.state, drafts, self.policy.on_store_error)
            self.incident_ids += ids
            self.hold_ids += hold_ids(drafts, ids)
        acts = [rf.action for rf in new] + [f.action for f in decision.failures]
        act = Action.strongest(acts)
        self.action = Action.strongest([self.action, act])
        return act, decision

    def _add_redaction(self, st: ChoiceState, start: int, end: int, rep: str) -> None:
        for r in st.redactions:
            if start < r[1] and end > r[0]:
                if start < r[0] and start >= st.released:
                    r[0], r[2] = start, rep
                r[1] = max(r[1], end)
                return
        st.redactions.append([start, end, rep])
        st.redactions.sort()

    async def _scan_and_release(self, st: ChoiceState, final: bool) -> list[bytes]:
        if self.stopped:
            return []
        act = Action.ALLOW
        if len(st.text) > st.scanned:
            base = max(0, st.released - self.holdback)
            act, _ = await self._scan(st, st.text[base:], base, Stage.STREAM_WINDOW, final)
            st.scanned = len(st.text)
        if final and st.tool_args and act not in (Action.BLOCK, Action.HOLD):
            # a tool call's arguments are held whole until here (its events never leave
            # before ``final``), scanned whole and redacted as in a non-streamed response
            for key, args in st.tool_args.items():
                a, decision = await self._scan(st, args, 0, Stage.TOOL_ARGUMENTS,
                                               scope=f"#{key}")
                red = decision.redactions
                st.tool_out[key] = apply_redactions(args, red) if red else args
                act = Action.strongest([act, a])
            if act not in (Action.BLOCK, Action.HOLD) and not self._rewrite_tool_events(st):
                # the redacted arguments could not be put in place of the raw ones: block
                event(log, logging.WARNING, "tool_arguments_unredactable",
                      request_id=self.meta.request_id)
                act = Action.BLOCK
                self.action = Action.strongest([self.action, act])
        if act is Action.BLOCK:
            return self._stop(st, act)
        if act is Action.HOLD:
            self.holding = True  # keep reading; finish() keeps the whole response
            return []
        limit = len(st.text) if final else max(st.released, min(st.safe, len(st.text)))
        for r in st.redactions:
            if r[0] < limit < r[1]:
                limit = r[0]
        return self._release(st, limit, final)

    def _rewrite_tool_events(self, st: ChoiceState) -> bool:
        """Where a tool call's scanned arguments differ from what the upstream wrote, rewrite
        its held events: the first delta of each call carries the whole redacted arguments,
        later ones none (argument-only deltas left empty are dropped). Untouched calls keep
        their events byte-for-byte. False if the result would not deliver exactly the
        redacted arguments (then nothing of them may leave)."""
        changed = {k for k, v in st.tool_out.items() if v != st.tool_args.get(k)}
        if not changed:
            return True
        placed: set[int] = set()
        kept: list[Event] = []
        for ev in st.queue:
            if not ev.tool or not any(k in changed for k, _ in _tool_parts(ev.payload)):
                kept.append(ev)
                continue
            payload = json.loads(ev.raw)
            ch = payload["choices"][0]
            delta = ch.get("delta") or {}
            calls = []
            for call in delta.get("tool_calls") or []:
                key = call.get("index", 0) if isinstance(call, dict) else None
                if key not in changed or not isinstance(call, dict):
                    calls.append(call)
                    continue
                fn = dict(call.get("function") or {})
                fn["arguments"] = "" if key in placed else st.tool_out[key]
                placed.add(key)
                if fn["arguments"] or set(call) - {"index", "function"} or set(fn) - {"arguments"}:
                    calls.append({**call, "function": fn})
            if "tool_calls" in delta:
                if calls:
                    delta["tool_calls"] = calls
                else:
                    del delta["tool_calls"]
            fc = delta.get("function_call")
            if -1 in changed and isinstance(fc, dict):
                fc["arguments"] = "" if -1 in placed else st.tool_out[-1]
                placed.add(-1)
            if (ev.end == ev.start and not ch.get("finish_reason")
                    and not any(delta.values())
                    and not set(ch) - {"index", "delta", "finish_reason", "logprobs"}):
                continue  # nothing left in it
            ev.payload, ev.raw = payload, json.dumps(payload, ensure_ascii=False)
            ev.tool = bool(delta.get("tool_calls") or delta.get("function_call"))
            kept.append(ev)
        sent: dict[int, str] = {}
        for ev in kept:
            for key, args in _tool_parts(ev.payload):
                sent[key] = sent.get(key, "") + args
        if any(sent.get(k, "") != st.tool_out[k] for k in changed):
            return False
        st.queue[:] = kept
        return True

    def _render(self, st: ChoiceState, start: int, end: int) -> str:
        out: list[str] = []
        pos = start
        for r0, r1, rep in st.redactions:
            if r1 <= start or r0 >= end:
                continue
            if r0 >= pos:
                out.append(st.text[pos:r0])
                out.append(rep)
            pos = max(pos, min(r1, end))
        out.append(st.text[pos:end])
        return "".join(out)

    def _release(self, st: ChoiceState, limit: int, final: bool) -> list[bytes]:
        out: list[bytes] = []
        while st.queue:
            ev = st.queue[0]
            if ev.end > limit and ev.end > ev.start:
                break
            if ev.tool and not final:
                break
            st.queue.pop(0)
            if self.notice and not st.noticed:
                pos, _ = self.notice
                is_finish = bool(ev.payload["choices"][0].get("finish_reason"))
                if (pos == "prepend" and ev.end > ev.start) or is_finish:
                    # its own delta: before the first content, or before the finish chunk
                    st.noticed = True
                    notice = self.labels.stream_notice(str(st.text))
                    if notice is not None:
                        out.append(sse(self._delta(st.index, notice[1])))
            if ev.end > ev.start:
                rendered = self._render(st, ev.start, ev.end)
                if rendered != st.text[ev.start:ev.end]:
                    payload = json.loads(ev.raw)
                    ch = payload["choices"][0]
                    if self.chat:
                        ch.setdefault("delta", {})["content"] = rendered
                    else:
                        ch["text"] = rendered
                    ev.raw = json.dumps(payload, ensure_ascii=False)
                st.released = ev.end
                if not self._first and rendered:
                    self._first = True
                    if self.on_first_content:
                        self.on_first_content()
            out.append(sse(ev.raw))
        return out

    def _delta(self, index: int, text: str) -> str:
        choice: dict[str, Any] = ({"index": index, "delta": {"content": text},
                                   "finish_reason": None} if self.chat else
                                  {"index": index, "text": text, "finish_reason": None})
        return json.dumps({**self.template, "choices": [choice]}, ensure_ascii=False)

    def _stop(self, st: ChoiceState, act: Action) -> list[bytes]:
        self.stopped = True
        st.queue.clear()
        msg = getattr(self.policy.messages, act.value).format(
            incident_id=self.incident_ids[0] if self.incident_ids else "-")
        chunk = {**self.template,
                 "choices": [{"index": st.index, "delta": {} if self.chat else None,
                              "finish_reason": "content_filter"}],
                 "guardrail": self.summary(message=msg)}
        if not self.chat:
            chunk["choices"][0] = {"index": st.index, "text": "", "finish_reason": "content_filter"}
        return [sse(json.dumps(chunk, ensure_ascii=False))]

    # -- end -------------------------------------------------------------------------------
    async def finish(self) -> list[bytes]:
        if self.holding:
            return await self._finish_hold()
        out: list[bytes] = []
        for st in self.choices.values():
            if self.stopped:
                break
            if st.queue or len(st.text) > st.scanned:
                out += await self._scan_and_release(st, final=True)
        if not self.stopped:
            self.labels.released(getattr(self.state, "extras", {}))
            out += [sse(raw) for raw in self.trailing]
            out.append(sse(json.dumps({**self.template, "choices": [],
                                       "guardrail": self.summary()}, ensure_ascii=False)))
        return out

    async def _finish_hold(self) -> list[bytes]:
        """The stream was held: scan what arrived after the hold (incidents for new findings,
        redactions for the held copy), keep the whole response encrypted, end the stream with
        the hold notice and the ``response_id`` to fetch it by once a person released it."""
        for st in self.choices.values():
            if len(st.text) > st.scanned:
                await self._scan(st, str(st.text), 0, Stage.STREAM_WINDOW, final=True)
                st.scanned = len(st.text)
            for key, args in st.tool_args.items():
                _, decision = await self._scan(st, args, 0, Stage.TOOL_ARGUMENTS,
                                               scope=f"#{key}")
                red = decision.redactions
                st.tool_out[key] = apply_redactions(args, red) if red else args
        first = min(self.choices.values(), key=lambda c: c.index)
        if self.action is Action.BLOCK:  # what arrived after the hold is worse: blocked
            return self._stop(first, Action.BLOCK)
        body = json.dumps(self._held_body(), ensure_ascii=False).encode()
        self.response_id = await keep_held(self.state, self.client, self.meta, body,
                                           self.hold_ids)
        return self._stop(first, Action.HOLD)

    def _held_body(self) -> dict[str, Any]:
        """The held stream as one OpenAI-format object (``chat.completion`` or
        ``text_completion``): what the client would have assembled, redactions and the
        disclosure notice applied."""
        choices: list[dict[str, Any]] = []
        for st in sorted(self.choices.values(), key=lambda c: c.index):
            text = self._render(st, 0, len(st.text))
            if text:
                text = self.labels.text(text, str(st.text))
            reason = "length" if self.hold_truncated else (st.finish_reason or "stop")
            if not self.chat:
                choices.append({"index": st.index, "text": text, "finish_reason": reason,
                                "logprobs": None})
                continue
            msg: dict[str, Any] = {"role": "assistant", "content": text or None}
            calls = [{"id": st.tool_meta.get(k, {}).get("id", f"call_{k}"),
                      "type": st.tool_meta.get(k, {}).get("type", "function"),
                      "function": {"name": st.tool_meta.get(k, {}).get("name", ""),
                                   "arguments": st.tool_out.get(k, "")}}
                     for k in sorted(st.tool_args) if k >= 0]
            if calls:
                msg["tool_calls"] = calls
            if -1 in st.tool_args:
                msg["function_call"] = {"name": st.tool_meta.get(-1, {}).get("name", ""),
                                        "arguments": st.tool_out.get(-1, "")}
            choices.append({"index": st.index, "message": msg, "finish_reason": reason,
                            "logprobs": None})
        out: dict[str, Any] = {**self.template,
                               "object": "chat.completion" if self.chat else "text_completion",
                               "choices": choices}
        if self.usage is not None:
            out["usage"] = self.usage
        if self.hold_truncated:
            out["guardrail"] = {"truncated_at_chars": self.policy.hold.max_stream_chars}
        return out

    def summary(self, message: str | None = None) -> dict[str, Any]:
        # monitor-mode scanners (named in it) scan after the stream ends
        return build_summary(self.policy, self.meta, self.client.pipeline, self.labels, self.action,
                       self.incident_ids, message=message, response_id=self.response_id)


async def relay(
    guard: StreamGuard, upstream: httpx.Response, on_done: Callable[[str], None]
) -> AsyncIterator[bytes]:
    """Yield guarded SSE bytes from an open upstream response; always ends the stream.

    Failures end it with an OpenAI-format error event: the upstream's (502/504 codes), or a
    store outage (``store_unavailable``: an incident could not be written, so nothing still
    held, the text it concerns included, is released)."""
    status = "ok"
    try:
        async for line in UpstreamClient.lines(upstream):
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            out = await guard.feed(data)
            if out:
                yield b"".join(out)
            if guard.done_reading:
                break
        yield b"".join([*await guard.finish(), b"data: [DONE]\n\n"])
    except (UpstreamUnreachableError, UpstreamTimeoutError) as err:
        status = "upstream_error"
        body = err.body()
        body["error"]["message"] = f"upstream stream failed: {err.message}"
        yield sse(json.dumps(body))
    except StoreError as exc:
        status = "store_unavailable"
        event(log, logging.ERROR, "stream_withheld", request_id=guard.meta.request_id,
              error=type(exc).__name__)
        yield sse(json.dumps(api_error_of(exc).body()))
    except Exception:
        status = "error"
        yield sse(json.dumps({"error": {"message": "guardrail failed while relaying the stream",
                                        "type": "server_error", "param": None,
                                        "code": "stream_failed"}}))
        raise
    finally:
        on_done(status)


def now() -> float:
    return time.perf_counter()
