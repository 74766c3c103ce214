"""Reproduce ring-tiny from scratch: Long-CoT SFT on generated problems, then ship a checkpoint.

Run from the repository root (about 2.5 hours on two busy CPU cores):

    .venv/bin/python -m training.scripts.train_ring_tiny

It trains ringmodel's ring-tiny configuration from random weights in epochs of
`--steps-per-epoch` AdamW steps (an epoch is that many steps over a freshly generated part of the
seeded problem stream), saving `<output-dir>/epoch-<k>` after each with its mean token entropy on
the RL prompts, and writing `<output-dir>/sft_log.json`. `--epochs` is a list of successive
targets, "8,20,32": train to epoch 8 under a cosine schedule spanning 8 epochs, then extend the
same run to 20 epochs with the cosine now spanning 20 (the learning rate rises again at the
extension), then to 32. That is how the shipped ring-tiny was trained: the first 8-epoch run was
too short to learn the column procedures, so it was extended twice, and the default reproduces
exactly that. A killed run resumes where it stopped when started again with the same arguments.
Finally the checkpoint of `--ship-epoch` (default: the last) is re-saved to `--ship-to` (default
`checkpoints/ring-tiny`) with every epoch's entropy and loss in its manifest. Measure it
afterwards with `python -m training.scripts.evaluate`.
"""

from __future__ import annotations

import os

# Before torch loads OpenMP: on a shared machine, busy-waiting OpenMP threads stall each other
# whenever one is descheduled (measured here: 2 threads went from ~2,300 to ~65 tokens/s).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from ringmodel import load_checkpoint, read_manifest, save_checkpoint  # noqa: E402
from training.sft import LOG_NAME, SFTConfig, train_sft  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", default="runs/ring-tiny-sft")
    parser.add_argument(
        "--init-checkpoint",
        default=None,
        help="continue from this checkpoint's weights (fresh optimiser and schedule) "
        "instead of training from random weights",
    )
    parser.add_argument("--epochs", default="8,20,32", help="successive epoch targets")
    parser.add_argument("--steps-per-epoch", type=int, default=250)
    parser.add_argument("--tokens-per-batch", type=int, default=2048)
    parser.add_argument("--learning-rate", type=float, default=5e-3)
    parser.add_argument("--warmup-steps", type=int, default=50)
    parser.add_argument("--level-weights", default="0.35,0.3,0.2,0.15")
    parser.add_argument("--early-level-weights", default="0.6,0.25,0.1,0.05")
    parser.add_argument("--early-epochs", type=int, default=2)
    parser.add_argument(
        "--topic-weights",
        default="",
        help='draw weights by topic, "multiple_choice=4,fractions=2" (unnamed topics: 1)',
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--entropy-prompts", type=int, default=32)
    parser.add_argument("--eval-problems-per-level", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ship-epoch", type=int, default=None)
    parser.add_argument("--ship-to", default="checkpoints/ring-tiny")
    parser.add_argument("--no-ship", action="store_true")
    return parser.parse_args()


def parse_topic_weights(text: str) -> dict[str, float]:
    weights = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--topic-weights: expected topic=weight, got {item!r}")
        weights[name.strip()] = float(value)
    return weights


def main() -> None:
    args = parse_args()
    targets = [int(e) for e in args.epochs.split(",")]
    if targets != sorted(targets):
        raise SystemExit(f"--epochs targets must increase: {args.epochs}")
    config = SFTConfig(
        output_dir=args.output_dir,
        init_checkpoint=args.init_checkpoint,
        epochs=targets[0],
        steps_per_epoch=args.steps_per_epoch,
        tokens_per_batch=args.tokens_per_batch,
        learning_rate=args.learning_rate,
        warmup_steps=args.warmup_steps,
        level_weights=tuple(float(w) for w in args.level_weights.split(",")),
        early_level_weights=tuple(float(w) for w in args.early_level_weights.split(",")),
        early_epochs=args.early_epochs,
        topic_weights=parse_topic_weights(args.topic_weights),
        seed=args.seed,
        entropy_prompts=args.entropy_prompts,
        eval_problems_per_level=args.eval_problems_per_level,
        num_threads=args.threads,
    )
    started = time.perf_counter()
    for target in targets:
        config.epochs = target
        records = train_sft(config)
    print(f"SFT finished in {time.perf_counter() - started:.0f} s (this invocation)")
    if args.no_ship:
        return
    log = json.loads((Path(args.output_dir) / LOG_NAME).read_text())
    epochs = log["epochs"]
    chosen = epochs[-1] if args.ship_epoch is None else epochs[args.ship_epoch - 1]
    model, tokenizer, _ = load_checkpoint(chosen["checkpoint"])
    summary = _epoch_summary(epochs)
    earlier = _earlier_stages(args.init_checkpoint)
    save_checkpoint(
        model,
        tokenizer,
        args.ship_to,
        manifest_extra={
            "name": "ring-tiny",
            "sft": {
                "shipped_epoch": chosen["epoch"],
                "train_seconds_total": round(
                    sum(e["seconds"] for e in epochs)
                    + sum(stage["train_seconds_total"] for stage in earlier),
                    1,
                ),
                "epochs": summary,
                "config": log["config"],
                # The stages this run continued, oldest first (each with its epochs and config).
                "earlier_stages": earlier,
                "command": "make ring-tiny",
            },
        },
    )
    print(f"shipped epoch {chosen['epoch']} to {args.ship_to} ({len(records)} epochs in the log)")


def _epoch_summary(epochs: list[dict]) -> list[dict]:
    return [
        {
            "epoch": e["epoch"],
            "step": e["step"],
            "mean_loss": round(e["mean_loss"], 4),
            "mean_entropy": round(e["entropy"]["mean_entropy"], 4),
            "train_seconds": round(e["seconds"], 1),
            "quick_accuracy": e["eval_accuracy"],
        }
        for e in epochs
    ]


def _earlier_stages(init_checkpoint: str | None) -> list[dict]:
    """The SFT history behind `init_checkpoint`, oldest stage first: a shipped checkpoint carries
    its stages in its manifest; an epoch checkpoint's run is read from the run's sft_log.json."""
    stages: list[dict] = []
    while init_checkpoint:
        sft = read_manifest(init_checkpoint).get("sft", {})
        if "epochs" in sft:  # a shipped checkpoint: its own history is complete
            own = {k: v for k, v in sft.items() if k != "earlier_stages"}
            # Its train_seconds_total counts its earlier stages too; as one stage of many it
            # counts its own epochs only, or the total would count the earlier ones twice.
            stages[:0] = _own_seconds([*sft.get("earlier_stages", []), own])
            break
        log_path = Path(init_checkpoint).parent / LOG_NAME
        if not log_path.is_file():
            break  # a checkpoint from elsewhere: nothing more is known
        log = json.loads(log_path.read_text())
        upto = [e for e in log["epochs"] if e["checkpoint"] == str(init_checkpoint)]
        epochs = log["epochs"][: log["epochs"].index(upto[0]) + 1] if upto else log["epochs"]
        stages.insert(
            0,
            {
                "shipped_epoch": epochs[-1]["epoch"],
                "train_seconds_total": round(sum(e["seconds"] for e in epochs), 1),
                "epochs": _epoch_summary(epochs),
                "config": log["config"],
            },
        )
        init_checkpoint = log["config"].get("init_checkpoint")
    return stages


def _own_seconds(stages: list[dict]) -> list[dict]:
    """Stage records with train_seconds_total recounted from their own epochs (checkpoints
    shipped before this fix recorded the running total in some of them)."""
    return [
        {**stage, "train_seconds_total": round(sum(e["train_seconds"] for e in stage["epochs"]), 1)}
        for stage in stages
    ]


if __name__ == "__main__":
    main()
