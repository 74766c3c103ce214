"""What a short C3PO job buys ring-tiny where it is weak: held-out accuracy before and after.

1. Held-out accuracy of the start checkpoint on the hardest levels at which it solves anything
   (ring-tiny: levels 1 and 2 — at 3 and 4 it solves nothing, and RL needs a group with at least
   one correct response to learn from), math and science, greedy, with 95% Wilson intervals (`training.evaluate.evaluate_with_ringmodel`: the
   generators' held-out split, never trained on).
2. A staged C3PO job (`training.c3po.pipeline.run_job`) on training problems of those levels:
   stage 1 math, stage 2 science, each curated (problems the start model always or never solves
   in K rollouts are dropped) and stopped by the clock — `--minutes` in all, split by
   `--math-share`; the stage-2 time starts after stage 1 has stopped.
3. The same held-out evaluation of the job's final checkpoint; the table prints both with
   intervals, and docs/images/c3po_gain.png plots them.

Run (about 30 minutes of training plus two evaluations):
    .venv/bin/python -m bench.bench_c3po_gain --base checkpoints/ring-tiny --minutes 30
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from ringmodel import load_checkpoint
from training.c3po.config import C3POConfig
from training.c3po.pipeline import JobSpec, StageSpec, run_job
from training.evaluate import evaluate_with_ringmodel, format_table
from training.observer import FunctionObserver
from training.problems import DOMAINS, topics, training_sample


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="checkpoints/ring-tiny")
    parser.add_argument("--minutes", type=float, default=30.0, help="training time, all stages")
    parser.add_argument("--math-share", type=float, default=0.6)
    parser.add_argument("--levels", default="1,2", help="ring-tiny solves nothing above 2")
    parser.add_argument(
        "--topics",
        default="",
        help="train and evaluate on these topics only, comma-separated (e.g. multiple_choice: "
        "a problem set where ring-tiny is weak); default all",
    )
    parser.add_argument("--eval-per-level", type=int, default=50)
    parser.add_argument("--train-problems", type=int, default=600, help="per domain")
    parser.add_argument("--budget", type=int, default=4096)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=640)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument(
        "--kl-beta", type=float, default=None, help="KL coefficient (default: the preset's)"
    )
    parser.add_argument("--curation-k", type=int, default=4)
    parser.add_argument("--max-curated", type=int, default=96)
    parser.add_argument("--no-curation", action="store_true", help="keep every problem")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/bench_c3po_gain")
    parser.add_argument("--plot", default="docs/images/c3po_gain.png")
    parser.add_argument(
        "--replot", metavar="REPORT_JSON", help="only draw --plot again from a run's report.json"
    )
    return parser.parse_args()


def evaluate(
    path: str, levels: tuple[int, ...], n: int, seed: int, topic_names: list[str] | None
) -> dict[str, Any]:
    model, tokenizer, _ = load_checkpoint(path)
    return evaluate_with_ringmodel(
        model.float(),
        tokenizer,
        domains=domains_of(topic_names),
        levels=levels,
        n_per_level=n,
        seed=seed,
        checkpoint=path,
        topic_names=topic_names,
    )


def domains_of(topic_names: list[str] | None) -> tuple[str, ...]:
    """The domains that have any of the topics (all domains when no topics are chosen)."""
    if topic_names is None:
        return DOMAINS
    return tuple(d for d in DOMAINS if set(topics(d)) & set(topic_names))


def plot(
    before: dict[str, Any],
    after: dict[str, Any],
    path: Path,
    subject: str = "",
    history: list[dict[str, float]] | None = None,
) -> None:
    """Held-out accuracy before and after (left) and, given the job's metrics, the training
    reward of every stage over its steps (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [(r["domain"], r["level"]) for r in before["results"]] + [("all", 0)]

    def rows(report: dict[str, Any]) -> list[dict[str, Any]]:
        by = {(r["domain"], r["level"]): r for r in report["results"]}
        return [by[k] if k != ("all", 0) else report["overall"] for k in keys]

    fig, axes = plt.subplots(1, 2 if history else 1, figsize=(15 if history else 9, 4.5))
    ax = axes[0] if history else axes
    width = 0.38
    for offset, (label, report) in (
        (-width / 2, ("before", before)),
        (width / 2, ("after", after)),
    ):
        data = rows(report)
        acc = [r["accuracy"] for r in data]
        low = [r["accuracy"] - r["ci95"][0] for r in data]
        high = [r["ci95"][1] - r["accuracy"] for r in data]
        xs = [i + offset for i in range(len(keys))]
        ax.bar(xs, acc, width, yerr=[low, high], capsize=3, label=label)
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels([f"{d} L{lvl}" if d != "all" else "overall" for d, lvl in keys])
    ax.set_ylabel("held-out accuracy (greedy), 95% Wilson CI")
    levels = sorted({r["level"] for r in before["results"]})
    ax.set_title(
        f"ring-tiny before / after a short C3PO job ({subject}levels {', '.join(map(str, levels))})"
    )
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    if history:
        curve = axes[1]
        for stage in sorted({int(h["stage_index"]) for h in history}):
            points = [h for h in history if int(h["stage_index"]) == stage]
            steps = [h["step"] for h in points]
            rewards = [h["reward_mean"] for h in points]
            window = 25
            smooth = [
                statistics.fmean(rewards[max(0, i - window + 1) : i + 1])
                for i in range(len(rewards))
            ]
            curve.plot(steps, rewards, alpha=0.2, color=f"C{stage}")
            curve.plot(
                steps,
                smooth,
                color=f"C{stage}",
                label=f"stage {stage + 1} (mean of {window} steps)",
            )
        curve.set_xlabel("step within its stage")
        curve.set_ylabel("training reward (mean over the step's responses)")
        curve.set_title("training reward per step")
        curve.set_ylim(0, 1.05)
        curve.legend()
        curve.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def replot(report_path: Path, plot_path: Path) -> None:
    """The plot again from a finished run's report.json."""
    report = json.loads(report_path.read_text())
    topic_names = [t for t in report["args"]["topics"].split(",") if t]
    subject = f"{', '.join(topic_names)}, " if topic_names else ""
    plot(report["before"], report["after"], plot_path, subject, report["history"])


def main() -> None:
    args = parse_args()
    if args.replot:
        replot(Path(args.replot), Path(args.plot))
        return
    torch.set_num_threads(args.threads)
    levels = tuple(int(x) for x in args.levels.split(","))
    topic_names = [t.strip() for t in args.topics.split(",") if t.strip()] or None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    before = evaluate(args.base, levels, args.eval_per_level, args.seed, topic_names)
    print(format_table(before), flush=True)
    print(f"evaluation took {time.perf_counter() - started:.0f} s", flush=True)

    problems: list[Any] = []
    for domain in domains_of(topic_names):
        problems += training_sample(
            args.train_problems,
            args.seed + 3,
            domains=(domain,),
            levels=levels,
            topic_names=topic_names,
        )
    config = C3POConfig.ring_tiny(
        budget_tokens=args.budget,
        prompts_per_step=args.prompts,
        group_size=args.group,
        max_response_tokens=args.max_tokens,
        lr=args.lr,
        **({} if args.kl_beta is None else {"kl_beta": args.kl_beta}),
    )
    # docs/c3po-spec.md's stages: math, then science; a stage whose domain has none of the chosen topics
    # is left out (and the clock is all the other's).
    stages = [
        stage
        for stage in (
            StageSpec("math", ("math",), 10_000),
            StageSpec("science", ("science", "code"), 10_000),
        )
        if stage.domains[0] in domains_of(topic_names)
    ]
    spec = JobSpec(
        base_checkpoint=args.base,
        output_dir=str(out / "job"),
        problems=problems,
        stages=stages,
        config=config,
        seed=args.seed,
        checkpoint_every=5,
        curate_with_rollouts=not args.no_curation,
        curation_group_size=args.curation_k,
        max_curated_problems=args.max_curated,
    )
    history: list[dict[str, float]] = []

    def on_metrics(step: int, m: dict[str, float]) -> None:
        history.append({"step": step, **m})
        print(
            f"step {step:3d} [{int(m['stage_index']) + 1}] reward {m['reward_mean']:.3f} "
            f"tokens {m['tokens_trained']:.0f} H {m['entropy']:.3f} {m['step_time_s']:.0f}s",
            flush=True,
        )

    # Stage 1 runs until its share of the clock is spent (all of it when it is the only stage);
    # re-running the job with stage 1's step count fixed to what it reached completes it and
    # starts stage 2 with the rest.
    train_started = time.perf_counter()
    share = args.math_share if len(stages) == 2 else 1.0
    deadline = train_started + args.minutes * 60 * share
    observer = FunctionObserver(
        metrics=on_metrics,
        # The trainer's own per-step line repeats on_metrics; keep the other events.
        log=lambda line: None if line.startswith("step ") else print(line, flush=True),
        should_stop=lambda: time.perf_counter() > deadline,
    )
    result = run_job(spec, observer)
    if len(stages) == 2:
        stage1_steps = result.stages[0].steps
        spec = dataclasses.replace(
            spec, stages=[dataclasses.replace(stages[0], steps=stage1_steps), stages[1]]
        )
        deadline = train_started + args.minutes * 60
        result = run_job(spec, observer)
    train_minutes = (time.perf_counter() - train_started) / 60
    assert result.final_checkpoint is not None, "the job trained nothing"

    after = evaluate(result.final_checkpoint, levels, args.eval_per_level, args.seed, topic_names)
    print(format_table(after))
    report = {
        "args": vars(args),
        "train_minutes": train_minutes,
        "job": result.to_dict(),
        "before": before,
        "after": after,
        "history": history,
    }
    (out / "report.json").write_text(json.dumps(report, indent=2))
    print(
        f"\nC3PO job: {train_minutes:.1f} min, stages {[(s.name, s.steps) for s in result.stages]}"
    )
    print(f"{'':16s}{'before':>22s}{'after':>22s}")
    by_after = {(r["domain"], r["level"]): r for r in after["results"]}
    for r in before["results"] + [dict(before["overall"], domain="overall", level="")]:
        a = by_after.get((r["domain"], r["level"]), after["overall"])
        print(
            f"{r['domain']:>9s} {r['level']!s:>4s}  "
            f"{r['accuracy']:6.3f} [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]  "
            f"{a['accuracy']:6.3f} [{a['ci95'][0]:.3f}, {a['ci95'][1]:.3f}]"
        )
    plot(
        before,
        after,
        Path(args.plot),
        f"{', '.join(topic_names)}, " if topic_names else "",
        history,
    )
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
