"""How sure the model was of its own answer, from the log-probabilities of the tokens it wrote.

ring-tiny's mistakes are single slipped steps (a digit, a carry, a compared character) in an
otherwise certain, templated solution, so the signal is the weakest link: the probability of the
least likely token it wrote (`answer_confidence`, in [0, 1]). A solution is flagged as *unsure*
below `UNSURE_BELOW`, calibrated on held-out problems (docs/student-experience.md): the share of
wrong answers flagged and of right answers flagged are measured there. The log-probabilities
are those of the engine's unmodified distribution (vLLM's `logprobs=0`: the sampled token only),
so the score means the same at any sampling temperature. `ConfidenceTracker` accumulates a
streamed generation in constant memory.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

# Chosen on the held-out greedy evaluation of ring-tiny v2 (both wordings) and measured on a
# second held-out set sampled as the site samples: docs/student-experience.md.
UNSURE_BELOW = 0.9


def answer_confidence(logprobs: Iterable[float]) -> float | None:
    """exp(min log-probability) over the written tokens; None when there are none."""
    lowest = min(logprobs, default=None)
    return None if lowest is None else math.exp(lowest)


def sampled_logprobs(completion: Any) -> list[float]:
    """The sampled tokens' log-probabilities of a vLLM `CompletionOutput` (or its delta) asked
    for with `logprobs=0`; empty when the request asked for none."""
    return [
        float(entry[token_id].logprob)
        for token_id, entry in zip(completion.token_ids, completion.logprobs or (), strict=False)
        if token_id in entry
    ]


def is_unsure(confidence: float | None) -> bool:
    """True when a stored confidence is below the calibrated threshold (None is not a flag)."""
    return confidence is not None and confidence < UNSURE_BELOW


class ConfidenceTracker:
    """Running `answer_confidence` of a streamed generation: feed each chunk's log-probs."""

    def __init__(self) -> None:
        self._lowest: float | None = None

    def add(self, logprobs: Iterable[float]) -> None:
        for value in logprobs:
            if self._lowest is None or value < self._lowest:
                self._lowest = value

    def score(self) -> float | None:
        return None if self._lowest is None else math.exp(self._lowest)
