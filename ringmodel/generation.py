"""Batched sampling with the policy itself (RL rollouts, evaluation) and teacher-forced log-probs.

``sample`` runs every prompt in one left-padded batch with a preallocated KV cache, stops each
sequence at its eos, drops finished rows from the batch as they accumulate, and returns per-token
log-probabilities. On a CPU host this is the rollout engine whose numbers need no cross-check
(docs/c3po-spec.md §9); ``sequence_logprobs`` is the reference other engines (vLLM) are checked against.

Log-probabilities are the model's own, ``log_softmax(logits)`` at temperature 1 before top-p —
the same quantity vLLM reports by default (``logprobs_mode="raw_logprobs"``) and the one the
C3PO ratio π_θ/π_old needs at the paper's rollout temperature 1.0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .modeling_bailing_moe import BailingMoeForCausalLM


@dataclass(frozen=True)
class Sample:
    """One completion: generated ids (ending with eos when ``finished``) and their log-probs."""

    token_ids: list[int]
    logprobs: list[float]
    finished: bool


class StaticKVCache:
    """Preallocated keys/values [B, G, T_max, Hd] per layer, with transformers' Cache interface.

    ``update`` writes the new keys at the current length and returns views up to it; the length
    advances once the last layer has written, i.e. once per model step. Unlike ``DynamicCache`` it
    never re-concatenates, which matters when a step's attention is cheap and the cache is long.
    """

    def __init__(
        self,
        *,
        num_layers: int,
        batch_size: int,
        num_kv_heads: int,
        max_length: int,
        head_dim: int,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        shape = (batch_size, num_kv_heads, max_length, head_dim)
        self.keys = [torch.empty(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.values = [torch.empty(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.length = 0

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.length

    def update(
        self, key_BGSHd: torch.Tensor, value_BGSHd: torch.Tensor, layer_idx: int, *args: object
    ) -> tuple[torch.Tensor, torch.Tensor]:
        end = self.length + key_BGSHd.shape[2]
        assert end <= self.keys[layer_idx].shape[2], "StaticKVCache is full"
        self.keys[layer_idx][:, :, self.length : end] = key_BGSHd
        self.values[layer_idx][:, :, self.length : end] = value_BGSHd
        if layer_idx == len(self.keys) - 1:
            self.length = end
        return self.keys[layer_idx][:, :, :end], self.values[layer_idx][:, :, :end]

    def keep_rows(self, rows: torch.Tensor) -> None:
        """Keep only batch rows ``rows`` (a 1-D index tensor), in that order."""
        self.keys = [k.index_select(0, rows) for k in self.keys]
        self.values = [v.index_select(0, rows) for v in self.values]


def _next_tokens(
    logits_BV: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None
) -> torch.Tensor:
    """Greedy when ``temperature == 0``; otherwise temperature + nucleus (top-p) sampling."""
    if temperature == 0.0:
        return logits_BV.argmax(dim=-1)
    probs_BV = torch.softmax(logits_BV / temperature, dim=-1)
    if top_p < 1.0:
        sorted_BV, order_BV = probs_BV.sort(dim=-1, descending=True)
        # Drop a token when the tokens ranked above it already hold top_p of the mass.
        sorted_BV[(sorted_BV.cumsum(dim=-1) - sorted_BV) > top_p] = 0.0
        probs_BV = torch.zeros_like(probs_BV).scatter_(-1, order_BV, sorted_BV)
    return torch.multinomial(probs_BV, 1, generator=generator).squeeze(-1)


@torch.inference_mode()
def sample(
    model: BailingMoeForCausalLM,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    eos_token_id: int | None,
    generator: torch.Generator | None = None,
) -> list[Sample]:
    """Complete every prompt, all in one batch; ``Sample``s are in prompt order.

    A sequence stops at ``eos_token_id`` (included in ``token_ids``, ``finished=True``) or after
    ``max_new_tokens`` (``finished=False``); ``eos_token_id=None`` never stops early.
    ``temperature=0`` is greedy. ``generator`` makes sampling reproducible (it must live on the
    model's device).
    """
    assert prompts and all(len(p) > 0 for p in prompts), "every prompt needs at least one token"
    assert max_new_tokens > 0 and temperature >= 0.0 and 0.0 < top_p <= 1.0
    was_training = model.training
    model.eval()
    config = model.config
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    batch = len(prompts)
    prompt_len = max(len(p) for p in prompts)
    total_len = prompt_len + max_new_tokens
    assert total_len <= config.max_position_embeddings, (
        f"prompt ({prompt_len}) + max_new_tokens ({max_new_tokens}) exceeds "
        f"max_position_embeddings ({config.max_position_embeddings})"
    )

    # Padding ids are masked out; 0 is merely a valid embedding row.
    input_ids_BP = torch.zeros((batch, prompt_len), dtype=torch.long, device=device)
    attention_mask_BT = torch.zeros((batch, total_len), dtype=torch.long, device=device)
    for row, prompt in enumerate(prompts):
        input_ids_BP[row, prompt_len - len(prompt) :] = torch.tensor(prompt, device=device)
        attention_mask_BT[row, prompt_len - len(prompt) : prompt_len] = 1
    assert config.head_dim is not None  # the config's __post_init__ fills it from the widths
    cache = StaticKVCache(
        num_layers=config.num_hidden_layers,
        batch_size=batch,
        num_kv_heads=config.num_key_value_heads,
        max_length=total_len,
        head_dim=config.head_dim,
        dtype=dtype,
        device=device,
    )
    logits_BV = model(
        input_ids_BP,
        attention_mask=attention_mask_BT[:, :prompt_len],
        past_key_values=cache,
        use_cache=True,
        logits_to_keep=1,
    ).logits[:, -1]

    tokens: list[list[int]] = [[] for _ in prompts]
    logprobs: list[list[float]] = [[] for _ in prompts]
    finished = [False] * batch
    rows_B = torch.arange(batch, device=device)  # batch slot -> prompt index
    alive_B = torch.ones(batch, dtype=torch.bool, device=device)
    next_position_B = attention_mask_BT.sum(dim=-1)
    for step in range(max_new_tokens):
        # Finished rows still in the batch feed eos; nothing of theirs is recorded.
        token_B = _next_tokens(logits_BV, temperature, top_p, generator)
        if eos_token_id is not None:
            token_B = torch.where(alive_B, token_B, eos_token_id)
        token_logprob_B = F.log_softmax(logits_BV, dim=-1).gather(-1, token_B[:, None])[:, 0]
        for row, token, logprob, alive in zip(
            rows_B.tolist(),
            token_B.tolist(),
            token_logprob_B.tolist(),
            alive_B.tolist(),
            strict=True,
        ):
            if alive:
                tokens[row].append(token)
                logprobs[row].append(logprob)
                finished[row] = token == eos_token_id
        if eos_token_id is not None:
            alive_B = alive_B & (token_B != eos_token_id)
        if step == max_new_tokens - 1 or not bool(alive_B.any()):
            break
        # Drop finished rows once they are an eighth of the batch: each drop copies the cache,
        # so doing it at every single eos would cost more than computing the dead rows.
        if int((~alive_B).sum()) * 8 >= len(alive_B):
            keep = alive_B.nonzero()[:, 0]
            cache.keep_rows(keep)
            rows_B, token_B, attention_mask_BT, next_position_B, alive_B = (
                rows_B[keep],
                token_B[keep],
                attention_mask_BT[keep],
                next_position_B[keep],
                alive_B[keep],
            )
        attention_mask_BT[:, prompt_len + step] = 1
        logits_BV = model(
            token_B[:, None],
            attention_mask=attention_mask_BT[:, : prompt_len + step + 1],
            position_ids=next_position_B[:, None],
            past_key_values=cache,
            use_cache=True,
        ).logits[:, -1]
        next_position_B = next_position_B + 1
    model.train(was_training)
    return [
        Sample(token_ids=t, logprobs=lp, finished=f)
        for t, lp, f in zip(tokens, logprobs, finished, strict=True)
    ]


@torch.no_grad()
def sequence_logprobs(
    model: BailingMoeForCausalLM, prompt_ids: Sequence[int], completion_ids: Sequence[int]
) -> torch.Tensor:
    """Teacher-forced log p(completion_t | prompt, completion_<t), shape [len(completion_ids)], fp32."""
    assert prompt_ids and completion_ids
    device = next(model.parameters()).device
    ids_1T = torch.tensor([[*prompt_ids, *completion_ids]], dtype=torch.long, device=device)
    was_training = model.training
    model.eval()
    logits_TV = model(ids_1T, use_cache=False).logits[0]
    model.train(was_training)
    # Position t predicts token t+1: the completion is predicted from len(prompt)-1 onwards.
    predicting_CV = logits_TV[len(prompt_ids) - 1 : -1]
    targets_C = ids_1T[0, len(prompt_ids) :]
    return F.log_softmax(predicting_CV, dim=-1).gather(-1, targets_C[:, None])[:, 0]
