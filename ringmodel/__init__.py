"""ringmodel: Ring-lite's architecture (BailingMoeForCausalLM) in PyTorch, and ring-tiny.

The package is lazy: a name is imported from its submodule the first time it is used, so
`ringmodel.tokenizer` and `ringmodel.chat` (what the web side needs to build prompts) load without
torch. The first model-side name taken from the package (configuration, modeling, MoE,
generation, checkpoints) registers ``bailing_moe`` with transformers' ``AutoConfig``,
``AutoModel`` and ``AutoModelForCausalLM``, so ``from_pretrained`` works on a checkpoint directory
without remote code; checkpoints also carry the source files (``auto_map``) for processes that
never import this package, vLLM included. No Django here (house rule for ML packages).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name -> the submodule that defines it.
_EXPORTS: dict[str, str] = {
    "REASONING_SUFFIX": "chat",
    "ReasoningSplit": "chat",
    "build_prompt_ids": "chat",
    "build_prompt_messages": "chat",
    "build_prompt_text": "chat",
    "split_reasoning": "chat",
    "CheckpointError": "checkpoint",
    "count_parameters": "checkpoint",
    "load_checkpoint": "checkpoint",
    "read_manifest": "checkpoint",
    "save_checkpoint": "checkpoint",
    "verify_checkpoint": "checkpoint",
    "RING_LITE_CONFIG": "configuration_bailing_moe",
    "RING_TINY_CONFIG": "configuration_bailing_moe",
    "BailingMoeConfig": "configuration_bailing_moe",
    "Sample": "generation",
    "StaticKVCache": "generation",
    "sample": "generation",
    "sequence_logprobs": "generation",
    "BailingMoeForCausalLM": "modeling_bailing_moe",
    "BailingMoeModel": "modeling_bailing_moe",
    "BailingMoeSparseBlock": "moe",
    "TopKRouter": "moe",
    "expert_counts": "moe",
    "load_balance_loss": "moe",
    "router_z_loss": "moe",
    "EOS_TOKEN": "tokenizer",
    "RING_CHAT_TEMPLATE": "tokenizer",
    "THINK_CLOSE": "tokenizer",
    "THINK_OPEN": "tokenizer",
    "build_tokenizer": "tokenizer",
    "save_tokenizer": "tokenizer",
}
# Submodules that need torch: taking a name from one of them registers the model classes.
_MODEL_SIDE = {
    "checkpoint",
    "configuration_bailing_moe",
    "generation",
    "modeling_bailing_moe",
    "moe",
}

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

assert set(__all__) == set(_EXPORTS)

_registered = False


def _register_with_transformers() -> None:
    global _registered
    if _registered:
        return
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    from .configuration_bailing_moe import BailingMoeConfig
    from .modeling_bailing_moe import BailingMoeForCausalLM, BailingMoeModel

    AutoConfig.register(BailingMoeConfig.model_type, BailingMoeConfig, exist_ok=True)
    AutoModel.register(BailingMoeConfig, BailingMoeModel, exist_ok=True)
    AutoModelForCausalLM.register(BailingMoeConfig, BailingMoeForCausalLM, exist_ok=True)
    _registered = True


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f".{module_name}", __name__)
    if module_name in _MODEL_SIDE:
        _register_with_transformers()
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:
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
