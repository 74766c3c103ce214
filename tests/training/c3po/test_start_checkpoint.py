"""Entropy-band choice of the RL start checkpoint: the rule on hand-made measurements, and the
measurement on real (tiny, random) checkpoints whose entropies differ by construction."""

import json

import pytest
import torch

from ringmodel import BailingMoeConfig, BailingMoeForCausalLM, build_tokenizer, save_checkpoint
from training.c3po.start_checkpoint import (
    PAPER_BAND,
    EntropyMeasurement,
    choose_start_checkpoint,
    select_start_checkpoint,
    sft_epoch_checkpoints,
)

pytestmark = pytest.mark.usefixtures("single_torch_thread")  # tests/fixtures/micro_model.py


def m(epoch: int, entropy: float) -> EntropyMeasurement:
    return EntropyMeasurement(
        checkpoint=f"epoch-{epoch}", epoch=epoch, mean_entropy=entropy, num_tokens=10
    )


# Ring-lite's reported entropies after 1, 5 and 9 SFT epochs (docs/c3po-spec.md §3).
PAPER = [m(9, 0.27), m(1, 0.5), m(5, 0.35)]


def test_paper_entropies_pick_the_least_trained_in_band_by_default():
    choice = choose_start_checkpoint(PAPER, band=PAPER_BAND)
    assert (choice.epoch, choice.in_band) == (1, True)
    assert [x.epoch for x in choice.measurements] == [1, 5, 9]


def test_preferences_inside_the_band():
    assert choose_start_checkpoint(PAPER, prefer="most_trained").epoch == 5
    assert choose_start_checkpoint(PAPER, prefer="band_centre").epoch == 5  # |0.35-0.4| < |0.5-0.4|
    with pytest.raises(ValueError):
        choose_start_checkpoint(PAPER, prefer="newest")  # type: ignore[arg-type]


def test_nothing_in_band_takes_the_closest_and_says_so():
    choice = choose_start_checkpoint([m(1, 0.9), m(2, 0.6), m(3, 0.05)], band=(0.3, 0.5))
    assert (choice.epoch, choice.in_band) == (2, False)
    assert "no checkpoint" in choice.reason


def _write(path, scale: float):
    torch.manual_seed(0)
    config = BailingMoeConfig.ring_tiny(hidden_size=64, num_hidden_layers=2, num_experts=4)
    model = BailingMoeForCausalLM(config)
    with torch.no_grad():
        # A larger final-norm gain sharpens every next-token distribution: lower entropy.
        model.model.norm.weight.mul_(scale)
    save_checkpoint(model, build_tokenizer(), path)


def test_measures_real_checkpoints_and_records_the_choice(tmp_path):
    _write(tmp_path / "sft" / "epoch-1", 1.0)
    _write(tmp_path / "sft" / "epoch-2", 40.0)
    (tmp_path / "sft" / "epoch-3").mkdir()  # an interrupted save: no manifest, skipped
    checkpoints = sft_epoch_checkpoints(tmp_path / "sft")
    assert [p.name for p in checkpoints] == ["epoch-1", "epoch-2"]
    record = tmp_path / "run" / "start_checkpoint.json"
    choice = select_start_checkpoint(
        checkpoints,
        ["Compute 1 + 2.", "Compute 3 + 4."],
        band=(0.0, 3.0),
        record_path=record,
        max_new_tokens=6,
        batch_size=2,
    )
    first, second = choice.measurements
    assert first.epoch == 1 and second.epoch == 2
    assert first.mean_entropy > 4.0 > second.mean_entropy  # random init ≈ ln(118) = 4.77
    assert choice.epoch == 2 and choice.in_band
    saved = json.loads(record.read_text())
    assert saved["checkpoint"].endswith("epoch-2") and len(saved["measurements"]) == 2
