"""What the log-prob-only passes save by not computing the per-token entropy.

C3PO's reference pass and π_old pass (training.c3po.update.fill_logprobs) keep only the log-probs
of the response tokens; the update pass also needs the entropy. This times, on CPU, without
gradient, exactly the reference pass's forward (training.c3po.update.response_forward) with
entropy=True (as before) and entropy=False (as now), in ABBA order (with, without, without, with
per round), and reports the median over rounds of the per-pair ratio time(without)/time(with).

Two workloads:
  * model — the whole forward of the checkpoint (ring-tiny: a 118-token vocabulary, so the
            head is a sliver of the forward and the saving is small);
  * head  — the output head alone (ringmodel.modeling_bailing_moe.score_tokens) at Ring-lite's
            vocabulary (126,464) and a chunked head, where the vocabulary-wide exp·logp the
            entropy costs is a real share of the pass.

Run:  .venv/bin/python -m bench.bench_logprob_entropy [--base checkpoints/ring-tiny]
          [--batch 8 --prompt 64 --response 192 --rounds 7 --threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch

from ringmodel import load_checkpoint
from ringmodel.modeling_bailing_moe import score_tokens
from training.c3po.update import pack, response_forward

RING_LITE_VOCAB = 126464


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="checkpoints/ring-tiny")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--prompt", type=int, default=64)
    parser.add_argument("--response", type=int, default=192)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--head-tokens", type=int, default=256, help="positions the head scores")
    parser.add_argument("--head-dim", type=int, default=256, help="hidden width for the head run")
    parser.add_argument("--chunk", type=int, default=64, help="head chunk (head_chunk_tokens)")
    return parser.parse_args()


def seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def abba(with_entropy: Callable[[], object], without: Callable[[], object], rounds: int) -> dict:
    with_entropy(), without()  # warm-up
    ratios, times_with, times_without = [], [], []
    for _ in range(rounds):
        a1 = seconds(with_entropy)
        b1 = seconds(without)
        b2 = seconds(without)
        a2 = seconds(with_entropy)
        ratios.append((b1 + b2) / (a1 + a2))
        times_with += [a1, a2]
        times_without += [b1, b2]
    return {
        "with_ms": 1000 * statistics.median(times_with),
        "without_ms": 1000 * statistics.median(times_without),
        "ratio": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
    }


def model_workload(args: argparse.Namespace) -> dict:
    model, _, _ = load_checkpoint(args.base)
    model.eval()
    vocab = model.config.vocab_size
    generator = torch.Generator().manual_seed(0)
    pairs = [
        (
            torch.randint(1, vocab, (args.prompt,), generator=generator).tolist(),
            torch.randint(1, vocab, (args.response,), generator=generator).tolist(),
        )
        for _ in range(args.batch)
    ]
    packed = pack(pairs, pad_id=0)

    def run(entropy: bool) -> Callable[[], object]:
        @torch.no_grad()
        def forward() -> object:
            return response_forward(model, packed, 1.0, router=False, entropy=entropy)

        return forward

    return abba(run(True), run(False), args.rounds)


def head_workload(args: argparse.Namespace) -> dict:
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(1, args.head_tokens, args.head_dim, generator=generator)
    weight = torch.randn(RING_LITE_VOCAB, args.head_dim, generator=generator) / args.head_dim**0.5
    ids = torch.randint(0, RING_LITE_VOCAB, (1, args.head_tokens), generator=generator)

    def run(entropy: bool) -> Callable[[], object]:
        @torch.no_grad()
        def head() -> object:
            return score_tokens(hidden, weight, ids, chunk_tokens=args.chunk, with_entropy=entropy)

        return head

    return abba(run(True), run(False), args.rounds)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    rows = {
        f"model {args.base} B={args.batch} S={args.prompt}+{args.response}": model_workload(args),
        f"head V={RING_LITE_VOCAB} D={args.head_dim} T={args.head_tokens} chunk={args.chunk}": (
            head_workload(args)
        ),
    }
    print(f"threads={args.threads} rounds={args.rounds} load_avg_1min={os.getloadavg()[0]:.1f}")
    print(f"{'workload':58s}{'with ms':>10s}{'without ms':>12s}{'ratio':>8s}{'range':>16s}")
    for name, r in rows.items():
        spread = f"{r['ratio_min']:.3f}-{r['ratio_max']:.3f}"
        print(
            f"{name:58s}{r['with_ms']:10.1f}{r['without_ms']:12.1f}{r['ratio']:8.3f}{spread:>16s}"
        )


if __name__ == "__main__":
    main()
