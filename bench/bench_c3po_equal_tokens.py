"""C3PO against GRPO at equal tokens per update, several seeds, with a no-RL control (resumable).

The question (docs/c3po-spec.md §7): does a fixed token budget give steadier updates and better
learning than GRPO when both train on the same amount of data? So the arms differ only in the
algorithm:

- **grpo**: every sampled token of the step's L×K responses trains, the loss divided by their
  count;
- **c3po**: Φ = GRPO's mean tokens per update, measured on the start model before training (the
  `plan` part), the loss divided by Φ; `overflow="drop"` and `underfill="accept"`, so that each
  update draws exactly one batch of L prompts and the prompt stream stays the same as GRPO's
  (a short batch trains on what it has, still divided by Φ, and is counted as shortfall);
- **control**: no RL: supervised fine-tuning on the same problems' worked solutions, in the same
  order, for as long (wall time) as the two RL arms of the same seed took on average.

Each arm runs for every seed (same seed = same prompts in the same order, checked in the report),
the same number of updates. Choices (topic, lr, β, Φ, steps) are made on the validation split;
the test split (training.problems' calculation-keyed split, never trained on) is evaluated only
by `--part eval --split test`, once, and the report says whether it has been.

Parts, each resumable (re-running skips what is done; RL runs continue from their last
checkpoint; `--max-minutes` stops a part cleanly so a long run can be done in pieces):

    plan     problems (train split), Φ from the start model's rollouts  -> <out>/plan.json
    train    the RL arms for every seed                                 -> <out>/<arm>-seed<s>/
    control  the SFT control for every seed whose RL arms are done      -> <out>/control-seed<s>/
    eval     greedy accuracy of every finished run and of the start     -> <run>/eval-<split>.json
    report   per arm, mean and 95% interval over seeds                  -> <out>/report.json, plot

Smallest end-to-end run (minutes; what docs/c3po.md reports):
    .venv/bin/python -m bench.bench_c3po_equal_tokens --part all --steps 3 --seeds 0,1,2 \\
        --prompts 2 --group 4 --max-tokens 640 --eval-per-level 20 --out runs/c3po_equal_tokens_smoke
The full run (hours; same command with --steps 300 --prompts 8 --group 8 --eval-per-level 1000,
in parts: --part train --max-minutes 60 as often as needed, then control, eval, report).

On a GPU (`--device cuda`): bench/c3po_equal_tokens_gpu.sh runs the RL runs as parallel processes
(`--part train --seeds S --arms A`) under one clock (`--clock-start`, `--train-until`,
`--control-until`, `--eval-until`); a run cut off by its stop is neither evaluated nor compared,
and the report (`--report-dir`) takes whatever finished.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from ringmodel import load_checkpoint, save_checkpoint
from training.c3po.config import C3POConfig
from training.c3po.data import as_rl_problem, prompt_ids_for
from training.c3po.rollout import PolicyRolloutEngine, sample_groups
from training.c3po.trainer import C3POTrainer, PromptSampler, latest_checkpoint
from training.evaluate import evaluate_with_ringmodel, wilson_interval
from training.observer import FunctionObserver
from training.problems import Problem, training_sample
from training.sft import training_loss
from training.sft_data import SFTBatch, collate, encode_problem

ARMS = ("c3po", "grpo")
PARTS = ("plan", "train", "control", "eval", "report")
SPLITS = ("validation", "test")

# Two-sided 95% Student-t quantiles by degrees of freedom (no scipy in the environment).
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", default="all", help=f"all, or a comma list of {PARTS}")
    parser.add_argument("--arms", default=",".join(ARMS), help="the RL arms the train part runs")
    parser.add_argument(
        "--eval-which",
        choices=("all", "start", "runs"),
        default="all",
        help="eval: the start checkpoint, the trained runs, or both",
    )
    parser.add_argument("--base", default="checkpoints/ring-tiny")
    parser.add_argument("--out", default="runs/c3po_equal_tokens")
    parser.add_argument("--topics", default="percentages")
    parser.add_argument("--levels", default="4")
    parser.add_argument("--train-problems", type=int, default=600)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=300, help="updates per RL run")
    parser.add_argument("--prompts", type=int, default=8, help="L, prompts per update")
    parser.add_argument("--group", type=int, default=8, help="K, responses per prompt")
    parser.add_argument("--max-tokens", type=int, default=640)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--kl-beta", type=float, default=1e-3)
    parser.add_argument("--probe-batches", type=int, default=4, help="batches measuring Φ")
    parser.add_argument("--sft-lr", type=float, default=1e-4, help="the control's lr")
    parser.add_argument(
        "--split", default="validation", help="validation, test, or both (comma list)"
    )
    parser.add_argument("--eval-per-level", type=int, default=1000)
    parser.add_argument("--checkpoint-every", type=int, default=10)
    parser.add_argument("--max-minutes", type=float, default=0, help="stop this part after")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (model, rollouts, eval)")
    parser.add_argument("--eval-batch", type=int, default=64, help="prompts per greedy batch")
    parser.add_argument(
        "--clock-start",
        type=float,
        default=0,
        help="unix time the --*-until stops count from (default: this command's start), so "
        "that parallel processes share one clock",
    )
    for part in ("train", "control", "eval"):
        parser.add_argument(
            f"--{part}-until",
            type=float,
            default=0,
            help=f"stop the {part} part this many seconds after the command started (0: never)",
        )
    parser.add_argument(
        "--report-dir", default="", help="also write report.json, report.md and the plot here"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--plot", default="docs/images/c3po_equal_tokens.png")
    args = parser.parse_args(argv)
    parts = PARTS if args.part == "all" else tuple(args.part.split(","))
    splits = tuple(args.split.split(","))
    arms = tuple(args.arms.split(","))
    for given, allowed, name in (
        (parts, PARTS, "part"),
        (splits, SPLITS, "split"),
        (arms, ARMS, "arm"),
    ):
        if not given or not set(given) <= set(allowed):
            parser.error(f"--{name}: {','.join(given)} is not a comma list of {allowed}")
    args.parts, args.splits, args.arm_list = parts, splits, arms
    return args


# ---- plan -------------------------------------------------------------------------------------


def _problems(args: argparse.Namespace) -> list[Problem]:
    """The training problems (train split only: training_sample never yields a held-out one)."""
    return training_sample(
        args.train_problems,
        1_000,
        levels=tuple(int(x) for x in args.levels.split(",")),
        topic_names=[t for t in args.topics.split(",") if t],
    )


def plan(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Φ = the start model's mean sampled tokens per batch of L×K (what GRPO trains per update)."""
    path = out / "plan.json"
    if path.is_file():
        return json.loads(path.read_text())
    problems = [as_rl_problem(p) for p in _problems(args)]
    model, tokenizer, _ = load_checkpoint(args.base)
    engine = PolicyRolloutEngine(model.float().to(args.device), eos_token_id=tokenizer.eos_token_id)
    sampler = PromptSampler(len(problems), seed=12_345)
    totals = []
    for batch in range(args.probe_batches):
        chosen = [problems[i] for i in sampler.draw(args.prompts)]
        groups = sample_groups(
            engine,
            tokenizer,
            chosen,
            [prompt_ids_for(tokenizer, p) for p in chosen],
            group_size=args.group,
            max_new_tokens=args.max_tokens,
            temperature=1.0,
            seed=98_765 + batch,
            reward_fn=lambda text, problem: 0.0,
        )
        totals.append(sum(len(s.token_ids) for g in groups for s in g.samples))
    record = {
        "budget_tokens": round(statistics.fmean(totals)),
        "probe_tokens_per_batch": totals,
        "problems": len(problems),
        "args": {k: v for k, v in vars(args).items() if k in _PLANNED},
        "test_evaluated": False,
    }
    out.mkdir(parents=True, exist_ok=True)
    _write_json(path, record)
    print(f"plan: Φ = {record['budget_tokens']} (probe batches {totals})", flush=True)
    return record


# The arguments that define the experiment (recorded in plan.json); the rest say how to run it.
_PLANNED = (
    "base",
    "topics",
    "levels",
    "train_problems",
    "seeds",
    "steps",
    "prompts",
    "group",
    "max_tokens",
    "lr",
    "kl_beta",
    "probe_batches",
    "sft_lr",
    "eval_per_level",
)


def _write_json(path: Path, record: dict[str, Any]) -> None:
    """Atomically: parallel processes of one run read and write plan.json."""
    staging = path.with_suffix(f".{os.getpid()}.tmp")
    staging.write_text(json.dumps(record, indent=2))
    os.replace(staging, path)


# ---- RL arms ----------------------------------------------------------------------------------


def _seeds(args: argparse.Namespace) -> list[int]:
    return [int(s) for s in args.seeds.split(",")]


def _config(args: argparse.Namespace, arm: str, budget: int) -> C3POConfig:
    return C3POConfig.ring_tiny(
        algorithm=arm,
        budget_tokens=budget,
        prompts_per_step=args.prompts,
        group_size=args.group,
        max_response_tokens=args.max_tokens,
        lr=args.lr,
        kl_beta=args.kl_beta,
        overflow="drop",
        underfill="accept",
    )


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def train_arm(args, out: Path, arm: str, seed: int, budget: int, deadline: float) -> bool:
    """One RL run, resumed from its last checkpoint; True when it has all its steps."""
    run = out / f"{arm}-seed{seed}"
    metrics = _read_jsonl(run / "metrics.jsonl")
    if metrics and int(metrics[-1]["step"]) >= args.steps and latest_checkpoint(run):
        return True
    problems = [as_rl_problem(p) for p in _problems(args)]
    model, tokenizer, _ = load_checkpoint(args.base)
    sampled_path = run / "sampled.jsonl"

    def on_samples(step: int, samples: list[dict[str, Any]]) -> None:
        # The reward of every sampled response and the prompts drawn (C3PO's logged reward
        # covers only the trained part of a batch; this covers all of it, for both arms).
        row = {
            "step": step,
            "reward": statistics.fmean(s["reward"] for s in samples),
            "problems": sorted({s["problem_id"] for s in samples}),
        }
        with open(sampled_path, "a") as handle:
            handle.write(json.dumps(row) + "\n")

    def forget_after(step: int) -> None:
        # A crash between a step's samples and its checkpoint left rows the resumed run redoes.
        kept = [r for r in _read_jsonl(sampled_path) if r["step"] <= step]
        sampled_path.write_text("".join(json.dumps(r) + "\n" for r in kept))

    trainer = C3POTrainer(
        policy=model.float().to(args.device),
        tokenizer=tokenizer,
        problems=problems,
        config=_config(args, arm, budget),
        output_dir=run,
        observer=FunctionObserver(
            samples=on_samples,
            resumed=forget_after,
            should_stop=lambda: deadline and time.time() > deadline,
        ),
        seed=seed,
        checkpoint_every=args.checkpoint_every,
        keep_checkpoints=1,
        samples_per_step=args.prompts * args.group,
        tensorboard=False,
    )
    trainer.resume()
    result = trainer.train(args.steps)
    trainer.close()
    print(f"{arm} seed {seed}: step {result.step} of {args.steps}", flush=True)
    return result.step >= args.steps


def _complete(args: argparse.Namespace, run: Path) -> bool:
    """An RL run with all its updates and a checkpoint (a cut-off run is neither evaluated
    nor compared: its arms would differ in updates, not only in the algorithm)."""
    metrics = _read_jsonl(run / "metrics.jsonl")
    return bool(metrics) and int(metrics[-1]["step"]) >= args.steps and bool(latest_checkpoint(run))


def _train_seconds(run: Path) -> float:
    return sum(r["step_time_s"] for r in _read_jsonl(run / "metrics.jsonl"))


# ---- the no-RL control ------------------------------------------------------------------------


def train_control(args, out: Path, seed: int, deadline: float) -> bool:
    """Continued SFT on the same problems in the same order for the RL arms' mean wall time."""
    run = out / f"control-seed{seed}"
    if (run / "control.json").is_file():
        return True
    rl_runs = [out / f"{arm}-seed{seed}" for arm in ARMS]
    if not all(_complete(args, r) for r in rl_runs):
        return False
    seconds = statistics.fmean(_train_seconds(r) for r in rl_runs)
    if deadline and time.time() + seconds > deadline:
        return False  # not enough of this part's time left to run it whole
    problems = _problems(args)
    model, tokenizer, _ = load_checkpoint(args.base)
    model = model.float().to(args.device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.sft_lr, weight_decay=0.01)
    sampler = PromptSampler(len(problems), seed)  # the RL trainer's prompt order for this seed
    torch.manual_seed(seed)
    random.seed(seed)
    limit = model.config.max_position_embeddings
    steps, losses, spent = 0, [], 0.0
    while spent < seconds:
        started = time.perf_counter()
        batch = collate(
            [
                encode_problem(tokenizer, problems[i], max_length=limit)
                for i in sampler.draw(args.prompts)
            ],
            pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
        )
        batch = SFTBatch(
            batch.input_ids.to(args.device),
            batch.attention_mask.to(args.device),
            batch.labels.to(args.device),
        )
        loss, cross_entropy = training_loss(model, batch, 0.0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(float(cross_entropy))
        steps += 1
        spent += time.perf_counter() - started
    save_checkpoint(model, tokenizer, run / "final", manifest_extra={"control": {"seed": seed}})
    record = {"seed": seed, "steps": steps, "seconds": spent, "target_seconds": seconds}
    record["loss_first"], record["loss_last"] = losses[0], losses[-1]
    (run / "control.json").write_text(json.dumps(record, indent=2))
    print(f"control seed {seed}: {steps} SFT steps in {spent:.0f} s", flush=True)
    return True


# ---- evaluation -------------------------------------------------------------------------------


def _final_checkpoint(args: argparse.Namespace, run: Path) -> Path | None:
    if run.name.startswith("control"):
        return run / "final" if (run / "control.json").is_file() else None
    return latest_checkpoint(run) if _complete(args, run) else None


def evaluate_run(args, checkpoint: str | Path, target: Path, split: str) -> dict[str, Any]:
    path = target / f"eval-{split}.json"
    if path.is_file():
        return json.loads(path.read_text())
    model, tokenizer, _ = load_checkpoint(checkpoint)
    topics = [t for t in args.topics.split(",") if t]
    report = evaluate_with_ringmodel(
        model.float().to(args.device).eval(),
        tokenizer,
        batch_size=args.eval_batch,
        domains=("math", "science"),
        levels=tuple(int(x) for x in args.levels.split(",")),
        n_per_level=args.eval_per_level,
        seed=0,
        topic_names=topics,
        split=split,
    )
    report["split"] = split
    target.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    o = report["overall"]
    print(f"{target.name} {split}: {o['correct']}/{o['n']}", flush=True)
    return report


def evaluate_all(args, out: Path, split: str, deadline: float) -> None:
    plan_path = out / "plan.json"
    record = json.loads(plan_path.read_text())
    if split == "test":
        if not record["test_evaluated"]:
            record["test_evaluated"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            _write_json(plan_path, record)
        print(f"test split: first evaluated {record['test_evaluated']}", flush=True)
    if args.eval_which in ("all", "start"):
        evaluate_run(args, args.base, out / "start", split)
    if args.eval_which == "start":
        return
    # Seed by seed, so that a cut-off leaves whole seeds (every arm) rather than whole arms.
    for run in [out / f"{arm}-seed{s}" for s in _seeds(args) for arm in (*ARMS, "control")]:
        if deadline and time.time() > deadline:
            return
        checkpoint = _final_checkpoint(args, run)
        if checkpoint is not None:
            evaluate_run(args, checkpoint, run, split)


# ---- report -----------------------------------------------------------------------------------


def mean_interval(values: list[float]) -> dict[str, Any]:
    """Mean and 95% Student-t interval over seeds (n < 2: no interval)."""
    n = len(values)
    mean = statistics.fmean(values) if values else math.nan
    if n < 2:
        return {"mean": mean, "ci95": None, "n": n}
    half = _T95.get(n - 1, 1.96) * statistics.stdev(values) / math.sqrt(n)
    return {"mean": mean, "ci95": [mean - half, mean + half], "n": n}


def run_summary(run: Path, split: str) -> dict[str, Any]:
    metrics = _read_jsonl(run / "metrics.jsonl")
    out: dict[str, Any] = {}
    evaluation = run / f"eval-{split}.json"
    if evaluation.is_file():
        o = json.loads(evaluation.read_text())["overall"]
        out.update(accuracy=o["accuracy"], correct=o["correct"], n=o["n"])
    if metrics:
        tokens = [m["tokens_trained"] for m in metrics]
        out.update(
            steps=len(metrics),
            grad_norm_var=statistics.pvariance([m["grad_norm"] for m in metrics]),
            tokens_mean=statistics.fmean(tokens),
            tokens_cv=statistics.pstdev(tokens) / max(statistics.fmean(tokens), 1e-9),
            step_time_var=statistics.pvariance([m["step_time_s"] for m in metrics]),
            train_seconds=sum(m["step_time_s"] for m in metrics),
            reward_curve=[r["reward"] for r in _read_jsonl(run / "sampled.jsonl")],
        )
    return out


def report(args, out: Path, split: str | None = None) -> dict[str, Any]:
    split = split or args.splits[0]
    record = json.loads((out / "plan.json").read_text())
    seeds = _seeds(args)
    runs = {
        arm: {s: run_summary(out / f"{arm}-seed{s}", split) for s in seeds}
        for arm in (*ARMS, "control")
    }
    paired = [s for s in seeds if all(_complete(args, out / f"{a}-seed{s}") for a in ARMS)]
    # Over every seed that both arms have started (a cut-off one compares its common prefix).
    logs = {
        s: [
            [r["problems"] for r in _read_jsonl(out / f"{a}-seed{s}" / "sampled.jsonl")]
            for a in ARMS
        ]
        for s in seeds
    }
    started = [s for s in seeds if all(logs[s])]
    same_prompts = bool(started) and all(
        logs[s][0][: len(logs[s][1])] == logs[s][1][: len(logs[s][0])] for s in started
    )
    keys = ("accuracy", "grad_norm_var", "tokens_mean", "tokens_cv", "step_time_var")
    table = {
        arm: {k: mean_interval([r[k] for r in by_seed.values() if k in r]) for k in keys}
        for arm, by_seed in runs.items()
    }
    start_path = out / "start" / f"eval-{split}.json"
    start = {"accuracy": math.nan, "correct": 0, "n": 0}  # a cut-off before any evaluation
    if start_path.is_file():
        start = json.loads(start_path.read_text())["overall"]
    result = {
        "split": split,
        "test_evaluated": record["test_evaluated"],
        "budget_tokens": record["budget_tokens"],
        "steps": args.steps,
        "prompts": args.prompts,
        "group": args.group,
        "seeds": seeds,
        "seeds_with_both_arms_complete": paired,
        "same_prompts_in_same_order": same_prompts,
        "start": {
            "accuracy": start["accuracy"],
            "correct": start["correct"],
            "n": start["n"],
            "ci95": list(wilson_interval(start["correct"], start["n"])) if start["n"] else None,
        },
        "arms": table,
        "runs": runs,
    }
    (out / f"report-{split}.json").write_text(json.dumps(result, indent=2))
    plot_path = Path(args.plot)
    if args.report_dir:
        extra = Path(args.report_dir)
        extra.mkdir(parents=True, exist_ok=True)
        (extra / f"report-{split}.json").write_text(json.dumps(result, indent=2))
        with open(extra / "report.md", "a") as handle:
            handle.write(f"## {split}\n\n" + markdown_table(result, keys) + "\n")
        plot_path = extra / f"plot-{split}.png"
    print(f"\nΦ = {record['budget_tokens']}; split {split}; seeds {seeds}")
    print(f"start: {start['correct']}/{start['n']} = {start['accuracy']:.3f}")
    print(f"seeds with both RL arms complete: {paired}")
    print(f"same prompts in the same order (c3po vs grpo, every seed): {same_prompts}")
    for arm, row in table.items():
        cells = []
        for k in keys:
            cell = row[k]
            if not cell["n"]:
                continue
            ci = cell["ci95"]
            interval = f" [{ci[0]:.4g}, {ci[1]:.4g}]" if ci else ""
            cells.append(f"{k} {cell['mean']:.4g}{interval}")
        print(f"{arm:8s} " + "; ".join(cells))
    try:
        plot(runs, plot_path, record["budget_tokens"], start["accuracy"], split)
        print(f"plot: {plot_path}")
    except ImportError as error:  # a machine without matplotlib still gets the numbers
        print(f"no plot: {error}")
    return result


def markdown_table(result: dict[str, Any], keys: tuple[str, ...]) -> str:
    """The report as a markdown table: per arm, mean [95% t-interval] over seeds (n seeds)."""
    start = result["start"]
    lines = [
        f"Split **{result['split']}** (test evaluated: {result['test_evaluated']}); "
        f"Φ = {result['budget_tokens']}; {result['steps']} updates of "
        f"{result['prompts']}×{result['group']}; seeds {result['seeds']} "
        f"(both RL arms complete: {result['seeds_with_both_arms_complete']}); "
        f"same prompts in the same order: {result['same_prompts_in_same_order']}.",
        "",
        f"Start checkpoint: {start['correct']}/{start['n']} = {start['accuracy']:.3f} "
        f"(Wilson 95% {start['ci95']}).",
        "",
        "| arm | " + " | ".join(keys) + " |",
        "|---|" + "---|" * len(keys),
    ]
    for arm, row in result["arms"].items():
        cells = []
        for k in keys:
            cell = row[k]
            if not cell["n"]:
                cells.append("–")
                continue
            ci = cell["ci95"]
            interval = f" [{ci[0]:.4g}, {ci[1]:.4g}]" if ci else ""
            cells.append(f"{cell['mean']:.4g}{interval} (n={cell['n']})")
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(
    runs: dict[str, dict[int, dict[str, Any]]],
    path: Path,
    budget: int,
    start_accuracy: float,
    split: str,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (curve, bars) = plt.subplots(1, 2, figsize=(13, 4.5))
    for i, arm in enumerate(ARMS):
        curves = [r["reward_curve"] for r in runs[arm].values() if r.get("reward_curve")]
        if not curves:
            continue
        length = min(len(c) for c in curves)
        mean = [statistics.fmean(c[t] for c in curves) for t in range(length)]
        for c in curves:
            curve.plot(range(1, len(c) + 1), c, color=f"C{i}", alpha=0.25)
        curve.plot(range(1, length + 1), mean, color=f"C{i}", label=f"{arm} (mean of seeds)")
    curve.set_xlabel("update")
    curve.xaxis.get_major_locator().set_params(integer=True)
    curve.set_ylabel("reward of every sampled response")
    curve.set_title(f"reward per update (Φ = {budget})")
    curve.set_ylim(0, 1.05)
    curve.grid(alpha=0.3)
    curve.legend()
    for i, arm in enumerate((*ARMS, "control")):
        values = [r["accuracy"] for r in runs[arm].values() if "accuracy" in r]
        if values:
            cell = mean_interval(values)
            err = None
            if cell["ci95"]:
                err = [[cell["mean"] - cell["ci95"][0]], [cell["ci95"][1] - cell["mean"]]]
            bars.bar(i, cell["mean"], yerr=err, capsize=4, color=f"C{i}")
            bars.scatter([i] * len(values), values, color="k", s=12, zorder=3)
    bars.axhline(start_accuracy, color="grey", linestyle="--", label="start checkpoint")
    bars.legend(loc="lower right")
    bars.set_title(f"{split} accuracy after training (dots: seeds)")
    bars.set_xticks(range(3))
    bars.set_xticklabels([*ARMS, "control (SFT)"])
    bars.set_ylabel("accuracy (mean, 95% t-interval over seeds)")
    bars.set_ylim(0, 1.05)
    bars.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    started = args.clock_start or time.time()
    deadline = started + args.max_minutes * 60 if args.max_minutes else 0.0

    def until(seconds: float) -> float:
        """The earlier of --max-minutes and this part's own stop (0: none)."""
        own = started + seconds if seconds else 0.0
        return min(d for d in (deadline, own) if d) if (deadline or own) else 0.0

    parts = args.parts
    record = plan(args, out)
    if "train" in parts:
        stop = until(args.train_until)
        done = True
        for seed in _seeds(args):
            for arm in args.arm_list:
                done = done and train_arm(args, out, arm, seed, record["budget_tokens"], stop)
            if not done:
                break  # out of time: later parts use the seeds that finished
    if "control" in parts:
        for seed in _seeds(args):
            train_control(args, out, seed, until(args.control_until))
    if "eval" in parts:
        for split in args.splits:
            evaluate_all(args, out, split, until(args.eval_until))
    if "report" in parts:
        if args.report_dir:
            (Path(args.report_dir) / "report.md").unlink(missing_ok=True)
        for split in args.splits:
            report(args, out, split)


if __name__ == "__main__":
    main()
