"""The queue of scored rollouts between sampling and the optimiser, with C3PO's budget selection.

Rollouts enter as complete groups (all K responses of a prompt) whose advantages were already
computed; each optimiser update then takes responses in order until Φ tokens are selected
(`core_algos.token_budget_mask`). What happens to responses past the cut (`overflow`) and what the
trainer does when the queue holds fewer than Φ tokens (`underfill`) are the two policies the paper
leaves open; they are named options of `C3POConfig` and decided here and in the trainer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from training.c3po.config import Overflow
from training.c3po.core_algos import token_budget_mask


@dataclass
class Rollout:
    """One sampled response, scored, with the log-probs the loss needs.

    old_logp_T / ref_logp_T: log-probs of the response tokens under the behaviour policy that
    sampled it (teacher-forced, recomputed after sampling) and under the frozen reference policy;
    in a data-parallel run only the owner rank fills them (until a checkpoint gathers them).
    """

    problem_id: str
    group_id: int
    prompt_ids: list[int]
    response_ids: list[int]
    reward: float
    advantage: float
    finished: bool
    old_logp_T: torch.Tensor
    ref_logp_T: torch.Tensor
    sampled_at_step: int
    completion_text: str = ""
    # The data-parallel rank that sampled it, and alone computes its log-probs and trains on it
    # (training/c3po/distributed.py); 0 in a single process.
    owner_rank: int = 0

    @property
    def num_tokens(self) -> int:
        return len(self.response_ids)

    def to_state(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Rollout:
        return cls(**state)


@dataclass
class SelectedRollout:
    """A rollout taken into one optimiser update; only its first `selected_tokens` tokens train."""

    rollout: Rollout
    selected_tokens: int


@dataclass
class RolloutBuffer:
    """FIFO of rollouts in group order. `take` removes what one optimiser update consumes."""

    items: list[Rollout] = field(default_factory=list)

    @property
    def num_tokens(self) -> int:
        return sum(r.num_tokens for r in self.items)

    def __len__(self) -> int:
        return len(self.items)

    def add_groups(self, rollouts: list[Rollout]) -> None:
        """Append complete groups; responses of one group must be contiguous (batch order)."""
        seen: list[int] = []
        for r in rollouts:
            if not seen or seen[-1] != r.group_id:
                assert r.group_id not in seen, "responses of a group must be contiguous"
                seen.append(r.group_id)
        self.items.extend(rollouts)

    def take(self, budget_tokens: int | None, overflow: Overflow) -> list[SelectedRollout]:
        """Remove and return the rollouts of one optimiser update.

        budget_tokens=None (GRPO baseline) takes everything. Otherwise responses are selected
        greedily until Φ tokens; the crossing response is cut (its remainder is discarded, as the
        paper masks it); later responses stay queued when overflow="carry" and are discarded when
        overflow="drop".
        """
        if budget_tokens is None:
            taken = [SelectedRollout(r, r.num_tokens) for r in self.items]
            self.items = []
            return taken
        if not self.items:
            return []
        width = max(1, max(r.num_tokens for r in self.items))
        lengths_B = torch.tensor([r.num_tokens for r in self.items])
        mask_BT = torch.arange(width).unsqueeze(0) < lengths_B.unsqueeze(1)
        selection = token_budget_mask(mask_BT, budget_tokens)
        per_response_B = selection.selection_mask_BT.sum(dim=1).to(torch.int64).tolist()
        consumed = selection.consumed_responses
        taken = [
            SelectedRollout(r, n)
            for r, n in zip(self.items[:consumed], per_response_B[:consumed], strict=True)
            if n > 0
        ]
        self.items = self.items[consumed:] if overflow == "carry" else []
        return taken

    def to_state(self) -> list[dict[str, Any]]:
        return [r.to_state() for r in self.items]

    @classmethod
    def from_state(cls, state: list[dict[str, Any]]) -> RolloutBuffer:
        return cls([Rollout.from_state(s) for s in state])
