"""Mean per-token entropy of a policy on its own continuations of a fixed set of RL prompts.

docs/c3po-spec.md §3: more SFT epochs lower the policy's token entropy, and a lower starting entropy makes
RL collapse sooner, so C3PO starts from the SFT checkpoint whose entropy lies in a target band.
The quantity measured here is the one that matters for RL: the policy samples its own
continuations of the RL prompts (temperature 1.0, as rollouts do; greedy on request), and at each
generated position the full-vocabulary entropy H_t = -Σ_v p(v) log p(v) of the raw (temperature
1) next-token distribution is averaged over every generated token of every prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ringmodel.chat import build_prompt_ids
from ringmodel.generation import sample
from training.problems import DOMAINS, Domain, training_sample

# The fixed RL prompt set: the same seed everywhere, so entropies of different checkpoints (and
# runs) are comparable. Drawn from the training side of the split, as RL prompts are.
RL_PROMPT_SEED = 2506


def rl_prompts(n: int = 64, *, seed: int = RL_PROMPT_SEED, domains: Sequence[Domain] = DOMAINS):
    """Statements of the fixed RL prompt set (distinct training problems, all levels)."""
    return [p.statement for p in training_sample(n, seed, domains=domains)]


@dataclass(frozen=True)
class EntropyReport:
    mean_entropy: float
    num_tokens: int
    num_prompts: int
    finished_fraction: float
    mean_response_tokens: float

    def as_dict(self) -> dict[str, float | int]:
        return {
            "mean_entropy": self.mean_entropy,
            "num_tokens": self.num_tokens,
            "num_prompts": self.num_prompts,
            "finished_fraction": self.finished_fraction,
            "mean_response_tokens": self.mean_response_tokens,
        }


@torch.no_grad()
def _entropy_sum(
    model: Any, prompt_ids: Sequence[Sequence[int]], completions: Sequence[Sequence[int]], pad: int
) -> tuple[float, int]:
    """Σ of H_t over the completion positions of a batch, and the number of positions."""
    rows = [(list(p), list(c)) for p, c in zip(prompt_ids, completions, strict=True) if c]
    if not rows:
        return 0.0, 0
    width = max(len(p) + len(c) for p, c in rows)
    input_ids_BT = torch.full((len(rows), width), pad, dtype=torch.long)
    target_BT = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, (p, c) in enumerate(rows):
        input_ids_BT[i, : len(p) + len(c)] = torch.tensor(p + c)
        # Position t predicts token t+1: completion tokens are predicted from len(p)-1 on.
        target_BT[i, len(p) - 1 : len(p) + len(c) - 1] = True
    device = next(model.parameters()).device
    # Right padding needs no mask: causal attention keeps real tokens off the padding after them.
    logits_BTV = model(input_ids_BT.to(device), use_cache=False).logits.float()
    logp_BTV = F.log_softmax(logits_BTV, dim=-1)
    entropy_BT = -(logp_BTV.exp() * logp_BTV).sum(dim=-1)
    selected = entropy_BT[target_BT.to(device)]
    return float(selected.sum()), int(selected.numel())


def mean_token_entropy(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 512,
    temperature: float = 1.0,
    batch_size: int = 32,
    seed: int = 0,
) -> EntropyReport:
    """Mean per-token entropy of `model`'s own continuations of `prompts` (statements).

    `temperature` 1.0 samples as RL rollouts do; 0.0 measures on greedy continuations. The
    entropy is always that of the untempered distribution. Deterministic for a seed.
    """
    assert prompts, "need at least one prompt"
    was_training = model.training
    model.eval()
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    total_entropy, total_tokens, finished, response_tokens = 0.0, 0, 0, 0
    for start in range(0, len(prompts), batch_size):
        batch = prompts[start : start + batch_size]
        prompt_ids = [build_prompt_ids(tokenizer, text) for text in batch]
        samples = sample(
            model,
            prompt_ids,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            eos_token_id=tokenizer.eos_token_id,
            generator=generator,
        )
        completions = [s.token_ids for s in samples]
        entropy, count = _entropy_sum(model, prompt_ids, completions, tokenizer.eos_token_id)
        total_entropy += entropy
        total_tokens += count
        finished += sum(s.finished for s in samples)
        response_tokens += sum(len(s.token_ids) for s in samples)
    model.train(was_training)
    return EntropyReport(
        mean_entropy=total_entropy / max(total_tokens, 1),
        num_tokens=total_tokens,
        num_prompts=len(prompts),
        finished_fraction=finished / len(prompts),
        mean_response_tokens=response_tokens / len(prompts),
    )
