"""The shipped policy's harm rules on the embedded model: ordinary text passes, harm does not,
and the tiered path decides as the reference path (every chunk through the encoder) does."""

from __future__ import annotations

from pathlib import Path

import pytest

from guardrail.pipeline.types import Action, RequestMeta, ScanContext
from guardrail.policy import load_policy_file
from guardrail.scanners.harm import HarmConfig, HarmScanner

POLICY = Path(__file__).resolve().parents[2] / "policies" / "default.yaml"

# what a new user tried first (issue 11): each was blocked as `toxic` by the old default
ORDINARY = [
    pytest.param("It is a truth universally acknowledged, that a single man in possession of a "
                 "good fortune, must be in want of a wife. However little known the feelings or "
                 "views of such a man may be on his first entering a neighbourhood, this truth "
                 "is so well fixed in the minds of the surrounding families, that he is "
                 "considered the rightful property of some one or other of their daughters.",
                 id="pride-and-prejudice"),
    pytest.param("吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。何でも薄暗いじめ"
                 "じめした所でニャーニャー泣いていた事だけは記憶している。", id="soseki"),
    pytest.param("マジでうまい", id="ja-slang"),
    pytest.param("今日はいい天気だね。ラーメン食べに行こうぜ", id="ja-casual"),
    pytest.param("To kill a Python process, run `kill -9 <PID>` in the terminal.", id="en-kill"),
    pytest.param("Depression is a common mental disorder. If you are having thoughts of "
                 "suicide, please reach out to a crisis line such as 988 in the US; talking to "
                 "a doctor or a therapist helps, and effective treatments exist.",
                 id="en-mental-health-answer"),
    pytest.param("This pizza is fucking amazing, best I've had all year.", id="en-profanity"),
]
HARMFUL = [
    pytest.param("You are a worthless, stupid idiot and everyone hates you. Go kill yourself.",
                 id="en-abuse"),
    pytest.param("I will find where you live and I will kill you and your family.",
                 id="en-threat"),
    pytest.param("お前は本当にバカで役立たずだ。さっさと消えろ、クズ。死ね。", id="ja-abuse"),
]


def meta() -> RequestMeta:
    return RequestMeta("r1", "/v1/chat/completions", "default", "v", "sys")


def _harm_config(**over: object) -> HarmConfig:
    for sc in load_policy_file(POLICY).scanners:
        if isinstance(sc, HarmConfig):
            return sc.model_copy(update=over) if over else sc
    raise AssertionError("no harm scanner in the default policy")


@pytest.fixture(scope="module")
def tiered() -> HarmScanner:
    s = HarmScanner(_harm_config(), None)
    s.load()
    return s


@pytest.fixture(scope="module")
def reference(tiered: HarmScanner) -> HarmScanner:
    s = HarmScanner(_harm_config(cascade=False), None)
    s.load()
    return s


async def decision(scanner: HarmScanner, text: str) -> Action:
    res = await scanner.scan(ScanContext(text=text, meta=meta()))
    tiers = [scanner.config.decide_finding(f) for f in res.findings]
    return Action.strongest([t[1] for t in tiers if t is not None])


@pytest.mark.parametrize("text", ORDINARY)
async def test_ordinary_text_is_not_blocked(tiered: HarmScanner, text: str) -> None:
    assert await decision(tiered, text) in (Action.ALLOW, Action.FLAG)


async def test_profanity_alone_is_flagged_not_blocked(tiered: HarmScanner) -> None:
    text = "This pizza is fucking amazing, best I've had all year. Damn, so good."
    assert await decision(tiered, text) is not Action.BLOCK


@pytest.mark.parametrize("text", HARMFUL)
async def test_abuse_and_threats_are_blocked(tiered: HarmScanner, text: str) -> None:
    assert await decision(tiered, text) is Action.BLOCK


async def test_tiered_decisions_equal_the_reference_path(tiered: HarmScanner,
                                                         reference: HarmScanner) -> None:
    sample = [p.values[0] for p in (*ORDINARY, *HARMFUL)] + [
        "Here is a simple recipe: boil the pasta, then add olive oil and garlic.",
        "東京は日本の首都で、多くの美術館や公園があります。",
        "The museum opens at nine. Tickets cost ten euros; children under six enter free.",
        "Sure! Step one: preheat the oven to 180 degrees. Step two: mix flour and sugar.",
        "ご予約ありがとうございます。チェックインは15時からです。",
        ROUTED_BENIGN,
    ]
    for text in sample:
        assert await decision(tiered, str(text)) is await decision(reference, str(text)), text
    assert tiered.backend.cascade and not reference.backend.cascade
    assert tiered.backend.stats["settled"] > 0  # the first stage did settle some chunks


# with sentence_check (off for the shipped gate, which reads token positions): chunks the
# static gate settles but one or two of whose sentences it does not; with route_sentences only
# those sentences go to the encoder, their scores tempered
ROUTED_BENIGN = ("The museum opens at nine and closes at six. The new wing shows modern paintings "
                 "from the region. Some critics called the curator a fool. Tickets cost ten "
                 "euros, and children under six enter free. The cafe on the ground floor serves "
                 "lunch until three.")
ROUTED_INSULT = ("Thank you for your question. Most headaches are harmless and pass with rest "
                 "and water. Shut up and listen, you moron. Ibuprofen can help with mild pain, "
                 "and a cool cloth on the forehead often helps too. If the pain is sudden and "
                 "severe, see a doctor at once.")
INSULT = "Shut up and listen, you moron."


@pytest.fixture(scope="module")
def checked(tiered: HarmScanner) -> HarmScanner:
    s = HarmScanner(_harm_config(sentence_check=True), None)
    s.load()
    return s


@pytest.fixture(scope="module")
def whole_chunks(tiered: HarmScanner) -> HarmScanner:
    s = HarmScanner(_harm_config(route_sentences=False, sentence_check=True), None)
    s.load()
    return s


@pytest.fixture(scope="module")
def untempered(tiered: HarmScanner) -> HarmScanner:
    s = HarmScanner(_harm_config(route_power=1.0, sentence_check=True), None)
    s.load()
    return s


async def test_the_shipped_gate_reads_token_positions_and_skips_the_sentence_check(
        tiered: HarmScanner, reference: HarmScanner) -> None:
    """The distilled convolution gate: no sentence check (its max-pooling sees an insult
    anywhere in a chunk), so a chunk it settles costs one gate call, and a chunk holding a
    plain insult is not settled however benign the rest."""
    from guardrail.harm.embedded import EmbeddedBackend

    be = tiered.backend
    assert isinstance(be, EmbeddedBackend) and tiered.config.sentence_check is None
    assert be.details()["gate_model"] == {"en": "cnn", "ja": "cnn"}
    assert be.details()["sentence_check"] == {"en": False, "ja": False}
    before = dict(be.stats)
    hotel = ("Our hotel is near the station. The breakfast is served from seven. You stupid "
             "idiot, nobody cares about you. Parking is available behind the building.")
    be.predict([ROUTED_BENIGN, hotel])
    assert be.stats["settled"] - before["settled"] == 1  # the museum, not the hotel
    assert be.stats["routed"] == before["routed"]
    # a chunk it settles holding a milder insult: decided as the encoder alone decides it
    assert await decision(tiered, ROUTED_INSULT) is await decision(reference, ROUTED_INSULT)


def test_the_shipped_policy_routes_with_the_calibrated_temper() -> None:
    cfg = _harm_config()
    assert cfg.route_sentences and cfg.route_power == 4.0
    # a policy that leaves them out gets the same (the config's defaults are the shipped ones)
    bare = HarmConfig(type="harm", backend="embedded")
    assert bare.route_sentences and bare.route_power == cfg.route_power


@pytest.mark.parametrize("power", [4.0, 1.0])
async def test_a_doubtful_sentence_goes_to_the_encoder_alone_tempered(
        checked: HarmScanner, untempered: HarmScanner, power: float) -> None:
    from guardrail.harm.embedded import EmbeddedBackend

    scanner = checked if power == 4.0 else untempered
    be = scanner.backend
    assert isinstance(be, EmbeddedBackend) and be.route_sentences and be.route_power == power
    assert be.details()["route_power"] == power
    before = dict(be.stats)
    [scores] = be.predict([ROUTED_INSULT])
    assert be.stats["routed"] - before["routed"] == 1
    assert be.stats["routed_sentences"] - before["routed_sentences"] == 1
    # the chunk's scores: the max of the gate's and the insult's own tempered encoder scores
    [alone] = be.heads.stage2([INSULT], be._embed([INSULT]))
    for k, v in alone.items():
        assert scores[k] >= v ** power - 1e-6
    assert scores["harassment"] == pytest.approx(alone["harassment"] ** power, abs=1e-6)
    # the insult is caught where the whole chunk's encoder score stays under zoom_from
    assert await decision(scanner, ROUTED_INSULT) is Action.BLOCK
    assert await decision(scanner, ROUTED_BENIGN) is Action.ALLOW


async def test_the_whole_chunk_path_sends_the_whole_chunk(whole_chunks: HarmScanner,
                                                          reference: HarmScanner) -> None:
    be = whole_chunks.backend
    assert not be.route_sentences and be.details()["route_power"] is None
    before = dict(be.stats)
    for text in (ROUTED_INSULT, ROUTED_BENIGN):
        assert await decision(whole_chunks, text) is await decision(reference, text), text
    assert be.stats["routed"] == before["routed"]
    assert be.stats["settled"] == before["settled"]  # both went to the encoder whole


def test_escalation_reads_a_doubtful_routed_chunk_whole_too(whole_chunks: HarmScanner) -> None:
    """route_escalate: a routed chunk whose sentence scores at least the threshold
    (untempered) is also read whole as on the whole-chunk path, and each category keeps the
    max of both; below it, it keeps the routed (tempered) scores and the chunk is never
    embedded. The same chunk, thresholds either side of its sentence's score."""
    from guardrail.harm.embedded import EmbeddedBackend

    [want] = whole_chunks.backend.predict([ROUTED_INSULT])
    s = HarmScanner(_harm_config(route_escalate=0.5, sentence_check=True), None)
    s.load()
    be = s.backend
    assert isinstance(be, EmbeddedBackend) and be.details()["route_escalate"] == 0.5
    [alone] = be.heads.stage2([INSULT], be._embed([INSULT]))
    top = max(alone.values())
    assert 0.0 < top < 1.0

    def run(escalate: float | None) -> tuple[dict[str, float], int, int]:
        be.route_escalate = escalate
        before = dict(be.stats)
        [got] = be.predict([ROUTED_INSULT])
        return (got, be.stats["routed"] - before["routed"],
                be.stats["escalated"] - before["escalated"])

    routed, n, esc = run(None)
    assert (n, esc) == (1, 0)
    got, n, esc = run(min(1.0, top + 1e-3))
    assert (n, esc) == (1, 0) and got == pytest.approx(routed)
    assert ROUTED_INSULT not in be._cache  # only its sentence went to the encoder
    got, n, esc = run(max(0.0, top - 1e-3))
    assert (n, esc) == (1, 1)
    assert ROUTED_INSULT in be._cache  # read whole
    assert set(got) == set(want) == set(routed)
    for k in got:
        assert got[k] == pytest.approx(max(want[k], routed[k])), k
    assert any(want[k] > routed[k] + 1e-6 for k in got)  # the chunk read whole adds something


async def test_escalation_keeps_the_diluted_insult_routing_catches(
        checked: HarmScanner, whole_chunks: HarmScanner) -> None:
    """An escalated chunk keeps its routed scores beside the whole-chunk path's: read whole,
    the insult is diluted below every threshold (the whole-chunk path and the encoder-only
    reference let it through), but its sentence read alone still blocks. (Escalation is off in
    the shipped policy for its cost: models/harm/MODEL_CARD.md.)"""
    from guardrail.harm.embedded import EmbeddedBackend

    assert checked.config.route_escalate is None
    assert await decision(checked, ROUTED_INSULT) is Action.BLOCK
    s = HarmScanner(_harm_config(route_escalate=0.2, sentence_check=True), None)
    s.load()
    be = s.backend
    assert isinstance(be, EmbeddedBackend)
    before = dict(be.stats)
    be.predict([ROUTED_INSULT])
    assert be.stats["escalated"] - before["escalated"] == 1
    assert await decision(s, ROUTED_INSULT) is Action.BLOCK
    assert await decision(whole_chunks, ROUTED_INSULT) is Action.ALLOW
