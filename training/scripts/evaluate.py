"""Held-out accuracy of a checkpoint per domain and level, with 95% Wilson intervals, as JSON.

Run from the repository root (vLLM, as the inference workers serve the model; ~2 minutes for
ring-tiny on two CPU cores including the engine start):

    .venv/bin/python -m training.scripts.evaluate --checkpoint checkpoints/ring-tiny \
        --n-per-level 100 --out eval_vllm.json

`--phrasings` measures the same held-out problems twice, in the generators' wording and in
wordings training never saw (`training.problems.phrasings`), and prints both accuracies per
domain and level (and per topic) with their ratio; the JSON keeps one record per completion with
its confidence (`training.confidence`). `--temperature 0.6 --max-new-tokens 768` samples as the
site does (what the confidence threshold is calibrated on).

`--engine ringmodel` decodes with ringmodel's own batched sampling instead (no vLLM needed).
Decoding is greedy with room for the longest worked solution; the problems are the held-out
`eval_set`s, which share no problem with the training stream.
"""

from __future__ import annotations

import os

# Set before torch or vLLM start: a 1 GiB KV cache is plenty for ring-tiny, and passive OpenMP
# waiting keeps two threads from stalling each other on a shared machine.
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

from training.evaluate import (  # noqa: E402
    evaluate_phrasings_with_vllm,
    evaluate_with_ringmodel,
    evaluate_with_vllm,
    format_phrasings_table,
    format_table,
)
from training.problems import DOMAINS, LEVELS  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="checkpoints/ring-tiny")
    parser.add_argument("--engine", choices=("vllm", "ringmodel"), default="vllm")
    parser.add_argument("--n-per-level", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--domains", default=",".join(DOMAINS))
    parser.add_argument("--levels", default=",".join(str(level) for level in LEVELS))
    parser.add_argument("--examples", type=int, default=0, help="completions kept in the JSON")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None, help="write the JSON report here")
    parser.add_argument(
        "--phrasings", action="store_true", help="generator wording against unseen wordings"
    )
    parser.add_argument("--temperature", type=float, default=0.0, help="with --phrasings")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="with --phrasings")
    parser.add_argument(
        "--keep-logprobs", action="store_true", help="with --phrasings: every token's log-prob"
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    domains = tuple(args.domains.split(","))
    levels = tuple(int(level) for level in args.levels.split(","))
    if args.phrasings:
        if args.engine != "vllm":
            raise SystemExit("--phrasings runs through vLLM only")
        report = evaluate_phrasings_with_vllm(
            args.checkpoint,
            domains=domains,
            levels=levels,
            n_per_level=args.n_per_level,
            seed=args.seed,
            temperature=args.temperature,
            max_new_tokens=args.max_new_tokens,
            keep_logprobs=args.keep_logprobs,
        )
        print(format_phrasings_table(report))
        print(f"{report['engine']}: {report['seconds']} s")
    elif args.engine == "vllm":
        report = evaluate_with_vllm(
            args.checkpoint,
            domains=domains,
            levels=levels,
            n_per_level=args.n_per_level,
            seed=args.seed,
            examples=args.examples,
        )
    else:
        import torch

        from ringmodel import load_checkpoint

        torch.set_num_threads(args.threads)
        model, tokenizer, _ = load_checkpoint(args.checkpoint)
        report = evaluate_with_ringmodel(
            model,
            tokenizer,
            domains=domains,
            levels=levels,
            n_per_level=args.n_per_level,
            seed=args.seed,
            checkpoint=args.checkpoint,
            examples=args.examples,
        )
    if not args.phrasings:
        print(format_table(report))
        print(f"{report['engine']}: {report['seconds']} s")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
