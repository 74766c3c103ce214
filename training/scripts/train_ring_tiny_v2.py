"""ring-tiny v2: continue the shipped ring-tiny on problems worded the way people write them.

Run from the repository root, on a GPU (the data workers want spare CPU cores):

    PYTHONPATH=. python3 -m training.scripts.train_ring_tiny_v2 --device cuda --max-minutes 7 \
        --workers 14 --output-dir runs/ring-tiny-v2 --export-dir "$OUT/ring-tiny-v2"

It continues `--init-checkpoint` (default `checkpoints/ring-tiny`) with `training.sft_continue`:
a mix of generator-worded and reworded statements (`--natural-share`), large batches, a cosine
schedule over the `--max-minutes` (or `--max-steps`) budget, a checkpoint in `--output-dir` after
every epoch. `--export-dir` receives, after every epoch, the latest checkpoint as one tar file
in the shipped layout (`ring-tiny/…`, with its manifest) and the run's log, so a run cut short
still leaves its last epoch; `--ship-to` re-saves the last epoch as a checkpoint directory (what
`make ring-tiny` does on this machine). On CPU, `--device cpu --max-steps 3` tries the whole path
in a minute.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import shutil  # noqa: E402
import tarfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from ringmodel import load_checkpoint, save_checkpoint  # noqa: E402
from training.scope import scope_manifest  # noqa: E402
from training.scripts.train_ring_tiny import _earlier_stages, parse_topic_weights  # noqa: E402
from training.sft_continue import LOG_NAME, ContinueConfig, continue_sft  # noqa: E402

EXPORT_TAR = "ring-tiny-v2.tar"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--init-checkpoint", default="checkpoints/ring-tiny")
    parser.add_argument("--output-dir", default="runs/ring-tiny-v2")
    parser.add_argument("--export-dir", default=None, help="latest checkpoint as a tar + the log")
    parser.add_argument("--ship-to", default=None, help="re-save the last epoch here")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    parser.add_argument("--tokens-per-batch", type=int, default=131_072)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--warmup-steps", type=int, default=100)
    parser.add_argument("--max-minutes", type=float, default=None)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--steps-per-epoch", type=int, default=500)
    parser.add_argument("--epoch-minutes", type=float, default=1.5)
    parser.add_argument("--natural-share", type=float, default=0.6)
    parser.add_argument("--level-weights", default="0.35,0.25,0.2,0.2")
    parser.add_argument("--topic-weights", default="multiple_choice=2")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=max((os.cpu_count() or 2) - 2, 1))
    parser.add_argument("--pool-batches", type=int, default=8)
    parser.add_argument("--heldout-per-level", type=int, default=32)
    return parser.parse_args()


def export_checkpoint(checkpoint: Path, export_dir: Path) -> Path:
    """Write the checkpoint directory as `<export_dir>/ring-tiny-v2.tar` (members under
    `ring-tiny/`), written aside and renamed so a reader never sees half a file."""
    export_dir.mkdir(parents=True, exist_ok=True)
    target = export_dir / EXPORT_TAR
    staging = export_dir / f".{EXPORT_TAR}.tmp"
    with tarfile.open(staging, "w") as tar:
        for path in sorted(checkpoint.iterdir()):
            tar.add(path, arcname=f"ring-tiny/{path.name}")
    staging.replace(target)
    return target


def _copy_log(output_dir: Path, export_dir: Path) -> None:
    data = (output_dir / LOG_NAME).read_bytes()
    staging = export_dir / f".{LOG_NAME}.tmp"
    staging.write_bytes(data)
    staging.replace(export_dir / LOG_NAME)


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    args = parse_args()
    config = ContinueConfig(
        init_checkpoint=args.init_checkpoint,
        output_dir=args.output_dir,
        device=args.device,
        precision=args.precision,
        tokens_per_batch=args.tokens_per_batch,
        learning_rate=args.learning_rate,
        warmup_steps=args.warmup_steps,
        max_minutes=args.max_minutes,
        max_steps=args.max_steps,
        steps_per_epoch=args.steps_per_epoch,
        epoch_minutes=args.epoch_minutes,
        natural_share=args.natural_share,
        level_weights=tuple(float(w) for w in args.level_weights.split(",")),
        topic_weights=parse_topic_weights(args.topic_weights),
        seed=args.seed,
        workers=args.workers,
        pool_batches=args.pool_batches,
        heldout_per_level=args.heldout_per_level,
    )
    earlier = _earlier_stages(args.init_checkpoint)
    export_dir = Path(args.export_dir) if args.export_dir else None

    def manifest(records: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "name": "ring-tiny",
            "scope": scope_manifest(),
            "sft": {
                "stage": "v2: natural phrasings (training.problems.phrasings)",
                "shipped_epoch": records[-1]["epoch"],
                "train_seconds_total": round(
                    sum(r["seconds"] for r in records)
                    + sum(stage["train_seconds_total"] for stage in earlier),
                    1,
                ),
                "epochs": records,
                "config": config.as_dict(),
                "earlier_stages": earlier,
                "command": "make ring-tiny",
            },
        }

    def on_epoch(checkpoint: Path, record: dict[str, Any]) -> None:
        if export_dir is not None:
            export_checkpoint(checkpoint, export_dir)
            _copy_log(Path(args.output_dir), export_dir)

    started = time.perf_counter()
    records = continue_sft(config, on_epoch=on_epoch, manifest_extra=manifest)
    print(f"continued SFT finished in {time.perf_counter() - started:.0f} s, {len(records)} epochs")
    last = Path(args.output_dir) / f"epoch-{records[-1]['epoch']}"
    if args.ship_to:
        model, tokenizer, manifest_now = load_checkpoint(last)
        extra = {k: v for k, v in manifest_now.items() if k in ("name", "scope", "sft")}
        save_checkpoint(model, tokenizer, args.ship_to, manifest_extra=extra)
        print(f"shipped {last} to {args.ship_to}")
    if export_dir is not None:
        print(json.dumps({"exported": str(export_dir / EXPORT_TAR), "last": str(last)}))


def unpack_export(tar_path: str | Path, destination: str | Path) -> Path:
    """Unpack an exported tar's `ring-tiny/` files into `destination` (replacing it)."""
    destination = Path(destination)
    staging = destination.parent / f".{destination.name}.unpack"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with tarfile.open(tar_path) as tar:
        for member in tar.getmembers():
            name = Path(member.name)
            if not member.isfile() or name.parent != Path("ring-tiny") or name.name.startswith("."):
                raise ValueError(f"unexpected member {member.name!r} in {tar_path}")
            source = tar.extractfile(member)
            assert source is not None
            (staging / name.name).write_bytes(io.BufferedReader(source).read())
    if destination.exists():
        shutil.rmtree(destination)
    staging.rename(destination)
    return destination


if __name__ == "__main__":
    main()
