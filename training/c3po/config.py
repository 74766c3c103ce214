"""Hyper-parameters of a C3PO (or GRPO-baseline) RL run, with the paper's and ring-tiny's presets.

`C3POConfig` is the single place where every coefficient and size of the RL loop lives. Its field
defaults are the values reported for Ring-lite (arXiv 2506.14731, see docs/c3po-spec.md §1–2);
`C3POConfig.ring_tiny()` is the preset sized for the character-level ring-tiny model on a 2-core CPU.
Every choice the paper leaves open is a named field here, documented in docs/c3po.md.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

Algorithm = Literal["c3po", "grpo"]
Underfill = Literal["carry", "accept"]
Overflow = Literal["carry", "drop"]
AdvantageStd = Literal["sample", "population"]
AuxLossScope = Literal["update", "micro_batch"]


@dataclass(frozen=True)
class C3POConfig:
    """Every knob of the RL loop. Defaults = the paper's Ring-lite values unless marked "ours".

    Loss (paper Eq. 1–6):
        eps_clip: PPO clip range ε (paper 0.2).
        kl_beta: coefficient β of the token-level k3 KL to the frozen reference (paper 1e-3).
        entropy_coef: α_ent of the entropy bonus (paper 5e-4).
        load_balance_coef: α_bal of the MoE load-balance loss (paper 1e-5).
        router_z_coef: α_z of the router z-loss (paper 1e-7).
        budget_tokens: Φ, the constant token budget of one optimiser update (paper 409,600).
    Rollout:
        prompts_per_step: L, prompts drawn per rollout batch (paper 512).
        group_size: K, responses sampled per prompt (paper 16).
        max_response_tokens: response length cap (paper 24,576 in stage 1, 32,768 in stage 2).
        temperature: rollout sampling temperature (paper 1.0).
    Optimiser (AdamW, constant lr after linear warm-up):
        lr: learning rate (paper 3e-6).
        warmup_steps: linear warm-up length (ours: the paper gives none).
        weight_decay, adam_betas: ours (verl's defaults), the paper gives none.
        grad_clip: global grad-norm clip (ours: 1.0, verl's default).
    Options where the paper is silent (ours, named):
        algorithm: "c3po" (token budget, loss / Φ) or "grpo" (no budget, loss / valid tokens).
        underfill: when the rollout buffer holds fewer than Φ tokens, "carry" samples further
            rollout batches (new prompts) until Φ is reached, so every update trains on exactly Φ
            tokens; "accept" trains on what there is and still divides by Φ (a smaller step).
        max_underfill_batches: safety cap on the extra rollout batches "carry" may draw per step.
        overflow: responses after the budget cut: "carry" keeps them (with their behaviour-policy
            log-probs) in the buffer for the next update, as verl's PPO mini-batches do; "drop"
            discards them so that every update trains on fresh rollouts. The remainder of the
            response that is cut is always discarded (the paper masks it).
        micro_batch_size: responses per forward/backward; gradients are summed over micro-batches
            and divided by the global Φ, so this changes memory, never the update (with
            aux_loss_scope="update"; tests/training/c3po/test_trainer.py checks it).
        adv_std: the group standard deviation in the advantage: "sample" divides the squared
            deviations by K − 1 (Bessel; verl and TRL), "population" by K. The paper does not say.
        aux_loss_scope: the MoE load balance B and router z-loss Z are statistics of a batch of
            tokens (every prompt and selected response token the update forwards), not sums over
            tokens. "update" makes them the statistics of the whole update: Z and the router
            probabilities P are averaged over micro-batches by their share of those tokens, and
            the expert fractions F are counted over the whole update in a routing pass without
            gradient before the backward passes (only when the update has several micro-batches
            and load_balance_coef > 0), so the gradient does not depend on micro_batch_size.
            "micro_batch" measures F in each micro-batch on its own (no extra pass, as Megatron
            does): cheaper, but then the split changes the gradient of the B term.
        head_chunk_tokens: the output head (logits, log-softmax, entropy) of the trainer's
            forwards runs this many response positions of a micro-batch at a time and recomputes
            each chunk in backward, so the [tokens, vocabulary] logits never exist whole (0 = one
            pass). Memory only: the update is the same up to float summation order.
    """

    algorithm: Algorithm = "c3po"
    eps_clip: float = 0.2
    kl_beta: float = 1e-3
    entropy_coef: float = 5e-4
    load_balance_coef: float = 1e-5
    router_z_coef: float = 1e-7
    budget_tokens: int = 409_600
    prompts_per_step: int = 512
    group_size: int = 16
    max_response_tokens: int = 24_576
    temperature: float = 1.0
    lr: float = 3e-6
    warmup_steps: int = 10
    weight_decay: float = 0.01
    adam_betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0
    underfill: Underfill = "carry"
    max_underfill_batches: int = 8
    overflow: Overflow = "carry"
    micro_batch_size: int = 8
    adv_eps: float = 1e-6
    adv_std: AdvantageStd = "sample"
    aux_loss_scope: AuxLossScope = "update"
    head_chunk_tokens: int = 1024

    def __post_init__(self) -> None:
        assert self.algorithm in ("c3po", "grpo"), self.algorithm
        assert self.underfill in ("carry", "accept"), self.underfill
        assert self.overflow in ("carry", "drop"), self.overflow
        assert self.adv_std in ("sample", "population"), self.adv_std
        assert self.aux_loss_scope in ("update", "micro_batch"), self.aux_loss_scope
        assert self.budget_tokens > 0 and self.group_size > 0 and self.prompts_per_step > 0
        assert self.micro_batch_size > 0 and self.max_response_tokens > 0
        assert self.head_chunk_tokens >= 0, self.head_chunk_tokens
        assert 0.0 < self.eps_clip < 1.0

    @classmethod
    def ring_lite(cls, **overrides: Any) -> C3POConfig:
        """The paper's Ring-lite stage-1 values (256 GPUs); stage 2 sets max_response_tokens=32768."""
        return dataclasses.replace(cls(), **overrides)

    @classmethod
    def ring_tiny(cls, **overrides: Any) -> C3POConfig:
        """Sized for the character-level ring-tiny on a 2-core CPU (ours, see docs/c3po.md).

        ring-tiny's responses are one token per character, ~100–300 on average and up to ~630 at
        level 4 (hence the 640 cap, inside its 1024-position context), so Φ = 4096 tokens is
        about 16 responses per update; lr is larger than the paper's because the model is four
        orders of magnitude smaller.
        """
        tiny = cls(
            budget_tokens=4096,
            prompts_per_step=8,
            group_size=8,
            max_response_tokens=640,
            temperature=1.0,
            lr=2e-5,
            warmup_steps=5,
            micro_batch_size=16,
        )
        return dataclasses.replace(tiny, **overrides)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view, recorded next to every checkpoint and run."""
        out = dataclasses.asdict(self)
        out["adam_betas"] = list(self.adam_betas)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> C3POConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        if "adam_betas" in kwargs:
            kwargs["adam_betas"] = tuple(kwargs["adam_betas"])
        return cls(**kwargs)
