"""A LoRA-trained version's files as the C3PO pipeline lays them out, for the worker's unit tests.

The adapter directory (peft's two files and a `ringmodel-lora-adapter/1` manifest with their
sha256, training/c3po/lora.py `save_adapter`) and the merged checkpoint's manifest naming it
(`save_merged_checkpoint`'s `lora_adapter`). The weights are a few bytes: the scripted engine
never reads them; the worker verifies them against the manifest, which is what is tested.
"""

import hashlib
import json
from pathlib import Path

from training.c3po.lora import ADAPTER_MANIFEST_FORMAT


def write_lora_version(root: Path, name: str, *, base: str, rank: int = 8) -> str:
    """Write `<root>/<name>-adapter` and `<root>/<name>-merged`; return the merged path."""
    adapter = root / f"{name}-adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_model.safetensors").write_bytes(f"weights of {name}".encode())
    (adapter / "adapter_config.json").write_text(json.dumps({"r": rank, "lora_alpha": 2 * rank}))
    files = {
        file: hashlib.sha256((adapter / file).read_bytes()).hexdigest()
        for file in ("adapter_model.safetensors", "adapter_config.json")
    }
    (adapter / "manifest.json").write_text(
        json.dumps(
            {
                "format": ADAPTER_MANIFEST_FORMAT,
                "base_checkpoint": base,
                "lora": {"rank": rank, "alpha": 2 * rank, "dropout": 0.0, "groups": ["attention"]},
                "files": files,
            }
        )
    )
    merged = root / f"{name}-merged"
    merged.mkdir()
    (merged / "manifest.json").write_text(
        json.dumps(
            {
                "format": "ringmodel-checkpoint/1",
                "lora_adapter": {"adapter": str(adapter), "base": base, "adapter_bytes": 64},
            }
        )
    )
    return str(merged)


def corrupt_adapter_weights(merged: str) -> None:
    adapter = Path(
        json.loads((Path(merged) / "manifest.json").read_text())["lora_adapter"]["adapter"]
    )
    (adapter / "adapter_model.safetensors").write_bytes(b"flipped bits")
