"""Hints are cut from the model's own solution by the server and never state its answer."""

import pytest

from worker.inference.hints import (
    NO_FURTHER_HINT,
    NO_REASONING,
    HintStream,
    hint_text,
    solution_steps,
)

LONG = (
    "<think>15=10+5\n"
    "multiply 85*5 by columns:\n"
    "ones: 5*5+0=25, write 5 carry 2\n"
    "tens: 8*5+2=42, write 2 carry 4\n"
    "hundreds: write 4\n"
    "so 85*5=425\n"
    "so 85*10=850\n"
    "add 425+850: 1275\n"
    "so 85*15=1275</think>The answer is \\boxed{1275}."
)


def test_steps_are_paragraphs_when_there_are_blank_lines_else_lines():
    assert solution_steps("a\nb\n\nc") == ["a\nb", "c"]
    assert solution_steps("a\nb\n c \n") == ["a", "b", "c"]
    assert solution_steps("  \n") == []


def test_a_step_that_announces_the_next_is_joined_to_it():
    assert solution_steps("add 1+2 by columns:\nones: 3\ndone") == [
        "add 1+2 by columns:\nones: 3",
        "done",
    ]
    assert solution_steps("Set up:\n\nx = 2\n\ny = 3") == ["Set up:\n\nx = 2", "y = 3"]


def test_three_hints_cover_the_steps_before_the_answer_in_order():
    hints = [hint_text(LONG, hint_index=k, hints=3) for k in range(3)]
    # Six steps come before the first that states 1275 ("multiply 85*5 by columns:" and the
    # column it announces are one step); they are dealt 2, 2, 2, and no hint ends on a colon.
    assert hints == [
        "15=10+5\nmultiply 85*5 by columns:\nones: 5*5+0=25, write 5 carry 2",
        "tens: 8*5+2=42, write 2 carry 4\nhundreds: write 4",
        "so 85*5=425\nso 85*10=850",
    ]
    assert all("1275" not in hint and not hint.endswith(":") for hint in hints)


def test_a_number_inside_another_does_not_count_as_stating_the_answer():
    completion = "<think>try 125 first\n12 is too small\nthen 12\ndone</think>\\boxed{12}"
    # "125" does not state 12; "12 is too small" does, and ends the hints there.
    assert hint_text(completion, hint_index=0, hints=3) == "try 125 first"
    assert hint_text(completion, hint_index=1, hints=3) == NO_FURTHER_HINT


def test_the_last_step_is_never_a_hint_even_without_a_boxed_answer():
    completion = "<think>first\nsecond\nlast</think>"
    assert [hint_text(completion, hint_index=k, hints=3) for k in range(3)] == [
        "first",
        "second",
        NO_FURTHER_HINT,
    ]


def test_a_solution_without_reasoning_gives_a_clear_message():
    assert hint_text("<think></think>The answer is \\boxed{4}.", hint_index=0) == NO_REASONING


@pytest.mark.parametrize("hint_index", [3, 7])
def test_asking_past_the_last_hint_reveals_nothing_new(hint_index):
    assert hint_text(LONG, hint_index=hint_index, hints=3) == NO_FURTHER_HINT


def test_the_hint_stream_shows_nothing_until_it_concludes_then_one_answer_delta():
    stream = HintStream(7, hint_index=0, start_seq=4)
    for piece in (LONG[:30], LONG[30:]):
        stream.feed(piece)
        assert stream.pending_chars == 0 and stream.take_deltas() == []
    stream.conclude()
    (delta,) = stream.take_deltas()
    assert (delta.seq, delta.channel, delta.text) == (
        5,
        "answer",
        "15=10+5\nmultiply 85*5 by columns:\nones: 5*5+0=25, write 5 carry 2",
    )
    assert stream.take_deltas() == []
    assert stream.final_split() == ("", delta.text, True)
