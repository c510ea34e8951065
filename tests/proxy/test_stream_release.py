"""Streams release as early as the scanners allow, and still never let out a match.

Every scanner says how far the text is safe to release (IP: no shingle of a registered work
could still start a copied passage; PII: no identifier could still straddle; harm: the end of
the last complete sentence). Whatever the upstream's chunk size, a copied passage, a split
email or phone number and a toxic sentence split across chunks are still caught before any
part of them leaves, while benign text starts flowing after far fewer characters than the
old fixed 304-character window.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest

from guardrail.corpus.registry import WorkInput
from guardrail.deps import Client
from guardrail.pipeline.runner import Pipeline, ScannerCache
from guardrail.pipeline.types import Finding, RequestMeta, ScanContext, ScannerInfo, ScanResult
from guardrail.policy import Policy
from guardrail.proxy.streaming import StreamGuard
from guardrail.scanners.harm import HarmConfig, HarmScanner
from tests.corpus.conftest import db_url, en_text, ja_text, registry  # noqa: F401 (fixtures)
from tests.mocks.stores import fake_state

SIZES = [1, 2, 3, 5, 7, 13, 29, 50]
STREAM = {"holdback_chars": 0, "scan_every_chars": 16, "first_release_chars": 8}
OLD_WINDOW = 304  # the fixed hold-back the IP scanner imposed before

BENIGN = ("Thanks for the question. The report covers three regions. Sales grew in the north, "
          "held steady in the west and dipped slightly in the south. The team suggests a "
          "review of pricing next quarter, with a short survey of customers first. ")
BAD = "You are a worthless, stupid idiot and everyone hates you."


_SERVICES: dict[str, Any] = {}  # process services (the PII analyzer) shared by these tests


def fake_runtime(corpus: Any = None) -> Any:
    """What scanners ask of the process runtime: ``service(name, factory)``, memoised;
    ``corpus``: the corpus registry the IP scanner gets."""
    services = dict(_SERVICES, corpus_registry=corpus) if corpus is not None else _SERVICES

    def service(name: str, factory: Any) -> Any:
        if name not in services:
            services[name] = _SERVICES[name] = factory()
        return services[name]

    return SimpleNamespace(settings=None, engine=getattr(corpus, "engine", None),
                           service=service)



class WholeSentenceHarm(HarmScanner):
    """The harm scanner's chunking and release bound with a stand-in model that flags
    :data:`BAD` only when it sees the whole sentence (the worst case for a sentence split
    across chunks: its first half alone scores nothing)."""

    def __init__(self) -> None:
        super().__init__(HarmConfig(type="harm", name="harm"), None)

    def load(self) -> None:  # no model
        pass

    def info(self) -> ScannerInfo:
        return ScannerInfo(name=self.name, backend="fake")

    async def scan(self, ctx: ScanContext) -> ScanResult:
        from guardrail.harm.chunking import chunk_spans

        findings = tuple(
            Finding(scanner=self.name, kind="harm", category="toxic", score=0.99, span=(s, e))
            for s, e in chunk_spans(ctx.text, self.config.chunk_chars) if BAD in ctx.text[s:e]
        )
        return ScanResult(scanner=self.name, info=self.info(), findings=findings)


@dataclass
class Streamed:
    released: str
    finish: str | None
    actions: list[str]
    first_at: int | None  # characters fed when the first content was released
    max_held: int  # most characters fed but not yet released, before the end
    incidents: list[Any]  # the incident drafts written


def make_pipeline(scanners: list[dict[str, Any]], cache: ScannerCache,
                  harm: bool = False) -> Pipeline:
    """A pipeline of ``scanners``; ``harm`` adds :class:`WholeSentenceHarm` (in place of a
    placeholder whose config blocks its findings)."""
    extra = [{"type": "denylist", "name": "harm", "terms": ["placeholder-never-seen"]}]
    policy = Policy.model_validate({"name": "t", "stream": STREAM,
                                    "scanners": scanners + (extra if harm else [])})
    pipe = Pipeline(policy, cache)
    if harm:
        loaded = next(s for s in pipe.scanners if s.config.name == "harm")
        loaded.scanner = WholeSentenceHarm()
        pipe.partition()
    return pipe


def guard(pipe: Pipeline) -> StreamGuard:
    """A chat-completions stream relay over ``pipe``, with an in-memory incident store."""
    policy = pipe.policy
    meta = RequestMeta(request_id="r", route="/v1/chat/completions", policy_name="t",
                       policy_version=policy.version, system_id="s")
    return StreamGuard(fake_state(), Client(key_id=None, policy=policy, pipeline=pipe),  # type: ignore[arg-type]
                       meta, chat=True)


def stream(pipe: Pipeline, text: str, size: int) -> Streamed:
    def chunk(piece: str | None, finish: str | None = None) -> str:
        delta = {} if piece is None else {"content": piece}
        return json.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1,
                           "model": "m",
                           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    def content(out: list[bytes]) -> tuple[str, str | None]:
        got, finish = "", None
        for b in out:
            for ch in json.loads(b.decode()[6:])["choices"]:
                got += (ch.get("delta") or {}).get("content") or ""
                finish = ch.get("finish_reason") or finish
        return got, finish

    async def go() -> Streamed:
        g = guard(pipe)
        state = g.state
        released, finish, first_at, max_held = "", None, None, 0
        for i in range(0, len(text), size):
            got, fin = content(await g.feed(chunk(text[i:i + size])))
            released += got
            finish = fin or finish
            fed = min(len(text), i + size)
            if released and first_at is None:
                first_at = fed
            max_held = max(max_held, fed - len(released))
            if g.stopped:
                break
        else:
            got, fin = content(await g.feed(chunk(None, "stop")))
            released, finish = released + got, fin or finish
        if not g.stopped:
            got, fin = content(await g.finish())
            released, finish = released + got, fin or finish
        return Streamed(released, finish, [r.action for r in state.store.rows], first_at,
                        max_held, state.store.rows)

    return asyncio.run(go())


# -- IP: copied passages -----------------------------------------------------------------
@pytest.fixture
def works(registry):  # noqa: F811 - the corpus fixture
    registry.upsert_corpus("books", "Old Press", "CC-BY-4.0")
    en, ja = en_text(31, 1500), ja_text(32, 1500)
    registry.add_works("books", [WorkInput("Book EN", en), WorkInput("Book JA", ja)])
    return ScannerCache(fake_runtime(registry)), en, ja


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("lang", ["en", "ja"])
def test_copied_passage_never_released_for_any_chunking(works, size: int, lang: str) -> None:
    cache, en, ja = works
    if lang == "en":
        copy = " ".join(en.split()[400:440])
        text = BENIGN + copy + " That is the passage you asked for."
    else:
        copy = ja[700:790]
        text = ("ご依頼の文章は次のとおりです。少し長いですが、最後までお読みください。"
                "引用の前に、出典と範囲を確認しておきます。本文は途中から始まります。"
                + copy + "。以上です。")
    got = stream(make_pipeline([{"type": "ip"}], cache), text, size)
    assert got.finish == "content_filter" and got.actions == ["hold"]
    assert text.startswith(got.released)
    assert len(got.released) <= text.index(copy)  # not one character of the copy left
    assert got.first_at is not None  # the text before the copy was flowing meanwhile


def test_ip_with_works_releases_benign_text_long_before_the_old_window(works) -> None:
    cache, _, _ = works
    got = stream(make_pipeline([{"type": "ip"}], cache), BENIGN * 2, 5)
    assert got.finish == "stop" and got.released == BENIGN * 2
    assert got.first_at is not None and got.first_at <= 40
    assert got.max_held <= 64


def test_ip_without_works_holds_nothing(registry) -> None:  # noqa: F811
    pipe = make_pipeline([{"type": "ip"}], ScannerCache(fake_runtime(registry)))
    assert pipe.safe_release(BENIGN, len(BENIGN)) == len(BENIGN)
    got = stream(pipe, BENIGN, 3)
    assert got.released == BENIGN and got.first_at == STREAM["first_release_chars"] + 1


# -- PII: split identifiers --------------------------------------------------------------
@pytest.fixture
def pii_cache() -> ScannerCache:
    return ScannerCache(fake_runtime())


PII_TEXTS = {
    "en": "Thanks for asking. Write to taro.yamada@example.com or call +1 415-555-0132 "
          "(mobile) before Friday, and the team will get back to you the same day.",
    "ja": "ご質問ありがとうございます。連絡先はtaro@example.co.jpです。電話090-1234-5678まで"
          "お願いします。お届け先は東京都新宿区西新宿2-8-1です。",
    "ja-spaced": "お問い合わせは taro.yamada@example.co.jp または 090-1234-5678 へ。"
                 "マイナンバーは 1234 5678 9018 です。",
}
PII_VALUES = {"en": ["taro.yamada@example.com", "415-555-0132"],
              "ja": ["taro@example.co.jp", "090-1234-5678", "東京都新宿区西新宿2-8-1"],
              "ja-spaced": ["taro.yamada@example.co.jp", "090-1234-5678", "1234 5678 9018"]}


def redacted_whole(pipe: Pipeline, text: str) -> str:
    """The text as a non-streamed response would carry it."""
    meta = RequestMeta("r", "/v1/chat/completions", "t", "v", "s")
    decision = asyncio.run(pipe.run(ScanContext(text=text, meta=meta)))
    spans = sorted((f.finding.span, f.finding.replacement) for f in decision.findings
                   if f.action.value == "redact" and f.finding.span)
    out, pos = [], 0
    for (s, e), rep in spans:
        out += [text[pos:s], rep or ""]
        pos = e
    return "".join([*out, text[pos:]])


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("lang", ["en", "ja", "ja-spaced"])
def test_split_identifiers_redacted_exactly_for_any_chunking(pii_cache, size: int,
                                                             lang: str) -> None:
    pipe = make_pipeline([{"type": "pii"}], pii_cache)
    text = PII_TEXTS[lang]
    expected = redacted_whole(pipe, text)
    assert not any(v in expected for v in PII_VALUES[lang])  # the reference redacts them all
    got = stream(pipe, text, size)
    assert (got.released, got.finish) == (expected, "stop")
    assert not any(v[:6] in got.released for v in PII_VALUES[lang])
    # nor in the incidents: a window's excerpt stops before an identifier still arriving
    stored = json.dumps([(d.excerpt, d.evidence) for d in got.incidents], ensure_ascii=False)
    assert got.incidents and not any(v[:4] in stored for v in PII_VALUES[lang])


def test_pii_releases_plain_prose_almost_at_once(pii_cache) -> None:
    got = stream(make_pipeline([{"type": "pii"}], pii_cache), BENIGN, 4)
    assert got.released == BENIGN
    assert got.first_at is not None and got.first_at <= 16
    assert got.max_held <= 40  # at most the word being written and a few chunks


# -- harm: sentences split across chunks -------------------------------------------------
@pytest.mark.parametrize("size", SIZES)
def test_toxic_sentence_split_across_chunks_never_released(size: int) -> None:
    pipe = make_pipeline([], ScannerCache(fake_runtime()), harm=True)
    text = BENIGN + BAD + " Have a nice day."
    got = stream(pipe, text, size)
    assert got.finish == "content_filter" and got.actions == ["block"]
    assert text.startswith(got.released) and len(got.released) <= text.index(BAD)
    assert got.first_at is not None and got.first_at < text.index(BAD)


def test_harm_holds_only_the_sentence_being_written() -> None:
    pipe = make_pipeline([], ScannerCache(fake_runtime()), harm=True)
    got = stream(pipe, BENIGN, 2)
    assert got.released == BENIGN and got.finish == "stop"
    longest = max(len(s) for s in BENIGN.split(". "))
    assert got.first_at is not None and got.first_at <= BENIGN.index(". ") + 2 + 8
    assert got.max_held <= longest + 2 + STREAM["scan_every_chars"] + 2 * 2


# -- everything together -----------------------------------------------------------------
def test_benign_first_token_long_before_the_old_window(works) -> None:
    """IP (works registered), PII, harm and a secrets pattern together, as shipped: the first
    token waits for the first sentence, not for 304 characters (nor, now that the denylist
    bounds its own release, for the secrets pattern's old 64-character window)."""
    ip_cache, _, _ = works
    pipe = make_pipeline(
        [{"type": "ip"}, {"type": "pii"},
         {"type": "denylist", "name": "secrets", "action": "redact",
          "patterns": ["sk-[a-z0-9]{20,}"]}],
        ip_cache, harm=True)
    assert pipe.holdback_chars >= OLD_WINDOW  # still the context each scan re-reads
    assert pipe.release_floor == 0  # every scanner bounds its own release
    for size in (1, 5, 20):
        got = stream(pipe, BENIGN * 2, size)
        assert got.released == BENIGN * 2 and got.finish == "stop"
        # the first sentence and the chunk that closes it, found by a scan every
        # first_release_chars (no longer behind the secrets pattern's 64 fixed characters)
        first = BENIGN.index(". ") + 2
        assert got.first_at is not None
        assert got.first_at <= first + 2 * size + STREAM["first_release_chars"]
        assert got.first_at < OLD_WINDOW // 2


# -- the bounds themselves ---------------------------------------------------------------
@pytest.mark.parametrize(("text", "held"), [
    pytest.param("The meeting is at noon. ", "", id="nothing-open"),
    pytest.param("The meeting is at noon. Thanks", "Thanks", id="word-being-written"),
    pytest.param("Please write to taro.yam", "taro.yam", id="email-open"),
    pytest.param("連絡先はtaro@exa", "taro@exa", id="email-against-japanese"),
    pytest.param("電話０９０－１２３", "０９０－１２３", id="full-width-phone"),
    pytest.param("Or call +1 415 555", "call +1 415 555", id="spaced-number"),
    pytest.param("IBAN GB82 WEST 1234 5698 76", "IBAN GB82 WEST 1234 5698 76", id="iban"),
    pytest.param("Call 555-0132 now and", "Call 555-0132 now and", id="context-may-follow"),
    pytest.param("Room 101 is on the left side of the long hall. ", "", id="context-passed"),
])
def test_pii_bound(text: str, held: str) -> None:
    from guardrail.scanners.release_bounds import pii_release_bound

    assert text[pii_release_bound(text, len(text)):] == held


def test_pii_bound_japanese_address_and_caps() -> None:
    from guardrail.scanners.jp_recognizers import DESIGNATED_CITIES, PREFECTURES, TOKYO_WARDS
    from guardrail.scanners.release_bounds import MAX_ENTITY, pii_release_bound

    names = (*PREFECTURES, *DESIGNATED_CITIES, *TOKYO_WARDS)
    for text, held in [("お届け先は東京都新宿", "東京都新宿"), ("本社は神奈", "神奈"),
                       ("本日は晴れです。", "")]:
        assert text[pii_release_bound(text, len(text), names):] == held
    blob = "x" * 1000
    assert pii_release_bound(blob, len(blob)) == len(blob) - MAX_ENTITY
    assert pii_release_bound("plain words here ", 17, fixed_holdback=10) == 7  # ner mode
    assert pii_release_bound("abc def", 4) == 4  # only what was scanned counts


@pytest.mark.parametrize(("text", "held"), [
    pytest.param("Hello there. How are", "How are", id="open-sentence"),
    pytest.param("Hello there. ", "", id="closed"),
    pytest.param("Hello there.", "Hello there.", id="terminator-may-be-followed"),
    pytest.param("First line\nsecond", "second", id="newline"),
    pytest.param("今日はいい天気だね。ラーメン", "ラーメン", id="japanese"),
])
def test_harm_bound(text: str, held: str) -> None:
    scanner = HarmScanner(HarmConfig(type="harm"), None)  # safe_release needs no model
    assert text[scanner.safe_release(text, len(text)):] == held


def test_harm_bound_releases_finished_pieces_of_a_long_sentence() -> None:
    from guardrail.scanners.release_bounds import sentence_release_bound

    text = "word " * 300  # 1500 characters, no terminator
    bound = sentence_release_bound(text.rstrip(), 1499, 400)
    assert 1499 - 400 <= bound < 1499 and text[bound - 1] == " "


def test_copy_bound() -> None:
    import numpy as np

    from guardrail.corpus.shingles import copy_release_bound, text_shingles

    work = en_text(5, 400)
    reg = text_shingles(work, 3)

    def registered(h: np.ndarray) -> np.ndarray:
        return np.isin(h, reg)

    def bound(text: str) -> int:
        return copy_release_bound(text, len(text), registered, 3, 16, 304)

    benign = "Zebra quokka lynx bison okapi tapir"
    # nothing registered: all but the shingle the last word (maybe unfinished) may complete
    assert benign[bound(benign):] == "bison okapi tapir"
    assert benign[bound(benign + " "):] == "okapi tapir"  # tapir is finished
    copy = " ".join(work.split()[100:106])
    text = benign + " " + copy
    assert bound(text) == len(benign) + 1  # a live run of registered shingles: held from it
    assert bound(text + " zebra quokka") == len(benign) + 1  # still within 16 units
    gone = text + " zebra quokka lynx bison okapi tapir gnu emu yak ibex"
    assert bound(gone) == gone.index(" emu ") + 1  # 20 units on: the run is dead, released
    long_copy = benign + " " + " ".join(work.split()[0:200])
    assert bound(long_copy) == len(long_copy) - 304  # held at most the fixed window
    assert copy_release_bound(benign, len(benign), lambda h: np.zeros(len(h), bool), 3, 16,
                              304) == benign.index("bison")


def test_pipeline_takes_the_smallest_bound_over_a_floor() -> None:
    class Fixed:
        def __init__(self, name: str, bound: int | None, holdback: int) -> None:
            self.name, self.bound, self.holdback_chars = name, bound, holdback

        def safe_release(self, text: str, upto: int) -> int:
            if self.bound is None:
                raise RuntimeError("bug")
            return self.bound

    class NoBound:
        holdback_chars = 30

    policy = Policy.model_validate({"name": "t", "stream": {"holdback_chars": 5}, "scanners": [
        {"type": "denylist", "name": f"d{i}", "terms": ["x-never"]} for i in range(3)]})
    pipe = Pipeline(policy, ScannerCache(fake_runtime()))
    a, b, c = pipe.scanners
    a.scanner, b.scanner, c.scanner = Fixed("a", 80, 0), Fixed("b", 90, 0), NoBound()  # type: ignore[assignment]
    pipe.partition()
    assert pipe.safe_release("t" * 100, 100) == 70  # NoBound: all but its 30
    assert pipe.release_floor == 30
    c.scanner = Fixed("c", 99, 0)  # type: ignore[assignment]
    pipe.partition()
    assert pipe.safe_release("t" * 100, 100) == 80 and pipe.release_floor == 5
    b.scanner = Fixed("b", None, 40)  # type: ignore[assignment]
    pipe.partition()
    assert pipe.safe_release("t" * 100, 100) == 60  # a failing bound: its fixed window
    assert pipe.safe_release("t" * 3, 3) == 0


# -- the first scan comes when the first sentence ends -----------------------------------
def _late_first_scan_pipeline(first_release: int) -> Pipeline:
    pipe = make_pipeline([], ScannerCache(fake_runtime()), harm=True)
    stream_cfg = {**STREAM, "first_release_chars": first_release, "scan_every_chars": 256}
    pipe.policy = pipe.policy.model_copy(
        update={"stream": pipe.policy.stream.model_copy(update=stream_cfg)})
    return pipe


@pytest.mark.parametrize("size", [1, 2, 3, 7])
@pytest.mark.parametrize(("text", "first_end"), [
    pytest.param(BENIGN, BENIGN.index(". ") + 2, id="en"),
    pytest.param("ご依頼の件、承知しました。以下に三つの案をまとめます。どれも費用は同程度です。",
                 len("ご依頼の件、承知しました。"), id="ja"),
    pytest.param('He said "Fine." Then he left the room without another word at all. ',
                 len('He said "Fine." '), id="closing-quote"),
])
def test_first_release_comes_when_the_first_sentence_ends(size: int, text: str,
                                                          first_end: int) -> None:
    """Until the first release, a scan runs as soon as a sentence ends (the harm bound can
    move then), not only every ``first_release_chars``: with 200 of them the first sentence
    still leaves within the chunk that closes it (plus the one that brings the space after an
    ASCII terminator)."""
    pipe = _late_first_scan_pipeline(200)
    got = stream(pipe, text, size)
    assert got.released == text and got.finish == "stop"
    assert got.first_at is not None and got.first_at <= first_end + 2 * size
    assert got.first_at < 200


def _count_scans(monkeypatch) -> list[int]:
    """Characters fed at each non-final scan of the stream window."""
    at: list[int] = []
    real_scan = StreamGuard._scan_and_release

    async def counting(self: StreamGuard, st: Any, final: bool) -> list[bytes]:
        if not final:
            at.append(len(st.text))
        return await real_scan(self, st, final)

    monkeypatch.setattr(StreamGuard, "_scan_and_release", counting)
    return at


def test_no_scan_before_anything_could_be_released(monkeypatch) -> None:
    """Before the first release a scan that could release nothing is skipped (the bounds are
    known before scanning): a 120-character first sentence fed 2 characters at a time is
    scanned once, when it ends, not every ``first_release_chars`` (8) along the way."""
    pipe = make_pipeline([{"type": "pii"}], ScannerCache(fake_runtime()), harm=True)
    first = ("The quarterly report that you asked for covers all three regions and the figures "
             "for each of the product lines we sell. ")
    assert len(first) > 100
    at = _count_scans(monkeypatch)
    got = stream(pipe, first + "Sales grew. " + BAD + " Bye.", 2)
    assert got.finish == "content_filter" and got.actions == ["block"]
    assert got.released == first + "Sales grew. "
    assert got.first_at is not None and got.first_at <= len(first) + 2
    assert at[0] >= len(first)  # nothing scanned while the first sentence was being written


def test_a_held_first_sentence_is_not_rechecked_on_every_chunk(monkeypatch) -> None:
    """A release-bound check that finds nothing to release counts as the last look: the next
    comes at the next due point (``first_release_chars`` later, or a sentence end), not on
    every chunk of a long first sentence (the bounds re-read the whole held window)."""
    pipe = make_pipeline([{"type": "pii"}], ScannerCache(fake_runtime()), harm=True)
    first = ("The quarterly report that you asked for covers all three regions and the figures "
             "for each of the product lines we sell. ")
    checks = 0
    real = StreamGuard._could_release

    def counting(self: StreamGuard, st: Any) -> bool:
        nonlocal checks
        checks += 1
        return real(self, st)

    monkeypatch.setattr(StreamGuard, "_could_release", counting)
    got = stream(pipe, first + "Sales grew. ", 1)
    assert got.released == first + "Sales grew. "
    assert got.first_at is not None and got.first_at <= len(first) + 2
    # one per first_release_chars (8) while the sentence was written, one at its end
    assert checks <= len(first) // STREAM["first_release_chars"] + 2


@pytest.mark.parametrize(("scanned", "fed", "due"), [
    pytest.param("One.", " T", True, id="space-after-a-seen-terminator"),
    pytest.param("One. ", "T", False, id="terminator-and-space-already-seen"),
    pytest.param("One. T", "wo", False, id="no-new-end"),
    pytest.param("One. Two", ". ", True, id="new-end"),
    pytest.param("はい", "。次", True, id="cjk-terminator-and-next"),
    pytest.param("はい。", "次", True, id="next-after-a-seen-cjk-terminator"),
    pytest.param("はい。次", "の", False, id="cjk-already-seen"),
    pytest.param("Line one", "\n", True, id="newline"),
])
def test_sentence_end_is_due_once(scanned: str, fed: str, due: bool) -> None:
    """The sentence-end trigger fires for an end the new text completes, not again for one the
    last scan saw (below ``first_release_chars``, before the first release)."""
    from guardrail.proxy.streaming import ChoiceState
    from guardrail.proxy.textbuffer import TextBuffer

    g = guard(_late_first_scan_pipeline(200))
    st = ChoiceState(0, text=TextBuffer(scanned + fed), scanned=len(scanned))
    assert g._scan_due(st) is due


@pytest.mark.parametrize("size", SIZES)
def test_content_then_tool_call_with_the_new_schedule(pii_cache, size: int) -> None:
    """Harm and PII together, content then a tool call, every chunk size: the first sentence
    leaves early, the email is redacted in the content and in the tool arguments, and no
    stored incident holds it (excerpts and evidence)."""
    from tests.proxy.test_stream_tool_args import ev, received, tool_events

    pipe = make_pipeline([{"type": "pii"}], pii_cache, harm=True)
    email = "taro.yamada@example.com"
    content = f"I will look that up now. Your address on file is {email} as before. "
    args = json.dumps({"email": email, "q": "orders"})

    events = [ev({"role": "assistant", "content": content[i:i + size]})
              for i in range(0, len(content), size)]
    events += tool_events(args, size)[1:]  # its own role event left out

    async def go() -> tuple[bytes, int | None, Any]:
        g = guard(pipe)
        state = g.state
        out: list[bytes] = []
        first_at, fed = None, 0
        for e in events:
            got = await g.feed(e)
            fed += len(json.loads(e)["choices"][0]["delta"].get("content") or "")
            if first_at is None and any(b'"content": "' in b or b'"content":"' in b
                                        for b in got):
                first_at = fed
            out += got
        out += await g.finish()
        return b"".join(out), first_at, state.store.rows

    raw, first_at, rows = asyncio.run(go())
    text = ""
    for block in raw.decode().split("\n\n"):
        if block.startswith("data: {"):
            for ch in json.loads(block[6:]).get("choices") or []:
                text += (ch.get("delta") or {}).get("content") or ""
    got_args, finishes = received(raw)
    assert email not in raw.decode() and "taro.yamada" not in raw.decode()
    assert text == content.replace(email, "<EMAIL_ADDRESS>")
    assert json.loads(got_args) == {"email": "<EMAIL_ADDRESS>", "q": "orders"}
    assert finishes == ["tool_calls"]
    assert first_at is not None
    if size < len("I will look that up now. "):  # events are released whole
        assert first_at <= len("I will look that up now. ") + 2 * size
    stored = json.dumps([(r.excerpt, r.evidence) for r in rows], ensure_ascii=False)
    assert rows and "taro.yamada" not in stored
    assert {r.stage for r in rows} == {"stream_window", "tool_arguments"}
