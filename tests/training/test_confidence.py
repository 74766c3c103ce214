"""The answer's confidence: the least likely written token, streamed or all at once, and the
sampled log-probabilities read out of vLLM's output objects."""

from __future__ import annotations

import math
from types import SimpleNamespace

from training.confidence import (
    UNSURE_BELOW,
    ConfidenceTracker,
    answer_confidence,
    is_unsure,
    sampled_logprobs,
)


def test_confidence_is_the_least_likely_token():
    assert math.isclose(answer_confidence([-0.01, math.log(0.3), -0.2]), 0.3)
    assert answer_confidence([]) is None


def test_tracker_streamed_in_chunks_equals_the_whole():
    values = [-0.001, -0.5, -0.02, -1.7, -0.3]
    tracker = ConfidenceTracker()
    assert tracker.score() is None
    for chunk in ([values[0]], values[1:3], [], values[3:]):
        tracker.add(chunk)
    assert tracker.score() == answer_confidence(values)


def test_unsure_below_the_calibrated_threshold_only():
    assert is_unsure(UNSURE_BELOW / 2)
    assert not is_unsure(min(1.0, UNSURE_BELOW * 1.5))
    assert not is_unsure(None)


def test_sampled_logprobs_from_a_vllm_like_output():
    def entry(token_id: int, logprob: float) -> dict:
        return {token_id: SimpleNamespace(logprob=logprob)}

    output = SimpleNamespace(token_ids=[5, 9], logprobs=[entry(5, -0.1), entry(9, -2.0)])
    assert sampled_logprobs(output) == [-0.1, -2.0]
    assert sampled_logprobs(SimpleNamespace(token_ids=[5], logprobs=None)) == []
