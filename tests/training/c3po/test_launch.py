"""A C3PO job as a 2-rank torchrun process group (gloo, CPU): relayed metrics, every rank's
heartbeat, a cancel that stops the group at a checkpoint, resume to the end, and a dead rank that
fails the job with a message naming it."""

import json
import os
import signal

import pytest
import torch

from ringmodel import BailingMoeConfig, BailingMoeForCausalLM, build_tokenizer, save_checkpoint
from training.c3po.config import C3POConfig
from training.c3po.launch import RankFailure, run_under_torchrun, spec_from_json, spec_to_json
from training.c3po.pipeline import JobSpec, StageSpec
from training.observer import FunctionObserver

pytestmark = pytest.mark.slow

PROBLEMS = [
    {"id": f"m{i}", "statement": f"Compute {i} + {i}.", "answer": str(2 * i), "domain": "math"}
    for i in range(2, 7)
]


def make_spec(tmp_path, steps: int = 3) -> JobSpec:
    torch.manual_seed(0)
    base = tmp_path / "base"
    if not base.exists():
        config = BailingMoeConfig.ring_tiny(
            hidden_size=32,
            num_hidden_layers=2,
            num_experts=4,
            moe_intermediate_size=16,
            intermediate_size=64,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=16,
        )
        save_checkpoint(BailingMoeForCausalLM(config), build_tokenizer(), base)
    return JobSpec(
        base_checkpoint=str(base),
        output_dir=str(tmp_path / "job"),
        problems=PROBLEMS,
        stages=[StageSpec("math", ("math",), steps)],
        config=C3POConfig.ring_tiny(
            budget_tokens=40, prompts_per_step=2, group_size=2, max_response_tokens=12
        ),
        checkpoint_every=1,
        curate_with_rollouts=False,
        torch_threads=1,
    )


def test_the_spec_round_trips_through_json(tmp_path):
    spec = make_spec(tmp_path)
    again = spec_from_json(json.loads(json.dumps(spec_to_json(spec))))
    assert again == spec


def test_two_ranks_cancel_at_a_checkpoint_and_resume_to_the_end(tmp_path):
    # Enough steps that the stop, asked for at the first reported step, always lands before the
    # end: with 3, a loaded machine finished the whole job before the ranks saw the stop file.
    steps = 12
    spec = make_spec(tmp_path, steps=steps)
    control = tmp_path / "job" / "control"
    metrics, checkpoints, seen_ranks, reports = [], [], set(), []

    def collect_beats(beats):
        seen_ranks.update(beats)

    observer = FunctionObserver(
        metrics=lambda step, m: metrics.append(step),
        checkpoint_written=lambda step, path, info: checkpoints.append(info["step"]),
        should_stop=lambda: bool(metrics),  # cancel once the first step is reported
        rank_heartbeats=reports.append,
    )
    first = run_under_torchrun(
        spec, observer, nproc_per_node=2, control_dir=control, on_heartbeats=collect_beats
    )
    assert first.stopped and seen_ranks == {0, 1}
    # The observer heard the ranks while they ran, and last that both exited.
    assert any(not b.exited for report in reports[:-1] for b in report)
    assert [(b.rank, b.exited) for b in reports[-1]] == [(0, True), (1, True)]
    assert len({b.pid for b in reports[-1]}) == 2
    assert metrics and checkpoints and checkpoints[-1] == metrics[-1]
    done = metrics[-1]
    assert done < steps

    resumed_metrics = []
    result = run_under_torchrun(
        spec,
        FunctionObserver(metrics=lambda step, m: resumed_metrics.append((step, m))),
        nproc_per_node=2,
        control_dir=control,
    )
    assert not result.stopped and result.stages[0].steps == steps
    assert [s for s, _ in resumed_metrics] == list(range(done + 1, steps + 1))
    assert all(m["tokens_trained"] == 40 for _, m in resumed_metrics)


def test_a_dead_rank_fails_the_job_and_names_it(tmp_path):
    spec = make_spec(tmp_path, steps=50)
    killed = []

    def kill_rank_one(beats):
        path = tmp_path / "job" / "control" / "heartbeat-1.json"
        if not killed and path.is_file():
            pid = json.loads(path.read_text())["pid"]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    with pytest.raises(RankFailure, match="rank") as failure:
        run_under_torchrun(
            spec,
            FunctionObserver(),
            nproc_per_node=2,
            control_dir=tmp_path / "job" / "control",
            on_heartbeats=kill_rank_one,
            stale_after_seconds=120,
        )
    assert killed, failure.value
    assert "rank" in str(failure.value)
