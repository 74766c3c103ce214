"""The equal-tokens bench's statistics and report, on hand-made run directories.

The bench's training and evaluation parts are the trainer's and training.evaluate's (tested
elsewhere); what is its own is the arithmetic over seeds and the check that both RL arms saw the
same prompts in the same order.
"""

import json
import math

import pytest

from bench.bench_c3po_equal_tokens import mean_interval, parse_args, report


def test_mean_interval_is_the_student_t_interval_over_seeds():
    cell = mean_interval([0.5, 0.6, 0.7])
    # mean 0.6, sample sd 0.1, t(0.975, 2) = 4.303: half-width 4.303 * 0.1 / sqrt(3).
    half = 4.303 * 0.1 / math.sqrt(3)
    assert cell["mean"] == pytest.approx(0.6)
    assert cell["ci95"] == pytest.approx([0.6 - half, 0.6 + half])
    assert mean_interval([0.4]) == {"mean": 0.4, "ci95": None, "n": 1}


def _write_run(run, *, tokens, grads, times, prompts, accuracy=None):
    run.mkdir(parents=True)
    rows = [
        {"step": i + 1, "tokens_trained": t, "grad_norm": g, "step_time_s": s}
        for i, (t, g, s) in enumerate(zip(tokens, grads, times, strict=True))
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    sampled = [{"step": i + 1, "reward": 0.5, "problems": p} for i, p in enumerate(prompts)]
    (run / "sampled.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sampled))
    if accuracy is not None:
        correct, n = accuracy
        overall = {"accuracy": correct / n, "correct": correct, "n": n}
        (run / "eval-validation.json").write_text(json.dumps({"overall": overall}))


def test_report_aggregates_arms_over_seeds_and_checks_the_prompt_order(tmp_path):
    (tmp_path / "plan.json").write_text(json.dumps({"budget_tokens": 100, "test_evaluated": False}))
    start = {"overall": {"accuracy": 0.5, "correct": 10, "n": 20}}
    (tmp_path / "start").mkdir()
    (tmp_path / "start" / "eval-validation.json").write_text(json.dumps(start))
    prompts = [["a", "b"], ["c", "d"]]
    for seed, correct in ((0, 12), (1, 14)):
        _write_run(
            tmp_path / f"c3po-seed{seed}",
            tokens=[100, 100],
            grads=[1.0, 1.0],
            times=[2.0, 4.0],
            prompts=prompts,
            accuracy=(correct, 20),
        )
        _write_run(
            tmp_path / f"grpo-seed{seed}",
            tokens=[80, 120],
            grads=[1.0, 3.0],
            times=[3.0, 3.0],
            prompts=prompts if seed == 0 else prompts[::-1],
            accuracy=(10, 20),
        )
    argv = ["--out", str(tmp_path), "--seeds", "0,1", "--plot", str(tmp_path / "p.png")]
    result = report(parse_args([*argv, "--steps", "2"]), tmp_path)
    c3po, grpo = result["arms"]["c3po"], result["arms"]["grpo"]
    assert c3po["tokens_cv"]["mean"] == 0 and grpo["tokens_cv"]["mean"] == pytest.approx(0.2)
    assert c3po["tokens_mean"]["mean"] == grpo["tokens_mean"]["mean"] == 100
    assert c3po["grad_norm_var"]["mean"] == 0 and grpo["grad_norm_var"]["mean"] == 1.0
    assert c3po["step_time_var"]["mean"] == 1.0 and grpo["step_time_var"]["mean"] == 0
    assert c3po["accuracy"]["mean"] == pytest.approx(0.65) and c3po["accuracy"]["n"] == 2
    assert result["arms"]["control"]["accuracy"]["n"] == 0
    assert result["same_prompts_in_same_order"] is False  # seed 1's GRPO drew them reversed
    assert (tmp_path / "p.png").is_file()


def test_report_tolerates_missing_runs_and_writes_its_folder(tmp_path):
    """A run cut off by its wall-time stop: the report takes what finished and says so."""
    (tmp_path / "plan.json").write_text(json.dumps({"budget_tokens": 100, "test_evaluated": False}))
    _write_run(
        tmp_path / "c3po-seed0",
        tokens=[100, 100],
        grads=[1.0, 1.0],
        times=[2.0, 4.0],
        prompts=[["a"], ["b"]],
        accuracy=(12, 20),
    )
    folder = tmp_path / "results"
    args = parse_args(
        ["--out", str(tmp_path), "--seeds", "0,1", "--steps", "2", "--report-dir", str(folder)]
    )
    result = report(args, tmp_path, "validation")
    assert result["seeds_with_both_arms_complete"] == []
    assert result["same_prompts_in_same_order"] is False  # nothing to compare
    assert result["start"]["n"] == 0 and result["arms"]["grpo"]["accuracy"]["n"] == 0
    assert result["arms"]["c3po"]["accuracy"] == {"mean": 0.6, "ci95": None, "n": 1}
    assert sorted(p.name for p in folder.iterdir()) == [
        "plot-validation.png",
        "report-validation.json",
        "report.md",
    ]
    assert "| c3po | 0.6 (n=1) |" in (folder / "report.md").read_text()


def test_comma_lists_are_checked():
    args = parse_args(["--part", "control,eval", "--split", "test,validation", "--arms", "grpo"])
    assert args.parts == ("control", "eval") and args.splits == ("test", "validation")
    assert args.arm_list == ("grpo",)
    with pytest.raises(SystemExit):
        parse_args(["--split", "train"])
