"""Run a staged C3PO (or GRPO-baseline) job from the command line, with a progress bar.

Trains a Bailing MoE checkpoint with reinforcement learning on verified problems: stage 1 math,
stage 2 science (+ code), each de-duplicated, held-out-split and filtered by the start model's
solve rate, then C3PO steps with a constant token budget per update (docs/c3po.md).

Examples:
    python -m training.c3po.run --base checkpoints/ring-tiny --out runs/c3po-demo \\
        --stages math:30,science:20 --problems-per-domain 400 --levels 3,4
    python -m training.c3po.run --base checkpoints/ring-tiny --out runs/grpo-demo \\
        --algorithm grpo --set budget_tokens=8192 --set lr=1e-5
    python -m training.c3po.run --sft-dir checkpoints/sft-ring-tiny --band 0.09,0.15 ...

Problems come from the seeded generators (`training.problems`) unless --problems names a JSON or
JSONL file of {"statement", "answer", "domain", "level", "kind", ...} records. Running the same
command again resumes the job from its last checkpoint. TensorBoard logs are under --out.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from training.c3po.config import C3POConfig
from training.c3po.pipeline import JobSpec, StageSpec, run_job
from training.c3po.start_checkpoint import PAPER_BAND, RING_TINY_BAND, sft_epoch_checkpoints
from training.observer import ConsoleObserver


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _parse_stages(text: str) -> list[StageSpec]:
    stages = []
    for part in text.split(","):
        name, _, steps = part.partition(":")
        domains = {"math": ("math",), "science": ("science", "code")}.get(name, (name,))
        stages.append(StageSpec(name, domains, int(steps or 10)))
    return stages


def _load_problems(args: argparse.Namespace) -> list[Any]:
    if args.problems:
        path = Path(args.problems)
        text = path.read_text()
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        return json.loads(text)
    from training.problems import training_sample

    levels = tuple(int(x) for x in args.levels.split(","))
    problems: list[Any] = []
    for domain in ("math", "science"):
        problems += training_sample(
            args.problems_per_domain, args.seed, domains=(domain,), levels=levels
        )
    return problems


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.c3po.run",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--base", help="start checkpoint (SFT result)")
    parser.add_argument("--out", required=True, help="job output directory (resumes if present)")
    parser.add_argument("--stages", default="math:20,science:20", help="name:steps,...")
    parser.add_argument("--preset", choices=("ring_tiny", "ring_lite"), default="ring_tiny")
    parser.add_argument("--algorithm", choices=("c3po", "grpo"), default="c3po")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="C3POConfig override"
    )
    parser.add_argument("--problems", help="JSON/JSONL problem file (default: generated)")
    parser.add_argument("--problems-per-domain", type=int, default=300)
    parser.add_argument("--levels", default="1,2,3,4", help="generated problem levels")
    parser.add_argument("--no-curation", action="store_true", help="skip the solve-rate filter")
    parser.add_argument("--curation-k", type=int, default=8)
    parser.add_argument("--max-curated", type=int, default=64)
    parser.add_argument("--sft-dir", help="choose the start among this SFT run's epoch-N/")
    parser.add_argument("--band", help="entropy band lo,hi (default: ring-tiny's or the paper's)")
    parser.add_argument("--engine", choices=("policy", "vllm"), default="policy")
    parser.add_argument("--checkpoint-every", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    return parser


class _ProgressObserver(ConsoleObserver):
    """The console observer with a progress bar: log lines above it (stderr; stdout carries only
    the final JSON result), each step's headline metrics on it."""

    def __init__(self, bar: tqdm) -> None:
        super().__init__(sys.stderr)
        self.bar = bar

    def log(self, line: str) -> None:
        tqdm.write(line, file=self.stream)

    def metrics(self, step: int, metrics: dict[str, float]) -> None:
        self.bar.n = step
        self.bar.set_postfix(
            reward=f"{metrics['reward_mean']:.3f}",
            tokens=int(metrics["tokens_trained"]),
            H=f"{metrics['entropy']:.3f}",
            refresh=False,
        )
        self.bar.refresh()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    preset = C3POConfig.ring_tiny if args.preset == "ring_tiny" else C3POConfig.ring_lite
    overrides = {"algorithm": args.algorithm}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = _parse_value(value)
    config = preset(**overrides)
    candidates = None
    if args.sft_dir:
        candidates = [str(p) for p in sft_epoch_checkpoints(args.sft_dir)]
    if not args.base and not candidates:
        print("give --base or --sft-dir", file=sys.stderr)
        return 2
    default_band = RING_TINY_BAND if args.preset == "ring_tiny" else PAPER_BAND
    band = tuple(float(x) for x in args.band.split(",")) if args.band else default_band
    stages = _parse_stages(args.stages)
    spec = JobSpec(
        base_checkpoint=args.base or (candidates[0] if candidates else ""),
        output_dir=args.out,
        problems=_load_problems(args),
        stages=stages,
        config=config,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
        curate_with_rollouts=not args.no_curation,
        curation_group_size=args.curation_k,
        max_curated_problems=args.max_curated,
        start_candidates=candidates,
        entropy_band=band,  # type: ignore[arg-type]
        engine=args.engine,
        torch_threads=args.threads,
    )
    bar = tqdm(total=sum(s.steps for s in stages), unit="step", dynamic_ncols=True)
    result = run_job(spec, _ProgressObserver(bar))
    bar.close()
    print(json.dumps(dataclasses.asdict(result), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
