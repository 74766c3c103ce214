"""BailingMoeForCausalLM — Ring-lite's decoder in plain PyTorch, weight-compatible with its checkpoints.

A pre-norm transformer: RMSNorm, GQA attention with one fused ``query_key_value`` projection and a
``dense`` output projection, NeoX-style RoPE (base 600,000), SwiGLU MLPs — dense for the first
``first_k_dense_replace`` layers, mixture-of-experts (``ringmodel/moe.py``) afterwards — and a
``norm_head`` output layer. Parameter names are exactly those of inclusionAI/Ring-lite and of
vLLM's ``bailing_moe`` weight loader, so a directory this package writes loads in both.

The model runs incremental decoding with any object that has transformers' cache interface
(``update(k, v, layer_idx) -> (k_all, v_all)`` and ``get_seq_length()``): a ``DynamicCache`` when
``generate`` drives it, the preallocated cache in ``ringmodel/generation.py`` for batched rollouts.
Batches may be left-padded: pass the 2-D ``attention_mask`` covering cached plus new tokens.

This file is copied into every checkpoint as remote code; it imports only torch, transformers and
its two sibling files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache, DynamicCache
from transformers.modeling_outputs import MoeCausalLMOutputWithPast, MoeModelOutputWithPast

from .configuration_bailing_moe import BailingMoeConfig
from .moe import EXPERT_BACKENDS, BailingMoeSparseBlock, SwiGLUFeedForward, TopKRouter

# Shapes: B batch, S new tokens, P cached tokens, K = P + S keys, D hidden, H query heads,
# G key/value heads, Hd head dim, V vocabulary.


class BailingMoeRMSNorm(nn.Module):
    """RMSNorm computed in fp32, scaled by a learned weight (Ring-lite's exact order of operations)."""

    def __init__(self, hidden_size: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        input_dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return self.weight * x.to(input_dtype)


def rotary_cos_sin(
    position_ids_BS: torch.Tensor, head_dim: int, base: float, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """NeoX-style RoPE tables for the given positions: ``(cos_BSHd, sin_BSHd)``.

    Computed per call (no buffers), so a model built on the meta device by ``from_pretrained`` has
    nothing left to initialise; at these sizes it costs microseconds.
    """
    inv_freq = 1.0 / (
        base
        ** (
            torch.arange(0, head_dim, 2, dtype=torch.float, device=position_ids_BS.device)
            / head_dim
        )
    )
    freqs_BSh = position_ids_BS.float().unsqueeze(-1) * inv_freq
    emb_BSHd = torch.cat((freqs_BSh, freqs_BSh), dim=-1)
    return emb_BSHd.cos().to(dtype), emb_BSHd.sin().to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rotary(
    x_BhSHd: torch.Tensor, cos_BSHd: torch.Tensor, sin_BSHd: torch.Tensor
) -> torch.Tensor:
    cos, sin = cos_BSHd.unsqueeze(1), sin_BSHd.unsqueeze(1)  # broadcast over heads
    return x_BhSHd * cos + rotate_half(x_BhSHd) * sin


def build_attention_mask(
    attention_mask_BK: torch.Tensor | None, num_new: int, num_past: int, device: torch.device
) -> torch.Tensor | None:
    """Boolean [B, 1, S, K] mask (True = may attend), or None when plain causal attention suffices.

    Each query may also attend to its own key even when it is padding: a left-padding query
    would otherwise see no key at all and its softmax would be NaN. Real tokens never see padding.
    """
    has_padding = attention_mask_BK is not None and not bool(attention_mask_BK.all())
    if not has_padding and (num_past == 0 or num_new == 1):
        return None
    num_keys = num_past + num_new
    query_pos_S1 = torch.arange(num_past, num_keys, device=device).unsqueeze(-1)
    key_pos_1K = torch.arange(num_keys, device=device).unsqueeze(0)
    allowed_SK = key_pos_1K <= query_pos_S1
    if not has_padding:
        return allowed_SK[None, None]
    assert attention_mask_BK.shape[-1] == num_keys, (
        f"attention_mask covers {attention_mask_BK.shape[-1]} positions, expected cached + new = "
        f"{num_keys}"
    )
    key_valid_B11K = attention_mask_BK.bool()[:, None, None, :]
    return (allowed_SK & key_valid_B11K) | (key_pos_1K == query_pos_S1)


class BailingMoeAttention(nn.Module):
    """Grouped-query attention with Ring-lite's fused QKV projection."""

    def __init__(self, config: BailingMoeConfig, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = config.num_key_value_heads
        self.head_dim = config.head_dim
        self.dropout = config.attention_dropout
        # vLLM gives the QKV projection a bias if either flag is set; so do we, to stay loadable.
        self.query_key_value = nn.Linear(
            config.hidden_size,
            (self.num_heads + 2 * self.num_kv_heads) * self.head_dim,
            bias=config.use_qkv_bias or config.use_bias,
        )
        self.dense = nn.Linear(
            self.num_heads * self.head_dim, config.hidden_size, bias=config.use_bias
        )

    def forward(
        self,
        x_BSD: torch.Tensor,
        cos_sin: tuple[torch.Tensor, torch.Tensor],
        mask_B1SK: torch.Tensor | None,
        cache: Cache | None,
    ) -> torch.Tensor:
        batch, seq, _ = x_BSD.shape
        qkv_BSXHd = self.query_key_value(x_BSD).view(
            batch, seq, self.num_heads + 2 * self.num_kv_heads, self.head_dim
        )
        q_BSHHd, k_BSGHd, v_BSGHd = qkv_BSXHd.split(
            [self.num_heads, self.num_kv_heads, self.num_kv_heads], dim=2
        )
        q_BHSHd = apply_rotary(q_BSHHd.transpose(1, 2), *cos_sin)
        k_BGSHd = apply_rotary(k_BSGHd.transpose(1, 2), *cos_sin)
        v_BGSHd = v_BSGHd.transpose(1, 2)
        if cache is not None:
            k_BGSHd, v_BGSHd = cache.update(k_BGSHd, v_BGSHd, self.layer_idx)
        num_keys = k_BGSHd.shape[2]
        out_BHSHd = F.scaled_dot_product_attention(
            q_BHSHd,
            k_BGSHd,
            v_BGSHd,
            attn_mask=mask_B1SK,
            dropout_p=self.dropout if self.training else 0.0,
            # SDPA's is_causal aligns top-left, right only when queries and keys coincide.
            is_causal=mask_B1SK is None and seq > 1 and num_keys == seq,
            enable_gqa=self.num_kv_heads != self.num_heads,
        )
        out_BSX = out_BHSHd.transpose(1, 2).reshape(batch, seq, self.num_heads * self.head_dim)
        return self.dense(out_BSX)


class BailingMoeDecoderLayer(nn.Module):
    """Pre-norm block: x + attention(norm(x)), then x + mlp(norm(x)); MLP dense or MoE by index."""

    def __init__(self, config: BailingMoeConfig, layer_idx: int) -> None:
        super().__init__()
        self.input_layernorm = BailingMoeRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.attention = BailingMoeAttention(config, layer_idx)
        self.post_attention_layernorm = BailingMoeRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.is_moe = layer_idx >= config.first_k_dense_replace
        if self.is_moe:
            self.mlp = BailingMoeSparseBlock(
                hidden_size=config.hidden_size,
                moe_intermediate_size=config.moe_intermediate_size,
                num_experts=config.num_experts,
                num_experts_per_tok=config.num_experts_per_tok,
                num_shared_experts=config.num_shared_experts,
                norm_topk_prob=config.norm_topk_prob,
                bias=config.use_bias,
            )
        else:
            self.mlp = SwiGLUFeedForward(
                config.hidden_size, config.intermediate_size, bias=config.use_bias
            )

    def forward(
        self,
        x_BSD: torch.Tensor,
        cos_sin: tuple[torch.Tensor, torch.Tensor],
        mask_B1SK: torch.Tensor | None,
        cache: Cache | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        x_BSD = x_BSD + self.attention(self.input_layernorm(x_BSD), cos_sin, mask_B1SK, cache)
        h_BSD = self.post_attention_layernorm(x_BSD)
        if self.is_moe:
            mlp_BSD, router_logits_BSE = self.mlp(h_BSD)
            return x_BSD + mlp_BSD, router_logits_BSE
        return x_BSD + self.mlp(h_BSD), None


class BailingMoePreTrainedModel(PreTrainedModel):
    config_class = BailingMoeConfig
    config: BailingMoeConfig
    base_model_prefix = "model"
    _no_split_modules = ["BailingMoeDecoderLayer"]
    _skip_keys_device_placement = ["past_key_values"]
    _supports_sdpa = True

    def set_expert_backend(self, backend: str) -> None:
        """How every MoE layer computes its routed experts (``ringmodel.moe.EXPERT_BACKENDS``):
        ``"auto"`` (the default: the fastest on the device), ``"loop"``, ``"grouped"`` or
        ``"bmm"``. The results are the same up to floating-point summation order."""
        if backend not in EXPERT_BACKENDS:
            raise ValueError(f"unknown expert backend {backend!r} (one of {EXPERT_BACKENDS})")
        for module in self.modules():
            if isinstance(module, BailingMoeSparseBlock):
                module.expert_backend = backend

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, TopKRouter):
            init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)


class BailingMoeModel(BailingMoePreTrainedModel):
    """Embeddings, decoder layers and the final norm (checkpoint prefix ``model.``)."""

    def __init__(self, config: BailingMoeConfig) -> None:
        super().__init__(config)
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.embedding_dropout = nn.Dropout(config.embedding_dropout)
        self.layers = nn.ModuleList(
            BailingMoeDecoderLayer(config, i) for i in range(config.num_hidden_layers)
        )
        self.norm = BailingMoeRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.word_embeddings = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_router_logits: bool | None = None,
        **kwargs: Any,
    ) -> MoeModelOutputWithPast:
        assert (input_ids is None) != (inputs_embeds is None), "pass input_ids or inputs_embeds"
        if use_cache is None:
            # A training forward has no use for a cache; building one would only cost memory.
            use_cache = self.config.use_cache and not self.training
        if output_router_logits is None:
            output_router_logits = self.config.output_router_logits
        if use_cache and past_key_values is None:
            past_key_values = DynamicCache(config=self.config)
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        batch, seq, _ = inputs_embeds.shape
        num_past = past_key_values.get_seq_length() if past_key_values is not None else 0

        if position_ids is None:
            if attention_mask is not None:
                # Left padding: a row's first real token sits at position 0.
                position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, -seq:]
            else:
                position_ids = torch.arange(
                    num_past, num_past + seq, device=inputs_embeds.device
                ).expand(batch, seq)
        cos_sin = rotary_cos_sin(
            position_ids, self.config.head_dim, self.config.rope_base, inputs_embeds.dtype
        )
        mask_B1SK = build_attention_mask(attention_mask, seq, num_past, inputs_embeds.device)

        x_BSD = self.embedding_dropout(inputs_embeds)
        router_logits = []
        for layer in self.layers:
            x_BSD, layer_router_logits = layer(x_BSD, cos_sin, mask_B1SK, past_key_values)
            if output_router_logits and layer_router_logits is not None:
                router_logits.append(layer_router_logits)
        return MoeModelOutputWithPast(
            last_hidden_state=self.norm(x_BSD),
            past_key_values=past_key_values if use_cache else None,
            router_logits=tuple(router_logits) if output_router_logits else None,
        )


@dataclass
class BailingMoeCausalLMOutput(MoeCausalLMOutputWithPast):
    """transformers' MoE output, plus the per-token log-probabilities and entropies of the
    ``token_positions`` / ``token_ids`` a forward was asked to score (fp32 [B, T]; then
    ``logits`` is None: the full logits were never materialised)."""

    token_logprobs: torch.Tensor | None = None
    token_entropy: torch.Tensor | None = None


def _score_chunk(
    hidden_BCD: torch.Tensor,
    weight_VD: torch.Tensor,
    ids_BC: torch.Tensor,
    temperature: float,
    with_entropy: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log p(id) and (``with_entropy``) the full-vocabulary entropy at C positions, in fp32."""
    logits_BCV = F.linear(hidden_BCD, weight_VD).float()
    if temperature != 1.0:
        logits_BCV = logits_BCV / temperature
    logp_BCV = F.log_softmax(logits_BCV, dim=-1)
    logp_BC = logp_BCV.gather(-1, ids_BC.unsqueeze(-1)).squeeze(-1)
    if not with_entropy:
        # The log-prob-only passes (reference, π_old) skip the exp, product and sum over the
        # vocabulary; the log-probs are the very same ops on the same values as with entropy.
        return logp_BC, None
    entropy_BC = -(logp_BCV.exp() * logp_BCV).sum(-1)
    return logp_BC, entropy_BC


def score_tokens(
    hidden_BTD: torch.Tensor,
    weight_VD: torch.Tensor,
    ids_BT: torch.Tensor,
    *,
    temperature: float = 1.0,
    chunk_tokens: int = 0,
    with_entropy: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(log p, entropy) of each of T positions, [B, T] fp32, through the output head; the entropy
    is None when ``with_entropy`` is False (it is not computed at all).

    ``chunk_tokens`` > 0 computes the head ``chunk_tokens`` positions (over the whole batch) at a
    time and recomputes each chunk in backward (activation checkpointing), so at most one
    chunk's [B, C, V] logits and softmax exist at once instead of [B, T, V]: with Ring-lite's
    157k vocabulary and 24k-token responses the full fp32 logits alone are ~15 GB per sequence.
    The results are those of one pass up to floating-point summation order.
    """
    width = ids_BT.shape[1]
    if chunk_tokens <= 0 or width == 0:
        return _score_chunk(hidden_BTD, weight_VD, ids_BT, temperature, with_entropy)
    step = max(1, chunk_tokens // max(1, ids_BT.shape[0]))
    logps: list[torch.Tensor] = []
    entropies: list[torch.Tensor] = []
    for start in range(0, width, step):
        part = slice(start, start + step)
        logp_BC, entropy_BC = checkpoint(
            _score_chunk,
            hidden_BTD[:, part],
            weight_VD,
            ids_BT[:, part],
            temperature,
            with_entropy,
            use_reentrant=False,
        )
        logps.append(logp_BC)
        if entropy_BC is not None:
            entropies.append(entropy_BC)
    return torch.cat(logps, dim=1), torch.cat(entropies, dim=1) if with_entropy else None


class BailingMoeForCausalLM(BailingMoePreTrainedModel, GenerationMixin):
    """Ring-lite's causal LM: ``BailingMoeModel`` plus a (column-normalised) ``lm_head``."""

    _tied_weights_keys = {"lm_head.weight": "model.word_embeddings.weight"}

    def __init__(self, config: BailingMoeConfig) -> None:
        super().__init__(config)
        self.model = BailingMoeModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.word_embeddings = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, new_embeddings: nn.Linear) -> None:
        self.lm_head = new_embeddings

    def output_weight(self) -> torch.Tensor:
        """The [V, D] matrix the logits are computed with.

        ``norm_head``: every column (one hidden channel across the vocabulary) is scaled to unit L2
        norm — ``F.normalize(W, dim=0, eps=1e-7)``, exactly what vLLM applies at load time. As in
        Ring-lite's training code the norm is a constant for the backward pass (detached).
        Checkpoints store the raw, unnormalised weight, as Ring-lite's do.
        """
        weight = self.lm_head.weight
        if not self.config.norm_head:
            return weight
        norm_1D = torch.linalg.vector_norm(weight.float(), dim=0, keepdim=True).clamp_min(1e-7)
        return (weight.float() / norm_1D.detach()).to(weight.dtype)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_router_logits: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        token_positions: torch.LongTensor | None = None,
        token_ids: torch.LongTensor | None = None,
        token_temperature: float = 1.0,
        token_chunk: int = 0,
        output_token_entropy: bool = True,
        **kwargs: Any,
    ) -> BailingMoeCausalLMOutput:
        """Logits are fp32 [B, S, V] (or the last ``logits_to_keep`` positions).

        ``labels`` (-100 = ignore) gives the mean next-token cross-entropy in ``loss``.
        ``output_router_logits=True`` returns one fp32 [B, S, E] tensor per MoE layer.
        ``token_positions`` / ``token_ids`` [B, T] (the RL trainer's teacher-forced responses):
        instead of logits, ``token_logprobs`` and ``token_entropy`` of ``token_ids[b, t]`` at
        sequence position ``token_positions[b, t]``, logits divided by ``token_temperature``,
        the head computed ``token_chunk`` positions at a time (``score_tokens``). Inside the
        forward, so a sharded root's head weight is gathered as for any forward.
        ``output_token_entropy=False`` skips the entropy (``token_entropy`` is None): the passes
        that only need log-probs (the reference's and π_old's) do not pay for it.
        """
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            output_router_logits=output_router_logits,
        )
        hidden_BSD = outputs.last_hidden_state
        if token_positions is not None:
            assert token_ids is not None, "token_positions needs token_ids"
            index_BTD = token_positions.unsqueeze(-1).expand(-1, -1, hidden_BSD.shape[-1])
            logp_BT, entropy_BT = score_tokens(
                hidden_BSD.gather(1, index_BTD),
                self.output_weight(),
                token_ids,
                temperature=token_temperature,
                chunk_tokens=token_chunk,
                with_entropy=output_token_entropy,
            )
            return BailingMoeCausalLMOutput(
                past_key_values=outputs.past_key_values,
                router_logits=outputs.router_logits,
                token_logprobs=logp_BT,
                token_entropy=entropy_BT,
            )
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits_BSV = F.linear(hidden_BSD[:, keep, :], self.output_weight()).float()

        loss = None
        if labels is not None:
            loss = F.cross_entropy(
                logits_BSV[:, :-1, :].reshape(-1, logits_BSV.shape[-1]),
                labels[:, 1:].reshape(-1).to(logits_BSV.device),
                ignore_index=-100,
            )
        return BailingMoeCausalLMOutput(
            loss=loss,
            logits=logits_BSV,
            past_key_values=outputs.past_key_values,
            router_logits=outputs.router_logits,
        )


__all__ = [
    "BailingMoeCausalLMOutput",
    "BailingMoeForCausalLM",
    "BailingMoeModel",
    "BailingMoePreTrainedModel",
]
