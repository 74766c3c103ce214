"""Activation checkpointing of ringmodel's decoder layers (recompute each layer in backward).

Without it a training forward keeps every layer's intermediate tensors until backward; with it
only each layer's input survives and the layer is recomputed during backward (about one extra
forward). `training/plan.py` prices both. The layer's `forward` is wrapped in place rather than the
module replaced, so parameter names — and with them checkpoints, peft targets and FSDP2's
per-layer sharding — stay exactly Ring-lite's.
"""

from __future__ import annotations

import functools

from torch import nn
from torch.utils.checkpoint import checkpoint

from ringmodel.modeling_bailing_moe import BailingMoeDecoderLayer


def decoder_layers(model: nn.Module) -> list[nn.Module]:
    """Every decoder layer of a ringmodel model (also under a peft or FSDP wrapper)."""
    return [m for m in model.modules() if isinstance(m, BailingMoeDecoderLayer)]


def apply_activation_checkpointing(model: nn.Module) -> int:
    """Recompute every decoder layer in backward; returns how many layers were wrapped.

    Non-reentrant checkpointing (`use_reentrant=False`), which works with inputs that do not
    require grad (a frozen LoRA base) and with FSDP2. Idempotent.
    """
    wrapped = 0
    for layer in decoder_layers(model):
        if getattr(layer, "_ringmodel_checkpointed", False):
            continue
        plain_forward = layer.forward
        layer.forward = functools.partial(checkpoint, plain_forward, use_reentrant=False)
        layer._ringmodel_checkpointed = True
        wrapped += 1
    return wrapped
