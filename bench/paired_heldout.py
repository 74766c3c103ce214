"""Two checkpoints on the same held-out problems, problem by problem (McNemar's exact test).

Accuracy intervals of two separate evaluations overlap long before a change is noise; a paired
comparison asks only about the problems on which the two checkpoints disagree. Greedy, ringmodel.

Run:
    .venv/bin/python -m bench.paired_heldout --before checkpoints/ring-tiny \\
        --after runs/…/step-000448 --domain science --levels 3,4 --topics multiple_choice
"""

from __future__ import annotations

import argparse
import math

import torch

from ringmodel import load_checkpoint
from training.answers import reward
from training.evaluate import evaluate_with_ringmodel, evaluation_problems


def mcnemar_exact_p(only_first: int, only_second: int) -> float:
    """Two-sided exact McNemar p-value from the two discordant counts."""
    m = only_first + only_second
    if m == 0:
        return 1.0
    tail = sum(math.comb(m, k) for k in range(min(only_first, only_second) + 1)) / 2**m
    return min(1.0, 2 * tail)


def solved(checkpoint: str, args: argparse.Namespace, levels: list[int], topics) -> list[bool]:
    model, tokenizer, _ = load_checkpoint(checkpoint)
    report = evaluate_with_ringmodel(
        model,
        tokenizer,
        domains=[args.domain],
        levels=levels,
        n_per_level=args.n_per_level,
        seed=args.seed,
        topic_names=topics,
        examples=10**9,  # every completion, in problem order
    )
    problems = evaluation_problems([args.domain], levels, args.n_per_level, args.seed, topics)
    by_level = ", ".join(f"L{r['level']} {r['correct']}/{r['n']}" for r in report["results"])
    print(f"{checkpoint}: {by_level}")
    return [
        reward(e["completion"], p) > 0 for e, p in zip(report["examples"], problems, strict=True)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True)
    parser.add_argument("--after", required=True)
    parser.add_argument("--domain", default="science")
    parser.add_argument("--levels", default="3,4")
    parser.add_argument("--topics", default="", help="comma-separated; all topics when empty")
    parser.add_argument("--n-per-level", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    levels = [int(x) for x in args.levels.split(",")]
    topics = [t for t in args.topics.split(",") if t] or None

    before = solved(args.before, args, levels, topics)
    after = solved(args.after, args, levels, topics)
    only_before = sum(b and not a for b, a in zip(before, after, strict=True))
    only_after = sum(a and not b for b, a in zip(before, after, strict=True))
    print(
        f"n = {len(before)}: {sum(before)} -> {sum(after)} right; only before {only_before}, "
        f"only after {only_after}; McNemar exact two-sided p = "
        f"{mcnemar_exact_p(only_before, only_after):.3f}"
    )


if __name__ == "__main__":
    main()
