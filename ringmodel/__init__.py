"""ringmodel: Ring-lite's architecture (BailingMoeForCausalLM) in PyTorch, and ring-tiny.

Importing the package registers ``bailing_moe`` with transformers' ``AutoConfig``,
``AutoModel`` and ``AutoModelForCausalLM``, so ``from_pretrained`` works on a checkpoint directory
without remote code; checkpoints also carry the source files (``auto_map``) for processes that
never import this package, vLLM included. No Django here (house rule for ML packages).
"""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from .chat import (
    REASONING_SUFFIX,
    ReasoningSplit,
    build_prompt_ids,
    build_prompt_messages,
    build_prompt_text,
    split_reasoning,
)
from .checkpoint import (
    CheckpointError,
    count_parameters,
    load_checkpoint,
    read_manifest,
    save_checkpoint,
    verify_checkpoint,
)
from .configuration_bailing_moe import RING_LITE_CONFIG, RING_TINY_CONFIG, BailingMoeConfig
from .generation import Sample, StaticKVCache, sample, sequence_logprobs
from .modeling_bailing_moe import BailingMoeForCausalLM, BailingMoeModel
from .moe import (
    BailingMoeSparseBlock,
    TopKRouter,
    expert_counts,
    load_balance_loss,
    router_z_loss,
)
from .tokenizer import (
    EOS_TOKEN,
    RING_CHAT_TEMPLATE,
    THINK_CLOSE,
    THINK_OPEN,
    build_tokenizer,
    save_tokenizer,
)

AutoConfig.register(BailingMoeConfig.model_type, BailingMoeConfig, exist_ok=True)
AutoModel.register(BailingMoeConfig, BailingMoeModel, exist_ok=True)
AutoModelForCausalLM.register(BailingMoeConfig, BailingMoeForCausalLM, exist_ok=True)

__all__ = [
    "EOS_TOKEN",
    "REASONING_SUFFIX",
    "RING_CHAT_TEMPLATE",
    "RING_LITE_CONFIG",
    "RING_TINY_CONFIG",
    "THINK_CLOSE",
    "THINK_OPEN",
    "BailingMoeConfig",
    "BailingMoeForCausalLM",
    "BailingMoeModel",
    "BailingMoeSparseBlock",
    "CheckpointError",
    "ReasoningSplit",
    "Sample",
    "StaticKVCache",
    "TopKRouter",
    "build_prompt_ids",
    "build_prompt_messages",
    "build_prompt_text",
    "build_tokenizer",
    "count_parameters",
    "expert_counts",
    "load_balance_loss",
    "load_checkpoint",
    "read_manifest",
    "router_z_loss",
    "sample",
    "save_checkpoint",
    "save_tokenizer",
    "sequence_logprobs",
    "split_reasoning",
    "verify_checkpoint",
]
