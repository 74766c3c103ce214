"""Checkpoints: round trip, manifest, atomic replace, errors that name the problem, Auto classes."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

import ringmodel as rm
from tests.ringmodel.conftest import micro_config

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def saved(tmp_path, micro_model, tokenizer) -> Path:
    return rm.save_checkpoint(
        micro_model, tokenizer, tmp_path / "ckpt", manifest_extra={"step": 7, "eval": {"acc": 0.5}}
    )


def logits_of(model, ids=((3, 1, 4, 1, 5, 9, 2, 6),)):
    with torch.no_grad():
        return model(torch.tensor(ids), use_cache=False).logits


def rewrite_manifest_checksums(path: Path) -> None:
    """Re-sign a deliberately altered checkpoint so a later check (not sha256) has to catch it."""
    manifest = json.loads((path / "manifest.json").read_text())
    for name, entry in manifest["files"].items():
        entry["sha256"] = hashlib.sha256((path / name).read_bytes()).hexdigest()
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_round_trip_and_manifest(saved, micro_model):
    model, tokenizer, manifest = rm.load_checkpoint(saved)
    torch.testing.assert_close(logits_of(model), logits_of(micro_model), rtol=0, atol=0)
    assert not model.training
    assert tokenizer.chat_template == rm.RING_CHAT_TEMPLATE
    files = sorted(p.name for p in saved.iterdir() if p.name != "manifest.json")
    assert sorted(manifest["files"]) == files
    for name in files:
        assert (
            manifest["files"][name]["sha256"]
            == hashlib.sha256((saved / name).read_bytes()).hexdigest()
        )
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= set(
        files
    )
    assert {"generation_config.json", "modeling_bailing_moe.py", "moe.py"} <= set(files)
    assert manifest["parameters"] == dict(
        zip(("total", "active"), rm.count_parameters(micro_model.config), strict=True)
    )
    assert manifest["step"] == 7 and manifest["eval"] == {"acc": 0.5}
    config = json.loads((saved / "config.json").read_text())
    assert (
        config["auto_map"]["AutoModelForCausalLM"] == "modeling_bailing_moe.BailingMoeForCausalLM"
    )
    assert config["architectures"] == ["BailingMoeForCausalLM"]


def test_load_converts_dtype(saved):
    model, _, _ = rm.load_checkpoint(saved, dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}


def test_reserved_manifest_keys_are_refused(tmp_path, micro_model, tokenizer):
    with pytest.raises(ValueError, match="files"):
        rm.save_checkpoint(micro_model, tokenizer, tmp_path / "x", manifest_extra={"files": {}})
    assert not any(tmp_path.iterdir()), "a refused save leaves nothing behind"


def test_saving_over_a_checkpoint_replaces_it_and_leaves_no_temporaries(saved, tokenizer):
    torch.manual_seed(1)
    other = rm.BailingMoeForCausalLM(micro_config()).eval()
    rm.save_checkpoint(other, tokenizer, saved, manifest_extra={"step": 8})
    model, _, manifest = rm.load_checkpoint(saved)
    assert manifest["step"] == 8
    torch.testing.assert_close(logits_of(model), logits_of(other), rtol=0, atol=0)
    assert [p.name for p in saved.parent.iterdir()] == ["ckpt"]


def test_missing_file_is_named(saved):
    os.remove(saved / "tokenizer.json")
    with pytest.raises(rm.CheckpointError, match="missing file tokenizer.json"):
        rm.load_checkpoint(saved)


def test_missing_manifest_and_missing_directory_are_named(saved, tmp_path):
    with pytest.raises(rm.CheckpointError, match="no such checkpoint directory"):
        rm.load_checkpoint(tmp_path / "nowhere")
    os.remove(saved / "manifest.json")
    with pytest.raises(rm.CheckpointError, match="missing manifest.json"):
        rm.load_checkpoint(saved)


def test_corrupt_weights_are_named(saved):
    weights = saved / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(rm.CheckpointError, match="model.safetensors is corrupt"):
        rm.load_checkpoint(saved)


def test_truncated_weights_with_matching_checksum_are_unreadable(saved):
    weights = saved / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    rewrite_manifest_checksums(saved)
    with pytest.raises(rm.CheckpointError, match="model.safetensors is unreadable"):
        rm.load_checkpoint(saved)


def test_weights_that_do_not_fit_the_config_are_named(saved):
    config = json.loads((saved / "config.json").read_text())
    config["moe_intermediate_size"] = 48
    (saved / "config.json").write_text(json.dumps(config))
    rewrite_manifest_checksums(saved)
    with pytest.raises(rm.CheckpointError, match=r"mlp\.experts\.0\.down_proj\.weight has shape"):
        rm.load_checkpoint(saved)


def test_auto_model_loads_the_directory_in_process(saved, micro_model):
    model = AutoModelForCausalLM.from_pretrained(saved)
    torch.testing.assert_close(logits_of(model.eval()), logits_of(micro_model), rtol=0, atol=0)


@pytest.mark.slow
def test_auto_model_loads_the_directory_as_remote_code_without_ringmodel(
    saved, micro_model, tmp_path
):
    """A process that never imports ringmodel (like a vLLM or HF user) runs the copied source."""
    expected = logits_of(micro_model)
    script = (
        "import sys, torch\n"
        "from transformers import AutoModelForCausalLM\n"
        "model = AutoModelForCausalLM.from_pretrained(sys.argv[1], trust_remote_code=True).eval()\n"
        "assert 'ringmodel' not in sys.modules, 'remote code must not need the package'\n"
        "assert type(model).__module__.startswith('transformers_modules')\n"
        "with torch.no_grad():\n"
        "    logits = model(torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6]])).logits\n"
        "torch.save(logits, sys.argv[2])\n"
    )
    out_file = tmp_path / "logits.pt"
    # Run outside the repository so that `ringmodel` is not importable from the working directory.
    subprocess.run(
        [sys.executable, "-c", script, str(saved), str(out_file)],
        cwd=tmp_path,
        check=True,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""},
    )
    # Not bit-identical: the child process runs matmuls on a different number of threads.
    torch.testing.assert_close(torch.load(out_file), expected, rtol=0, atol=1e-5)
