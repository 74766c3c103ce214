"""Continued SFT on an accelerator, run here on the CPU: packing, labels, the budgeted schedule,
and the whole path (spawned data workers, an epoch checkpoint in the shipped layout, the export
tar) for two steps."""

from __future__ import annotations

import json
import tarfile

import numpy as np
import pytest
import torch

from ringmodel import load_checkpoint
from training.scripts.train_ring_tiny_v2 import EXPORT_TAR, export_checkpoint, unpack_export
from training.sft_continue import (
    ContinueConfig,
    continue_sft,
    learning_rate_at,
    pack_batches,
    to_device_batch,
)
from training.sft_data import IGNORE_INDEX

CHECKPOINT = "checkpoints/ring-tiny"


def test_pack_batches_respects_the_token_budget_and_pads_right():
    examples = [([1] * n, 2) for n in (5, 9, 3, 7, 8)]
    batches = pack_batches(examples, tokens_per_batch=16, pad_token_id=0)
    assert sum(len(b.lengths) for b in batches) == 5
    for batch in batches:
        rows, width = batch.input_ids.shape
        assert rows * width <= 16 and width == batch.lengths.max()
        for row, length in enumerate(batch.lengths):
            assert (batch.input_ids[row, length:] == 0).all()


def test_labels_cover_the_assistant_tokens_only():
    batch = pack_batches(
        [([4, 5, 6, 7, 8], 2), ([4, 5, 6], 1)], tokens_per_batch=64, pad_token_id=0
    )
    (packed,) = batch
    tensors = to_device_batch(packed, torch.device("cpu"))
    labels = tensors.labels.tolist()
    by_length = {len([t for t in row if t != IGNORE_INDEX]): row for row in labels}
    assert by_length[3] == [IGNORE_INDEX, IGNORE_INDEX, 6, 7, 8]
    assert by_length[2] == [IGNORE_INDEX, 5, 6, IGNORE_INDEX, IGNORE_INDEX]
    assert tensors.input_ids.dtype == torch.long and packed.input_ids.dtype == np.int16


def test_schedule_warms_up_then_decays_over_the_budget():
    config = ContinueConfig(init_checkpoint="x", output_dir="y", warmup_steps=10)
    assert learning_rate_at(0.0, 0, config) == pytest.approx(config.learning_rate / 10)
    assert learning_rate_at(0.0, 10, config) == pytest.approx(config.learning_rate)
    assert learning_rate_at(1.0, 500, config) == pytest.approx(config.learning_rate * 0.1)
    assert learning_rate_at(0.5, 500, config) < config.learning_rate


def test_a_budget_is_required(tmp_path):
    config = ContinueConfig(
        init_checkpoint=CHECKPOINT, output_dir=str(tmp_path), max_minutes=None, max_steps=None
    )
    with pytest.raises(ValueError, match="budget"):
        continue_sft(config)


@pytest.mark.slow
def test_two_steps_on_the_cpu_save_and_export_a_shipped_checkpoint(tmp_path):
    config = ContinueConfig(
        init_checkpoint=CHECKPOINT,
        output_dir=str(tmp_path / "run"),
        device="cpu",
        precision="bf16",
        tokens_per_batch=3072,
        warmup_steps=1,
        max_minutes=None,
        max_steps=2,
        steps_per_epoch=1,
        workers=1,
        pool_batches=2,
        heldout_per_level=1,
    )
    exported = []

    def on_epoch(checkpoint, record):
        exported.append(export_checkpoint(checkpoint, tmp_path / "export"))

    records = continue_sft(config, on_epoch=on_epoch)
    assert [r["epoch"] for r in records] == [1, 2] and records[-1]["step"] == 2
    assert set(records[0]["heldout_loss"]) == {"generator", "unseen"}
    log = json.loads((tmp_path / "run" / "sft_log.json").read_text())
    assert log["steps"] == 2 and len(log["epochs"]) == 2
    with tarfile.open(exported[-1]) as tar:
        names = tar.getnames()
    assert "ring-tiny/model.safetensors" in names and "ring-tiny/manifest.json" in names
    assert exported[-1].name == EXPORT_TAR
    unpacked = unpack_export(exported[-1], tmp_path / "unpacked")
    model, _, manifest = load_checkpoint(unpacked)
    assert manifest["sft"]["epochs"][-1]["epoch"] == 2
    assert model.config.vocab_size == 118
