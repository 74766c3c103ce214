"""LoRA fine-tuning of a ringmodel policy with peft: which projections get adapters, the KL
reference as the same model with its adapters switched off, and adapter checkpoints.

For Ring-lite a full-parameter C3PO run needs ~16 bytes per parameter (270 GB) before activations;
LoRA trains a few million parameters on top of the frozen bf16 base, so one GPU holds it. The
reference policy of the KL term is the frozen base itself — `reference_mode(policy)` disables the
adapters for a forward — so there is no second copy of the weights. A checkpoint is the adapter
(peft's `adapter_model.safetensors` + `adapter_config.json`) plus `manifest.json` naming the base
checkpoint it applies to; `merge_adapter` folds it into plain ringmodel weights for hosts whose
serving engine cannot load adapters (docs/c3po.md, "LoRA").
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

ADAPTER_MANIFEST_FORMAT = "ringmodel-lora-adapter/1"
ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors"
ADAPTER_CONFIG_NAME = "adapter_config.json"
MANIFEST_NAME = "manifest.json"

# Module groups a LoRA run may adapt; names are ringmodel's (= Ring-lite's) module names.
LORA_GROUPS = ("attention", "dense_mlp", "experts", "shared_experts")


@dataclass(frozen=True)
class LoraSpec:
    """Rank, scaling and targets of the adapters.

    groups: which projections get adapters — "attention" (query_key_value, dense), "dense_mlp"
    (the MLP of layers before first_k_dense_replace), "experts" (every routed expert's
    gate/up/down), "shared_experts". The router (`mlp.gate`, a bare parameter) never gets one:
    adapting the routing is out of LoRA's scope and would change which experts the base serves.
    """

    rank: int = 16
    alpha: int = 32
    dropout: float = 0.0
    groups: tuple[str, ...] = LORA_GROUPS

    def __post_init__(self) -> None:
        if self.rank <= 0:
            raise ValueError(f"LoRA rank must be positive, got {self.rank}")
        unknown = set(self.groups) - set(LORA_GROUPS)
        if unknown or not self.groups:
            raise ValueError(f"LoRA groups must be a non-empty subset of {LORA_GROUPS}: {unknown}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["groups"] = list(self.groups)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoraSpec:
        return cls(
            rank=int(data["rank"]),
            alpha=int(data["alpha"]),
            dropout=float(data.get("dropout", 0.0)),
            groups=tuple(data.get("groups", LORA_GROUPS)),
        )


def module_group(name: str) -> str | None:
    """The LoRA group of a linear module's qualified name, or None for modules LoRA never adapts."""
    parts = name.split(".")
    leaf = parts[-1]
    if leaf in ("query_key_value", "dense") and "attention" in parts:
        return "attention"
    if leaf not in ("gate_proj", "up_proj", "down_proj"):
        return None
    if "experts" in parts:
        return "experts"
    if "shared_experts" in parts:
        return "shared_experts"
    return "dense_mlp"


def lora_target_modules(model: nn.Module, spec: LoraSpec) -> list[str]:
    """Qualified names of the nn.Linear modules the spec adapts (lm_head and router never)."""
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and module_group(name) in spec.groups
    ]


def apply_lora(model: nn.Module, spec: LoraSpec) -> Any:
    """Wrap `model` in a peft LoRA model: the base frozen, only the adapters trainable.

    Returns the `peft.PeftModel`; its forward takes the same arguments as ringmodel's.
    """
    from peft import LoraConfig, get_peft_model

    targets = lora_target_modules(model, spec)
    if not targets:
        raise ValueError(f"no module of this model belongs to the LoRA groups {spec.groups}")
    config = LoraConfig(
        r=spec.rank,
        lora_alpha=spec.alpha,
        lora_dropout=spec.dropout,
        target_modules=targets,
        bias="none",
    )
    wrapped = get_peft_model(model, config)
    # peft shrinks a long target list to matching suffixes; keep the spec as it was asked for.
    wrapped.ringmodel_lora_spec = spec
    return wrapped


def lora_spec_of(model: nn.Module) -> LoraSpec:
    """The LoraSpec `apply_lora` wrapped a model with."""
    return model.ringmodel_lora_spec


def is_lora(model: nn.Module) -> bool:
    """True for a model `apply_lora` wrapped."""
    return hasattr(model, "peft_config") and hasattr(model, "disable_adapter")


@contextlib.contextmanager
def reference_mode(model: nn.Module) -> Iterator[nn.Module]:
    """The KL reference policy of a LoRA run: the same module with its adapters disabled."""
    with model.disable_adapter():
        yield model


def trainable_parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def adapter_state_dict(
    model: nn.Module, state_dict: dict[str, torch.Tensor] | None = None
) -> dict[str, torch.Tensor]:
    """The adapter's tensors only, in peft's saved naming (what `save_adapter` writes).

    `state_dict`: the model's full state when its own parameters are sharded (FSDP)."""
    from peft import get_peft_model_state_dict

    tensors = get_peft_model_state_dict(model, state_dict=state_dict)
    return {k: v.detach().cpu().contiguous() for k, v in tensors.items()}


def adapter_to_model_keys(model: nn.Module, tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Saved adapter tensors renamed to the wrapped model's own parameter names (peft drops the
    adapter name "default" when saving), for loading through a sharded model's state dict."""
    own = {name for name, _ in model.named_parameters()}
    out = {}
    for key, value in tensors.items():
        for marker in (".lora_A.", ".lora_B."):
            if marker in key:
                candidate = key.replace(marker, f"{marker}default.")
                break
        else:
            candidate = key
        if candidate not in own:
            raise ValueError(f"adapter tensor {key!r} matches no parameter of this model")
        out[candidate] = value
    return out


def save_adapter(
    model: nn.Module,
    path: str | Path,
    *,
    base_checkpoint: str,
    spec: LoraSpec,
    manifest_extra: dict[str, Any] | None = None,
    state_dict: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write the adapter atomically: peft's files plus a manifest naming the base.

    The directory is written aside (a hidden sibling), fsynced and renamed into place, so a reader
    never sees a half-written adapter; an existing directory at `path` is replaced.
    `state_dict`: the full state of a sharded model (gathered by the caller on every rank).
    """
    from safetensors.torch import save_file

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.tmp"
    tmp.mkdir()
    try:
        tensors = adapter_state_dict(model, state_dict)
        save_file(tensors, str(tmp / ADAPTER_WEIGHTS_NAME), metadata={"format": "pt"})
        peft_config = model.peft_config["default"]
        config_dict = peft_config.to_dict()
        config_dict["target_modules"] = sorted(config_dict["target_modules"])
        config_dict["base_model_name_or_path"] = str(base_checkpoint)
        (tmp / ADAPTER_CONFIG_NAME).write_text(json.dumps(config_dict, indent=2, default=str))
        files = {name: _sha256(tmp / name) for name in (ADAPTER_WEIGHTS_NAME, ADAPTER_CONFIG_NAME)}
        manifest = {
            **(manifest_extra or {}),
            "format": ADAPTER_MANIFEST_FORMAT,
            "created_at": datetime.now(UTC).isoformat(),
            "base_checkpoint": str(base_checkpoint),
            "lora": spec.to_dict(),
            "adapter_parameters": sum(t.numel() for t in tensors.values()),
            "files": files,
        }
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
        for child in tmp.iterdir():
            with open(child, "rb") as handle:
                os.fsync(handle.fileno())
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def read_adapter_manifest(path: str | Path) -> dict[str, Any]:
    """The adapter's manifest, after checking every file against its recorded sha256."""
    root = Path(path)
    manifest_path = root / MANIFEST_NAME
    if not manifest_path.is_file():
        raise ValueError(f"{root} is not an adapter checkpoint (no {MANIFEST_NAME})")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("format") != ADAPTER_MANIFEST_FORMAT:
        raise ValueError(f"{root}: manifest format {manifest.get('format')!r} is not an adapter")
    for name, digest in manifest["files"].items():
        if not (root / name).is_file() or _sha256(root / name) != digest:
            raise ValueError(f"{root}/{name} is missing or does not match its manifest")
    return manifest


def is_adapter_checkpoint(path: str | Path) -> bool:
    manifest_path = Path(path) / MANIFEST_NAME
    if not manifest_path.is_file():
        return False
    return json.loads(manifest_path.read_text()).get("format") == ADAPTER_MANIFEST_FORMAT


def load_adapter(base_model: nn.Module, path: str | Path, *, trainable: bool = False) -> Any:
    """Attach a saved adapter to `base_model` (a ringmodel model already holding its base)."""
    from peft import PeftModel

    read_adapter_manifest(path)
    return PeftModel.from_pretrained(base_model, str(path), is_trainable=trainable)


def merge_adapter(model: nn.Module) -> nn.Module:
    """A plain ringmodel model with the adapter folded into its weights (a copy; `model` keeps
    its adapter). This is what a serving engine without LoRA support loads."""
    merged = copy.deepcopy(model)
    return merged.merge_and_unload()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def merged_weights(
    base_state: dict[str, torch.Tensor], adapter_dir: str | Path
) -> dict[str, torch.Tensor]:
    """Base weights with a saved adapter folded in, W + (alpha / r) · B @ A per adapted
    projection, computed from the files alone (no peft model, no gathered FSDP state): what a
    serving engine without LoRA support loads, and the next stage's start."""
    from safetensors.torch import load_file

    root = Path(adapter_dir)
    manifest = read_adapter_manifest(root)
    spec = LoraSpec.from_dict(manifest["lora"])
    scaling = spec.alpha / spec.rank
    tensors = load_file(str(root / ADAPTER_WEIGHTS_NAME))
    merged = dict(base_state)
    prefix = "base_model.model."
    for key, lora_a in tensors.items():
        if ".lora_A." not in key:
            continue
        module = key.split(".lora_A.")[0].removeprefix(prefix)
        lora_b = tensors[key.replace(".lora_A.", ".lora_B.")]
        name = f"{module}.weight"
        if name not in merged:
            raise ValueError(f"adapter targets {module!r}, which the base checkpoint lacks")
        weight = merged[name]
        delta = (lora_b.float() @ lora_a.float()) * scaling
        merged[name] = (weight.float() + delta).to(weight.dtype)
    return merged


def save_merged_checkpoint(
    *,
    base_checkpoint: str | Path,
    adapter_dir: str | Path,
    path: str | Path,
    manifest_extra: dict[str, Any] | None = None,
) -> Path:
    """A full ringmodel checkpoint of base + adapter (atomic, like every checkpoint), whose
    manifest names the adapter, its base and both sizes."""
    from ringmodel import load_checkpoint, save_checkpoint

    model, tokenizer, _ = load_checkpoint(base_checkpoint)
    merged = merged_weights(model.state_dict(), adapter_dir)
    with torch.no_grad():
        model.load_state_dict(merged, strict=True)
    adapter_bytes = sum(p.stat().st_size for p in Path(adapter_dir).iterdir() if p.is_file())
    extra = {
        **(manifest_extra or {}),
        "lora_adapter": {
            "adapter": str(adapter_dir),
            "base": str(base_checkpoint),
            "adapter_bytes": adapter_bytes,
        },
    }
    return save_checkpoint(model, tokenizer, path, manifest_extra=extra)
