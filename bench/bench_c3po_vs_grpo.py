"""C3PO against its GRPO baseline on ring-tiny, step for step (docs/c3po-spec.md §7, paper Fig. 7–8).

Two trainers start from the same checkpoint with the same seed, prompts and hyper-parameters; the
only differences are the algorithm's: C3PO trains each update on exactly Φ tokens and divides by
Φ, GRPO trains on every sampled token and divides by their count. Their steps are INTERLEAVED in
this one process (C3PO step 1, GRPO step 1, C3PO step 2, ...), so both see the same machine load.
Both sample fresh rollouts every step (C3PO with overflow="drop"), so "step" means the same
thing for both. Printed: tokens per step (C3PO's is constant), grad-norm mean/variance/max,
reward over the run, step-time variance and training tokens/s; plotted to
docs/images/c3po_vs_grpo.png; raw per-step metrics to --out/metrics.json.

Run (about 25 minutes on one busy core at the defaults):
    .venv/bin/python -m bench.bench_c3po_vs_grpo --base checkpoints/ring-tiny --steps 30
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from ringmodel import load_checkpoint
from training.c3po.config import C3POConfig
from training.c3po.data import as_rl_problem, curate, prompt_ids_for
from training.c3po.rollout import PolicyRolloutEngine, sample_groups
from training.c3po.trainer import C3POTrainer
from training.observer import FunctionObserver
from training.problems import training_sample


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="checkpoints/ring-tiny")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--prompts", type=int, default=8, help="L, prompts per step")
    parser.add_argument("--group", type=int, default=8, help="K, responses per prompt")
    parser.add_argument("--budget", type=int, default=None, help="Φ (default: ~¾ of step 0)")
    parser.add_argument("--max-tokens", type=int, default=640)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--levels", default="2,3,4")
    parser.add_argument("--problems", type=int, default=400)
    parser.add_argument("--curate", type=int, default=96, help="problems to curate (0: none)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/bench_c3po_vs_grpo")
    parser.add_argument("--plot", default="docs/images/c3po_vs_grpo.png")
    return parser.parse_args()


def summary(rows: list[dict[str, float]]) -> dict[str, float]:
    def col(key: str) -> list[float]:
        return [r[key] for r in rows]

    tokens, grads, times = col("tokens_trained"), col("grad_norm"), col("step_time_s")
    rewards = col("reward_mean")
    third = max(1, len(rows) // 3)
    return {
        "tokens_mean": statistics.fmean(tokens),
        "tokens_cv": statistics.pstdev(tokens) / max(statistics.fmean(tokens), 1e-9),
        "tokens_min": min(tokens),
        "tokens_max": max(tokens),
        "grad_mean": statistics.fmean(grads),
        "grad_var": statistics.pvariance(grads),
        "grad_max": max(grads),
        "reward_first_third": statistics.fmean(rewards[:third]),
        "reward_last_third": statistics.fmean(rewards[-third:]),
        "step_time_mean": statistics.fmean(times),
        "step_time_std": statistics.pstdev(times),
        "train_tokens_per_s": sum(tokens) / sum(times),
        "entropy_last": rows[-1]["entropy"],
    }


def plot(results: dict[str, list[dict[str, float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("tokens_trained", "tokens trained per step"),
        ("grad_norm", "gradient norm (before clipping)"),
        ("reward_mean", "reward (trained responses)"),
        ("step_time_s", "step time [s]"),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    for ax, (key, title) in zip(axes.flat, panels, strict=True):
        for name, rows in results.items():
            ax.plot([r["step"] for r in rows], [r[key] for r in rows], label=name, marker=".")
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("ring-tiny: C3PO vs GRPO, same start, prompts and steps (interleaved)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    levels = tuple(int(x) for x in args.levels.split(","))
    problems = [
        as_rl_problem(p) for p in training_sample(args.problems, args.seed + 11, levels=levels)
    ]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.curate:
        # Both runs train on the problems the start model solves sometimes but not always
        # (docs/c3po-spec.md §6), so that most groups carry a learning signal.
        model, tokenizer, _ = load_checkpoint(args.base)
        report = curate(
            problems,
            engine=PolicyRolloutEngine(model.float(), eos_token_id=tokenizer.eos_token_id),
            tokenizer=tokenizer,
            group_size=4,
            max_new_tokens=args.max_tokens,
            seed=args.seed,
            max_estimated=args.curate,
            held_out_per_mille=0,
        )
        print(
            f"curation: {len(report.train)} of {args.curate} kept, "
            f"{len(report.always_solved)} always and {len(report.never_solved)} never solved"
        )
        problems = report.train
    common = dict(
        prompts_per_step=args.prompts,
        group_size=args.group,
        max_response_tokens=args.max_tokens,
        lr=args.lr,
        overflow="drop",
    )

    budget = args.budget
    if budget is None:
        # Φ from the start model's own rollouts: ~¾ of one step's sampled tokens, so that most
        # steps hold Φ and the cut is exercised; underfill="carry" covers the rest.
        model, tokenizer, _ = load_checkpoint(args.base)
        chosen = problems[: args.prompts]
        groups = sample_groups(
            PolicyRolloutEngine(model.float(), eos_token_id=tokenizer.eos_token_id),
            tokenizer,
            chosen,
            [prompt_ids_for(tokenizer, p) for p in chosen],
            group_size=args.group,
            max_new_tokens=args.max_tokens,
            temperature=1.0,
            seed=args.seed + 1000,
            reward_fn=lambda text, problem: 0.0,
        )
        budget = int(0.75 * sum(len(s.token_ids) for g in groups for s in g.samples))
    print(f"Φ = {budget} tokens; L = {args.prompts}, K = {args.group}")

    results: dict[str, list[dict[str, float]]] = {"c3po": [], "grpo": []}
    trainers = {}
    for name in ("c3po", "grpo"):
        model, tokenizer, _ = load_checkpoint(args.base)
        config = C3POConfig.ring_tiny(algorithm=name, budget_tokens=budget, **common)
        trainers[name] = C3POTrainer(
            policy=model.float(),
            tokenizer=tokenizer,
            problems=problems,
            config=config,
            output_dir=out / name,
            observer=FunctionObserver(metrics=lambda step, m, n=name: results[n].append(m)),
            seed=args.seed,
            checkpoint_every=0,
        )
    started = time.perf_counter()
    for step in range(1, args.steps + 1):
        for name, trainer in trainers.items():
            trainer.train_step()
            m = results[name][-1]
            print(
                f"{name:5s} step {step:3d}: tokens {m['tokens_trained']:6.0f} "
                f"|g| {m['grad_norm']:.3f} reward {m['reward_mean']:.3f} "
                f"H {m['entropy']:.3f} {m['step_time_s']:.1f}s",
                flush=True,
            )
    for trainer in trainers.values():
        trainer.close()
    elapsed = time.perf_counter() - started

    table = {name: summary(rows) for name, rows in results.items()}
    (out / "metrics.json").write_text(
        json.dumps({"budget": budget, "args": vars(args), "results": results, "summary": table})
    )
    print(f"\n{args.steps} interleaved steps each, {elapsed / 60:.1f} min, Φ = {budget}")
    keys = list(table["c3po"])
    print(f"{'':22s}{'C3PO':>12s}{'GRPO':>12s}{'GRPO/C3PO':>12s}")
    for key in keys:
        c, g = table["c3po"][key], table["grpo"][key]
        ratio = g / c if abs(c) > 1e-12 else float("nan")
        print(f"{key:22s}{c:12.4g}{g:12.4g}{ratio:12.3g}")
    plot(results, Path(args.plot))
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
