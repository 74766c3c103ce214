"""training/plan.py: parameter counts, the per-GPU items, fitting, the CLI, and its predicted peak
memory against a measured C3PO update on this machine."""

import json

import pytest

import ringmodel as rm
from bench.bench_plan_memory import measure_update_peak
from training import plan


@pytest.mark.parametrize(
    ("preset", "config"),
    [("ring-tiny", rm.RING_TINY_CONFIG), ("ring-lite", rm.RING_LITE_CONFIG)],
)
def test_preset_files_are_ringmodels_configs_and_count_the_same_parameters(preset, config):
    stored = json.loads(plan.PRESETS[preset].read_text())
    assert {k: v for k, v in stored.items() if k != "model_type"} == config
    shape = plan.load_model_shape(preset)
    assert shape.parameters() == rm.count_parameters(rm.BailingMoeConfig(**config))


def test_a_checkpoint_directory_or_config_file_loads(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(rm.RING_TINY_CONFIG))
    assert plan.load_model_shape(tmp_path) == plan.load_model_shape("ring-tiny")
    assert plan.load_model_shape(tmp_path / "config.json") == plan.load_model_shape("ring-tiny")


def test_an_unknown_model_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no model config"):
        plan.load_model_shape(tmp_path / "missing")
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 8}))
    with pytest.raises(ValueError, match="lacks"):
        plan.load_model_shape(tmp_path)


def test_lora_adapter_count_matches_peft(single_torch_thread):
    from training.c3po.lora import LoraSpec, apply_lora, trainable_parameter_count

    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = rm.BailingMoeForCausalLM(rm.BailingMoeConfig.ring_tiny())
    wrapped = apply_lora(model, LoraSpec(rank=4, alpha=8))
    shape = plan.load_model_shape("ring-tiny")
    assert shape.lora_parameters(4) == trainable_parameter_count(wrapped)


def test_full_fine_tuning_shards_weights_gradients_and_state_over_the_ranks():
    lite = plan.load_model_shape("ring-lite")
    total, _ = lite.parameters()
    one = plan.make_plan(lite, plan.TrainingSetup(world_size=1))
    eight = plan.make_plan(lite, plan.TrainingSetup(world_size=8))
    assert one.items["AdamW state (sharded)"] == 8 * total
    assert eight.items["AdamW state (sharded)"] == pytest.approx(total)
    assert eight.items["gradients (sharded)"] == pytest.approx(total / 2)
    # Activations and the rollout engine do not shrink with more ranks.
    assert (
        eight.items["activations (one micro-batch)"] == one.items["activations (one micro-batch)"]
    )


def test_activation_checkpointing_and_lora_cost_less():
    lite = plan.load_model_shape("ring-lite")
    setup = plan.TrainingSetup(max_response_tokens=4096, world_size=8)
    full = plan.make_plan(lite, setup)
    assert full.activations_with_checkpointing < full.activations_without_checkpointing / 2
    lora = plan.make_plan(lite, plan.TrainingSetup(mode="lora", world_size=1, lora_rank=16))
    assert "AdamW state (sharded)" not in lora.items
    assert lora.trainable_parameters < 0.05 * lora.parameters


def test_a_job_that_cannot_fit_gets_the_smallest_that_would():
    tiny = plan.load_model_shape("ring-tiny")
    too_small_gpu = plan.TrainingSetup(
        mode="full",
        world_size=1,
        gpu=plan.Gpu(memory_gib=0.5),
        budget_tokens=4096,
        prompts_per_step=8,
        group_size=8,
        prompt_tokens=64,
        max_response_tokens=640,
        micro_batch_size=64,
        activation_checkpointing=False,
        precision="fp32",
        rollout_engine="policy",
    )
    assert not plan.make_plan(tiny, too_small_gpu).fits
    smallest = plan.smallest_fitting(tiny, too_small_gpu)
    assert smallest is not None and smallest.micro_batch_size == 1
    assert plan.make_plan(tiny, smallest).fits


def test_cli_prints_the_table_and_fails_when_it_does_not_fit(capsys):
    assert (
        plan.main(
            [
                "ring-tiny",
                "--world-size",
                "1",
                "--gpu-gib",
                "80",
                "--budget",
                "4096",
                "--prompts",
                "8",
                "--group",
                "8",
                "--response-tokens",
                "640",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "| **total** |" in out and "fits: yes" in out
    assert plan.main(["ring-lite", "--world-size", "1", "--gpu-gib", "80"]) == 1
    assert "fits: NO" in capsys.readouterr().out


@pytest.mark.parametrize("lora_rank", [None, 8])
def test_the_plan_predicts_a_measured_ring_tiny_update_within_20_percent(
    single_torch_thread, lora_rank
):
    result = measure_update_peak(
        rm.BailingMoeConfig.ring_tiny(), responses=8, prompt=60, response=256, lora_rank=lora_rank
    )
    assert 0.8 <= result["ratio"] <= 1.2, result
