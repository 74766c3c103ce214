"""LoRA C3PO: which projections get adapters, the reference = the base with adapters disabled,
adapter checkpoints (manifest naming the base), the file-level merge, and a two-stage LoRA job
whose checkpoints are adapters plus merged full checkpoints."""

import json

import pytest
import torch

from ringmodel import (
    BailingMoeConfig,
    BailingMoeForCausalLM,
    build_tokenizer,
    load_checkpoint,
    save_checkpoint,
    verify_checkpoint,
)
from tests.fixtures.c3po_pool import PROBLEMS
from tests.fixtures.micro_model import MICRO
from training.c3po.config import C3POConfig
from training.c3po.lora import (
    LoraSpec,
    apply_lora,
    lora_spec_of,
    lora_target_modules,
    merged_weights,
    read_adapter_manifest,
    reference_mode,
    save_adapter,
)
from training.c3po.pipeline import JobSpec, StageSpec, run_job
from training.observer import FunctionObserver

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def micro_model() -> BailingMoeForCausalLM:
    torch.manual_seed(0)
    return BailingMoeForCausalLM(BailingMoeConfig.ring_tiny(**MICRO))


def test_adapters_go_on_attention_dense_mlp_experts_and_shared_experts_never_the_router():
    model = micro_model()
    targets = lora_target_modules(model, LoraSpec())
    assert "model.layers.0.attention.query_key_value" in targets
    assert "model.layers.0.mlp.gate_proj" in targets  # the dense first layer
    assert "model.layers.1.mlp.experts.3.down_proj" in targets
    assert "model.layers.1.mlp.shared_experts.up_proj" in targets
    assert not any(t.endswith("mlp.gate") or t == "lm_head" for t in targets)
    only_attention = lora_target_modules(model, LoraSpec(groups=("attention",)))
    assert all(".attention." in t for t in only_attention)
    with pytest.raises(ValueError, match="rank"):
        LoraSpec(rank=0)
    with pytest.raises(ValueError, match="subset"):
        LoraSpec(groups=("router",))


def test_reference_mode_is_the_base_and_training_moves_only_adapters():
    base = micro_model()
    ids = torch.randint(6, 100, (2, 12))
    with torch.no_grad():
        base_logits = base(ids, use_cache=False).logits.clone()
    policy = apply_lora(micro_model(), LoraSpec(rank=4, alpha=8))
    frozen = {n: p.detach().clone() for n, p in policy.named_parameters() if not p.requires_grad}
    optimizer = torch.optim.SGD([p for p in policy.parameters() if p.requires_grad], lr=0.5)
    for _ in range(2):
        policy(input_ids=ids, labels=ids, use_cache=False).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    with torch.no_grad():
        trained = policy(input_ids=ids, use_cache=False).logits
        with reference_mode(policy):
            reference = policy(input_ids=ids, use_cache=False).logits
    assert torch.allclose(reference, base_logits, atol=1e-6)
    assert (trained - base_logits).abs().max() > 1e-4
    assert all(torch.equal(frozen[n], p) for n, p in policy.named_parameters() if n in frozen)


def test_adapter_checkpoint_and_file_merge_equal_peft_merge(tmp_path):
    policy = apply_lora(micro_model(), LoraSpec(rank=4, alpha=8))
    with torch.no_grad():
        for name, parameter in policy.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.05)
    path = save_adapter(
        policy, tmp_path / "adapter", base_checkpoint="base-dir", spec=LoraSpec(4, 8)
    )
    manifest = read_adapter_manifest(path)
    assert manifest["base_checkpoint"] == "base-dir" and manifest["lora"]["rank"] == 4
    assert lora_spec_of(policy) == LoraSpec(4, 8)
    merged = merged_weights(micro_model().state_dict(), path)
    expected = policy.merge_and_unload().state_dict()
    assert merged.keys() == expected.keys()
    worst = max((merged[k] - expected[k]).abs().max().item() for k in merged)
    assert worst < 1e-6
    (path / "adapter_model.safetensors").write_bytes(b"torn")
    with pytest.raises(ValueError, match="does not match"):
        read_adapter_manifest(path)


def _small_base(path):
    """A two-layer, four-expert ring-tiny-shaped checkpoint for a LoRA job to start from."""
    config = BailingMoeConfig.ring_tiny(
        hidden_size=64, num_hidden_layers=2, num_experts=4, moe_intermediate_size=32
    )
    save_checkpoint(BailingMoeForCausalLM(config), build_tokenizer(), path)
    return path


def test_a_lora_job_writes_adapters_and_merged_checkpoints_and_chains_stages(tmp_path):
    base = _small_base(tmp_path / "base")
    written = []
    spec = JobSpec(
        base_checkpoint=str(base),
        output_dir=str(tmp_path / "job"),
        problems=PROBLEMS,
        stages=[StageSpec("math", ("math",), 2), StageSpec("science-code", ("science",), 1)],
        config=C3POConfig.ring_tiny(
            budget_tokens=48, prompts_per_step=2, group_size=2, max_response_tokens=16, lr=1e-2
        ),
        checkpoint_every=1,
        curate_with_rollouts=False,
        lora_rank=4,
        activation_checkpointing=True,
    )
    result = run_job(
        spec, FunctionObserver(checkpoint_written=lambda step, p, info: written.append(p))
    )
    assert not result.stopped and [s.steps for s in result.stages] == [2, 1]
    # Every reported checkpoint is a full, verified ringmodel checkpoint (servable, evaluable).
    assert len(written) == 3
    for path in written:
        assert "/merged/" in path
        verify_checkpoint(path)
    final = json.loads((tmp_path / "job" / "job_state.json").read_text())["result"]
    assert final["final_checkpoint"] == written[-1]
    adapter = tmp_path / "job" / "stage-1-math" / "checkpoints" / "step-000002"
    manifest = read_adapter_manifest(adapter)
    assert manifest["base_checkpoint"] == str(base)
    # Stage 2 starts from stage 1's merged end; its adapter names that as its base.
    stage2 = tmp_path / "job" / "stage-2-science-code" / "checkpoints" / "step-000001"
    assert read_adapter_manifest(stage2)["base_checkpoint"] == written[1]
    adapter_bytes = sum(p.stat().st_size for p in adapter.iterdir())
    full_bytes = (
        (tmp_path / "job" / "stage-1-math" / "merged" / "step-000002" / "model.safetensors")
        .stat()
        .st_size
    )
    assert adapter_bytes < full_bytes
    merged_model, _, _ = load_checkpoint(written[1])
    base_model, _, _ = load_checkpoint(str(base))
    moved = [
        name
        for name, p in merged_model.state_dict().items()
        if not torch.equal(p, base_model.state_dict()[name])
    ]
    assert moved and all(
        any(part in name for part in ("query_key_value", "dense", "_proj")) for name in moved
    )


def test_a_resumed_lora_job_announces_its_merged_checkpoint_again_without_merging_it_again(
    tmp_path, monkeypatch
):
    import training.c3po.pipeline as pipeline

    base = _small_base(tmp_path / "base")
    spec = JobSpec(
        base_checkpoint=str(base),
        output_dir=str(tmp_path / "job"),
        problems=PROBLEMS,
        stages=[StageSpec("math", ("math",), 2)],
        config=C3POConfig.ring_tiny(
            budget_tokens=48, prompts_per_step=2, group_size=2, max_response_tokens=16
        ),
        checkpoint_every=1,
        curate_with_rollouts=False,
        lora_rank=4,
    )
    steps_done: list[int] = []
    first = run_job(
        spec,
        FunctionObserver(
            metrics=lambda step, m: steps_done.append(step), should_stop=lambda: bool(steps_done)
        ),
    )
    assert first.stopped and [s.steps for s in first.stages] == [1]

    merges, told = [], []
    real_merge = pipeline.save_merged_checkpoint
    monkeypatch.setattr(
        pipeline,
        "save_merged_checkpoint",
        lambda **kwargs: merges.append(kwargs["path"]) or real_merge(**kwargs),
    )
    run_job(
        spec,
        FunctionObserver(
            checkpoint_written=lambda step, path, info: told.append(("checkpoint", step, path)),
            resumed=lambda step: told.append(("resumed", step)),
        ),
    )
    merged = tmp_path / "job" / "stage-1-math" / "merged"
    assert told == [
        ("checkpoint", 1, str(merged / "step-000001")),
        ("resumed", 1),
        ("checkpoint", 2, str(merged / "step-000002")),
    ]
    assert merges == [merged / "step-000002"]  # step 1's merged copy was already whole
