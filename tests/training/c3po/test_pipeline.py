"""Staged C3PO jobs through `run_job`: stages in order on their own domains, the observer, skip of a
stage without problems, cancel and resume, and the command-line entry point."""

import json

import pytest
import torch

from ringmodel import BailingMoeConfig, BailingMoeForCausalLM, build_tokenizer, save_checkpoint
from tests.fixtures.c3po_pool import PROBLEMS
from training.c3po import run as run_script
from training.c3po.config import C3POConfig
from training.c3po.pipeline import JobSpec, StageSpec, run_job
from training.observer import FunctionObserver

pytestmark = pytest.mark.usefixtures("single_torch_thread")  # tests/fixtures/micro_model.py


def base_checkpoint(path):
    torch.manual_seed(0)
    config = BailingMoeConfig.ring_tiny(
        hidden_size=64, num_hidden_layers=2, num_experts=4, moe_intermediate_size=32
    )
    save_checkpoint(BailingMoeForCausalLM(config), build_tokenizer(), path)
    return str(path)


def tiny() -> C3POConfig:
    return C3POConfig.ring_tiny(
        budget_tokens=48, prompts_per_step=2, group_size=2, max_response_tokens=16
    )


def spec_for(tmp_path, **kwargs) -> JobSpec:
    values = dict(
        base_checkpoint=base_checkpoint(tmp_path / "base"),
        output_dir=str(tmp_path / "job"),
        problems=PROBLEMS,
        stages=[StageSpec("math", ("math",), 2), StageSpec("science-code", ("science", "code"), 1)],
        config=tiny(),
        checkpoint_every=1,
        curate_with_rollouts=False,
    )
    values.update(kwargs)
    return JobSpec(**values)


def test_two_stages_run_in_order_and_report_to_the_observer(tmp_path):
    metrics, samples, checkpoints, lines = [], [], [], []
    observer = FunctionObserver(
        metrics=lambda step, m: metrics.append((step, m)),
        log=lines.append,
        samples=lambda step, s: samples.append((step, s)),
        checkpoint_written=lambda step, path, info: checkpoints.append(info),
    )
    result = run_job(spec_for(tmp_path), observer)
    assert not result.stopped
    assert [(s.name, s.steps) for s in result.stages] == [("math", 2), ("science-code", 1)]
    assert [step for step, _ in metrics] == [1, 2, 3]
    assert [m["stage_index"] for _, m in metrics] == [0, 0, 1]
    assert all(m["tokens_trained"] == 48 for _, m in metrics)
    assert {s["stage"] for _, batch in samples for s in batch} == {"math", "science-code"}
    math_ids = {s["problem_id"] for _, batch in samples for s in batch if s["stage"] == "math"}
    assert math_ids <= {"m2", "m3", "m4", "m5"}
    assert [c["step"] for c in checkpoints] == [1, 2, 3]
    assert result.final_checkpoint.endswith("stage-2-science-code/checkpoints/step-000001")
    # Stage 2 starts from stage 1's end.
    stage2_manifest = json.loads(
        (
            tmp_path
            / "job"
            / "stage-2-science-code"
            / "checkpoints"
            / "step-000001"
            / "manifest.json"
        ).read_text()
    )
    assert stage2_manifest["c3po_job"]["start"].endswith("stage-1-math/checkpoints/step-000002")
    state = json.loads((tmp_path / "job" / "job_state.json").read_text())
    assert state["result"]["final_checkpoint"] == result.final_checkpoint


def test_a_stage_without_trainable_problems_is_skipped(tmp_path):
    lines = []
    spec = spec_for(tmp_path, problems=[p for p in PROBLEMS if p["domain"] == "math"])
    result = run_job(spec, FunctionObserver(log=lines.append))
    assert result.stages[1].skipped and result.stages[1].steps == 0
    assert result.final_checkpoint.endswith("stage-1-math/checkpoints/step-000002")
    assert any("skipped" in line for line in lines)


def test_curation_with_a_random_start_model_drops_every_never_solved_problem(tmp_path):
    spec = spec_for(tmp_path, curate_with_rollouts=True, curation_group_size=2)
    result = run_job(spec)
    # A random model solves nothing: no problem carries signal, both stages are skipped.
    assert all(s.skipped for s in result.stages) and result.final_checkpoint is None
    curation = json.loads((tmp_path / "job" / "stage-1-math" / "curation.json").read_text())
    # Every math problem is either held out (hash split) or never solved.
    assert sorted(curation["never_solved"] + curation["held_out_ids"]) == ["m2", "m3", "m4", "m5"]
    assert curation["never_solved"] and curation["train_ids"] == []


def test_cancel_then_rerun_resumes_where_it_stopped(tmp_path):
    seen = []

    def stop_after_first_step() -> bool:
        return len(seen) >= 1

    spec = spec_for(tmp_path)
    first = run_job(
        spec,
        FunctionObserver(
            metrics=lambda step, m: seen.append(step), should_stop=stop_after_first_step
        ),
    )
    assert first.stopped and first.stages[0].steps == 1
    second_steps = []
    second = run_job(spec, FunctionObserver(metrics=lambda step, m: second_steps.append(step)))
    assert not second.stopped
    assert second_steps == [2, 3]  # stage 1 continues at its step 2, then stage 2


def test_command_line_entry_point(tmp_path, capsys):
    problems = tmp_path / "problems.jsonl"
    problems.write_text("\n".join(json.dumps(p) for p in PROBLEMS) + "\n")
    code = run_script.main(
        [
            "--base",
            base_checkpoint(tmp_path / "base"),
            "--out",
            str(tmp_path / "cli"),
            "--stages",
            "math:1",
            "--problems",
            str(problems),
            "--no-curation",
            "--set",
            "budget_tokens=32",
            "--set",
            "prompts_per_step=2",
            "--set",
            "group_size=2",
            "--set",
            "max_response_tokens=16",
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["stages"][0]["steps"] == 1 and out["final_checkpoint"]
