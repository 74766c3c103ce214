"""The rollout queue between sampling and the optimiser: budget cut, overflow carry/drop, state."""

import torch

from training.c3po.rollout_buffer import Rollout, RolloutBuffer


def rollout(group: int, length: int, tag: int = 0) -> Rollout:
    return Rollout(
        problem_id=f"p{group}",
        group_id=group,
        prompt_ids=[5, 6],
        response_ids=[tag] * length,
        reward=0.0,
        advantage=0.0,
        finished=True,
        old_logp_T=torch.zeros(length),
        ref_logp_T=torch.zeros(length),
        sampled_at_step=0,
    )


def filled(overflow_lengths=(3, 5, 4, 2)) -> RolloutBuffer:
    buffer = RolloutBuffer()
    buffer.add_groups([rollout(0, overflow_lengths[0], 0), rollout(0, overflow_lengths[1], 1)])
    buffer.add_groups([rollout(1, overflow_lengths[2], 2), rollout(1, overflow_lengths[3], 3)])
    return buffer


def test_take_cuts_at_phi_and_carries_the_responses_after_the_cut():
    buffer = filled()
    taken = buffer.take(6, "carry")
    assert [(t.rollout.response_ids[0], t.selected_tokens) for t in taken] == [(0, 3), (1, 3)]
    # The cut response's remainder is discarded; the untouched group-1 responses wait.
    assert [r.response_ids[0] for r in buffer.items] == [2, 3]
    assert buffer.num_tokens == 6


def test_take_with_overflow_drop_discards_the_rest():
    buffer = filled()
    taken = buffer.take(6, "drop")
    assert sum(t.selected_tokens for t in taken) == 6
    assert buffer.items == []


def test_take_everything_without_a_budget():
    buffer = filled()
    taken = buffer.take(None, "carry")
    assert [t.selected_tokens for t in taken] == [3, 5, 4, 2] and len(buffer) == 0


def test_short_buffer_is_taken_whole():
    buffer = filled()
    taken = buffer.take(100, "carry")
    assert sum(t.selected_tokens for t in taken) == 14 and len(buffer) == 0


def test_groups_must_be_contiguous():
    buffer = RolloutBuffer()
    try:
        buffer.add_groups([rollout(0, 1), rollout(1, 1), rollout(0, 1)])
    except AssertionError:
        return
    raise AssertionError("interleaved groups were accepted")


def test_state_round_trip():
    buffer = filled()
    restored = RolloutBuffer.from_state(buffer.to_state())
    assert [r.response_ids for r in restored.items] == [r.response_ids for r in buffer.items]
