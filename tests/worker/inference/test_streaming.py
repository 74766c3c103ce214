"""GenerationStream: coalesced deltas that rebuild exactly ringmodel's reasoning/answer split."""

import random

import pytest

from ringmodel.chat import split_reasoning
from worker.inference.streaming import GenerationStream

COMPLETIONS = [
    "<think>First add the tens: 40 + 30 = 70.\nThen the ones: 7 + 8 = 15.</think>"
    "The sum is \\boxed{85}.",
    "<think>no closing tag, the model ran out of tokens </thi",
    "no think tag at all </think> answer only after this",
    "<think></think>\\boxed{5}",
    "<thi",
]


def _replay(stream: GenerationStream, deltas) -> tuple[str, str]:
    reasoning = "".join(d.text for d in deltas if d.channel == "reasoning")
    answer = "".join(d.text for d in deltas if d.channel == "answer")
    return reasoning, answer


@pytest.mark.parametrize("completion", COMPLETIONS)
@pytest.mark.parametrize("seed", range(5))
def test_deltas_rebuild_the_split_of_the_whole_text(completion, seed):
    rng = random.Random(seed)
    stream = GenerationStream(7)
    deltas = []
    position = 0
    while position < len(completion):
        size = rng.randint(1, 6)
        stream.feed(completion[position : position + size])
        position += size
        if rng.random() < 0.5:  # the worker flushes on a timer, not after every token
            deltas.extend(stream.take_deltas())
    deltas.extend(stream.take_deltas())

    expected = split_reasoning(completion)
    assert _replay(stream, deltas) == (expected.reasoning, expected.answer)
    assert stream.final_split()[:2] == (expected.reasoning, expected.answer)
    assert [d.seq for d in deltas] == list(range(1, len(deltas) + 1))
    assert all(d.text for d in deltas)
    # A partial closing tag is never shown as reasoning and then taken back.
    assert not any("</th" in d.text for d in deltas if d.channel == "reasoning")


def test_one_flush_yields_at_most_one_delta_per_channel():
    stream = GenerationStream(1)
    stream.feed("<think>a few steps</think>the answer")
    deltas = stream.take_deltas()
    assert [(d.seq, d.channel, d.text) for d in deltas] == [
        (1, "reasoning", "a few steps"),
        (2, "answer", "the answer"),
    ]
    assert stream.take_deltas() == []
    assert stream.pending_chars == 0


def test_numbering_continues_after_a_restart():
    stream = GenerationStream(1, start_seq=41)
    stream.feed("<think>again")
    (delta,) = stream.take_deltas()
    assert delta.seq == 42


def test_nothing_visible_is_not_sent_and_not_counted_as_sent():
    stream = GenerationStream(1)
    stream.feed("<think>")
    assert stream.take_deltas() == []
    assert not stream.has_sent
    stream.feed("x")
    assert [d.text for d in stream.take_deltas()] == ["x"]
    assert stream.has_sent
