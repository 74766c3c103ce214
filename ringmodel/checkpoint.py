"""Checkpoints in Hugging Face layout, written atomically and verified on load.

A checkpoint directory holds ``config.json`` (with ``auto_map``), ``model.safetensors``,
``generation_config.json``, ``tokenizer.json``, ``tokenizer_config.json``, the three remote-code
files (``configuration_bailing_moe.py``, ``modeling_bailing_moe.py``, ``moe.py``) and
``manifest.json``: the sha256 of every other file, total and active parameter counts and whatever
the caller adds (training step, evaluation results ...). The same directory loads with
``load_checkpoint``, with ``AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True)`` and
in vLLM (``trust_remote_code=True``; vLLM uses its native ``bailing_moe`` model).

Writes go to a hidden sibling directory that is fsynced and then renamed into place, so a reader
(or a job killed half-way) never sees a half-written checkpoint.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer, GenerationConfig

from .configuration_bailing_moe import BailingMoeConfig
from .modeling_bailing_moe import BailingMoeForCausalLM
from .tokenizer import save_tokenizer

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "ringmodel-checkpoint/1"
WEIGHTS_NAME = "model.safetensors"
REMOTE_CODE_FILES = ("configuration_bailing_moe.py", "modeling_bailing_moe.py", "moe.py")
REQUIRED_FILES = (
    "config.json",
    WEIGHTS_NAME,
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    *REMOTE_CODE_FILES,
)
AUTO_MAP = {
    "AutoConfig": "configuration_bailing_moe.BailingMoeConfig",
    "AutoModel": "modeling_bailing_moe.BailingMoeModel",
    "AutoModelForCausalLM": "modeling_bailing_moe.BailingMoeForCausalLM",
}
_RESERVED_MANIFEST_KEYS = frozenset({"format", "created_at", "files", "parameters", "dtype"})


class CheckpointError(Exception):
    """A checkpoint directory is missing, incomplete, corrupt or does not fit its config."""


def count_parameters(config: BailingMoeConfig) -> tuple[int, int]:
    """(total, active-per-token) parameter counts implied by ``config``.

    Active counts the top-k routed experts of each MoE layer instead of all of them; everything
    else (embeddings, attention, shared experts, router, norms, lm_head) is active for every token.
    """
    d, v = config.hidden_size, config.vocab_size
    q_heads, kv_heads, head_dim = (
        config.num_attention_heads,
        config.num_key_value_heads,
        config.head_dim,
    )
    assert head_dim is not None  # the config's __post_init__ fills it from the widths
    qkv_out = (q_heads + 2 * kv_heads) * head_dim
    attention = d * qkv_out + q_heads * head_dim * d
    if config.use_qkv_bias or config.use_bias:
        attention += qkv_out
    if config.use_bias:
        attention += d

    def swiglu(width: int) -> int:
        return 3 * d * width + ((2 * width + d) if config.use_bias else 0)

    norms = 2 * d
    dense_layer = attention + norms + swiglu(config.intermediate_size)
    moe_common = (
        attention
        + norms
        + config.num_experts * d  # router
        + (
            swiglu(config.moe_intermediate_size * config.num_shared_experts)
            if config.num_shared_experts > 0
            else 0
        )
    )
    expert = swiglu(config.moe_intermediate_size)
    num_dense = config.first_k_dense_replace
    num_moe = config.num_hidden_layers - num_dense
    outside_layers = v * d + d + (0 if config.tie_word_embeddings else v * d)
    shared = outside_layers + num_dense * dense_layer + num_moe * moe_common
    total = shared + num_moe * config.num_experts * expert
    active = shared + num_moe * config.num_experts_per_tok * expert
    return total, active


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(
    model: BailingMoeForCausalLM,
    tokenizer: Any,
    path: str | Path,
    *,
    manifest_extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` + ``tokenizer`` to ``path`` atomically; returns the final path.

    An existing checkpoint at ``path`` is replaced: the new one is renamed in, then the old one is
    removed. ``manifest_extra`` (JSON-serialisable) is merged into manifest.json's top level; its
    keys may not shadow the manifest's own (format, created_at, files, parameters, dtype).
    """
    extra = dict(manifest_extra or {})
    if clash := _RESERVED_MANIFEST_KEYS & extra.keys():
        raise ValueError(f"manifest_extra may not set reserved keys {sorted(clash)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        state = {k: t.detach().contiguous().cpu() for k, t in model.state_dict().items()}
        if model.config.tie_word_embeddings:
            state.pop("lm_head.weight", None)  # shared storage; loaders re-tie it
        dtypes = {t.dtype for t in state.values()}
        assert len(dtypes) == 1, f"mixed parameter dtypes {dtypes}"
        dtype = dtypes.pop()
        save_file(state, staging / WEIGHTS_NAME, metadata={"format": "pt"})

        config = copy.deepcopy(model.config)
        config.auto_map = dict(AUTO_MAP)
        config.architectures = ["BailingMoeForCausalLM"]
        config.dtype = dtype
        config.save_pretrained(staging)
        GenerationConfig(
            eos_token_id=config.eos_token_id,
            pad_token_id=config.pad_token_id,
            bos_token_id=config.bos_token_id,
        ).save_pretrained(staging)
        save_tokenizer(tokenizer, staging)
        source_dir = Path(__file__).resolve().parent
        for name in REMOTE_CODE_FILES:
            shutil.copyfile(source_dir / name, staging / name)

        total, active = count_parameters(model.config)
        files = {
            p.name: {"sha256": _sha256(p), "bytes": p.stat().st_size}
            for p in sorted(staging.iterdir())
        }
        manifest = {
            "format": MANIFEST_FORMAT,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "dtype": str(dtype).removeprefix("torch."),
            "parameters": {"total": total, "active": active},
            "files": files,
            **extra,
        }
        (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
        for p in staging.iterdir():
            _fsync(p)
        _fsync(staging)

        previous = None
        if path.exists():
            previous = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
            path.rename(previous)
        staging.rename(path)
        _fsync(path.parent)
        if previous is not None:
            shutil.rmtree(previous)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


def read_manifest(path: str | Path) -> dict[str, Any]:
    """manifest.json of the checkpoint at ``path`` (no verification)."""
    manifest_path = Path(path) / MANIFEST_NAME
    if not manifest_path.is_file():
        raise CheckpointError(f"{path}: missing {MANIFEST_NAME} (not a complete checkpoint)")
    try:
        return json.loads(manifest_path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{manifest_path}: unreadable JSON ({err})") from err


def verify_checkpoint(path: str | Path) -> dict[str, Any]:
    """Check every file listed in the manifest exists and matches its sha256; returns the manifest."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such checkpoint directory")
    manifest = read_manifest(path)
    files = manifest.get("files", {})
    for name in REQUIRED_FILES:
        if name not in files:
            raise CheckpointError(f"{path}: manifest does not list required file {name}")
    for name, entry in files.items():
        file_path = path / name
        if not file_path.is_file():
            raise CheckpointError(f"{path}: missing file {name}")
        if _sha256(file_path) != entry["sha256"]:
            raise CheckpointError(f"{path}: {name} is corrupt (sha256 does not match the manifest)")
    return manifest


def load_checkpoint(
    path: str | Path, *, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> tuple[BailingMoeForCausalLM, Any, dict[str, Any]]:
    """Verify and load a checkpoint: ``(model in eval mode, tokenizer, manifest)``.

    ``dtype`` None keeps the stored dtype. Raises :class:`CheckpointError` naming the problem
    (missing file, checksum mismatch, unreadable weights, missing/unexpected/mis-shaped tensors).
    """
    path = Path(path)
    manifest = verify_checkpoint(path)
    try:
        config = BailingMoeConfig.from_pretrained(path)
    except Exception as err:
        raise CheckpointError(
            f"{path}: config.json is not a valid bailing_moe config ({err})"
        ) from err
    try:
        state = load_file(path / WEIGHTS_NAME)
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path}: {WEIGHTS_NAME} is unreadable ({err})") from err
    if config.tie_word_embeddings and "lm_head.weight" not in state:
        state["lm_head.weight"] = state["model.word_embeddings.weight"]

    with torch.device("meta"):
        model = BailingMoeForCausalLM(config)
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    found = {name: tuple(t.shape) for name, t in state.items()}
    problems = [f"missing tensor {n}" for n in sorted(expected.keys() - found.keys())]
    problems += [f"unexpected tensor {n}" for n in sorted(found.keys() - expected.keys())]
    problems += [
        f"{n} has shape {found[n]}, config implies {expected[n]}"
        for n in sorted(expected.keys() & found.keys())
        if expected[n] != found[n]
    ]
    if problems:
        shown = "; ".join(problems[:5]) + (
            f"; ... ({len(problems)} problems)" if len(problems) > 5 else ""
        )
        raise CheckpointError(f"{path}: {WEIGHTS_NAME} does not fit config.json: {shown}")
    model.load_state_dict(state, strict=True, assign=True)
    if config.tie_word_embeddings:
        model.lm_head.weight = model.model.word_embeddings.weight
    model.to(device=device, dtype=dtype)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    return model, tokenizer, manifest
