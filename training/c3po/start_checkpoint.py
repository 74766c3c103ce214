"""Entropy-based choice of the SFT checkpoint that RL starts from (docs/c3po-spec.md §3).

More SFT epochs lower the policy's token entropy, and RL from a low-entropy start collapses early
(Ring-lite: ~0.5 / 0.35 / 0.27 nats after 1 / 5 / 9 epochs, collapse at ~410 / 310 / 120 steps).
So we measure the mean per-token entropy of every SFT epoch checkpoint on the RL prompts
(`training.entropy.mean_token_entropy`: the policy's own temperature-1 continuations, full-
vocabulary entropy) and start RL from one whose entropy lies in a target band. Among several in
the band, `prefer` decides (named option; the paper trades entropy off against token efficiency,
RL tokens / SFT tokens):

* "least_trained" (default): the earliest epoch in the band — the fewest SFT tokens spent and the
  most entropy left for exploration;
* "most_trained": the latest epoch in the band — the strongest SFT start that is not yet too
  sharp;
* "band_centre": the entropy closest to the band's middle.

When no checkpoint is in the band, the one closest to it is taken and the choice says so. The
band is a parameter. PAPER_BAND = (0.3, 0.5) nats is Ring-lite's, per token of a 126k BPE
vocabulary. ring-tiny reads one character per token; the same text carries the same information
spread over ~3.3–3.5 times as many tokens, so a per-character entropy is the per-BPE-token entropy
divided by that ratio: RING_TINY_BAND = (0.09, 0.15). Measurements and the choice are written as
JSON next to the run (docs/c3po.md has ring-tiny's measured epochs).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from ringmodel import load_checkpoint, read_manifest

PAPER_BAND: tuple[float, float] = (0.3, 0.5)
# The paper's band per character rather than per BPE token (÷ ~3.3–3.5 characters per token).
RING_TINY_BAND: tuple[float, float] = (0.09, 0.15)

Preference = Literal["least_trained", "most_trained", "band_centre"]


@dataclass
class EntropyMeasurement:
    """One candidate: its path, SFT epoch (None if unknown) and measured entropy."""

    checkpoint: str
    epoch: int | None
    mean_entropy: float
    num_tokens: int
    finished_fraction: float | None = None


@dataclass
class StartChoice:
    """The checkpoint RL starts from, why, and every measurement behind it."""

    checkpoint: str
    epoch: int | None
    mean_entropy: float
    in_band: bool
    band: tuple[float, float]
    prefer: str
    reason: str
    measurements: list[EntropyMeasurement] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["band"] = list(self.band)
        return out

    def write(self, path: str | Path) -> Path:
        """Write the choice as JSON atomically (write aside, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        os.replace(tmp, path)
        return path


def _epoch_of(path: Path, manifest: dict[str, Any]) -> int | None:
    sft = manifest.get("sft") or {}
    for source in (sft, manifest):
        if isinstance(source.get("epoch"), int):
            return source["epoch"]
    digits = "".join(ch for ch in path.name.rsplit("-", 1)[-1] if ch.isdigit())
    return int(digits) if digits else None


EntropyFn = Callable[..., Any]


def measure_checkpoints(
    checkpoints: Sequence[str | Path],
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 384,
    temperature: float = 1.0,
    batch_size: int = 32,
    seed: int = 0,
    entropy_fn: EntropyFn | None = None,
    log: Callable[[str], None] | None = None,
) -> list[EntropyMeasurement]:
    """Mean token entropy of each checkpoint on `prompts` (problem statements), same seed for all.

    `entropy_fn(model, tokenizer, prompts, max_new_tokens=, temperature=, batch_size=, seed=)`
    defaults to `training.entropy.mean_token_entropy`.
    """
    if entropy_fn is None:
        from training.entropy import mean_token_entropy

        entropy_fn = mean_token_entropy
    measurements = []
    for checkpoint in checkpoints:
        path = Path(checkpoint)
        model, tokenizer, manifest = load_checkpoint(path)
        report = entropy_fn(
            model,
            tokenizer,
            list(prompts),
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            batch_size=batch_size,
            seed=seed,
        )
        measurement = EntropyMeasurement(
            checkpoint=str(path),
            epoch=_epoch_of(path, manifest),
            mean_entropy=float(report.mean_entropy),
            num_tokens=int(report.num_tokens),
            finished_fraction=getattr(report, "finished_fraction", None),
        )
        measurements.append(measurement)
        if log is not None:
            log(f"entropy {measurement.mean_entropy:.4f} nats/token: {path}")
        del model
    return measurements


def choose_start_checkpoint(
    measurements: Sequence[EntropyMeasurement],
    *,
    band: tuple[float, float] = PAPER_BAND,
    prefer: Preference = "least_trained",
) -> StartChoice:
    """Pick the RL start among measured checkpoints by the entropy band rule (module docstring).

    Checkpoints are ordered by SFT epoch (then by path) to decide "least/most trained".
    """
    assert measurements, "no checkpoint measured"
    low, high = band
    assert low < high, band
    ordered = sorted(
        measurements, key=lambda m: (m.epoch if m.epoch is not None else 1 << 30, m.checkpoint)
    )
    inside = [m for m in ordered if low <= m.mean_entropy <= high]
    if inside:
        if prefer == "least_trained":
            chosen = inside[0]
        elif prefer == "most_trained":
            chosen = inside[-1]
        elif prefer == "band_centre":
            centre = (low + high) / 2
            chosen = min(inside, key=lambda m: abs(m.mean_entropy - centre))
        else:
            raise ValueError(f"unknown preference {prefer!r}")
        reason = (
            f"{len(inside)} of {len(ordered)} checkpoints lie in the entropy band "
            f"[{low}, {high}]; '{prefer}' picks entropy {chosen.mean_entropy:.4f}"
        )
        in_band = True
    else:

        def distance(m: EntropyMeasurement) -> float:
            return low - m.mean_entropy if m.mean_entropy < low else m.mean_entropy - high

        chosen = min(ordered, key=distance)
        reason = (
            f"no checkpoint lies in the entropy band [{low}, {high}]; the closest has entropy "
            f"{chosen.mean_entropy:.4f}"
        )
        in_band = False
    return StartChoice(
        checkpoint=chosen.checkpoint,
        epoch=chosen.epoch,
        mean_entropy=chosen.mean_entropy,
        in_band=in_band,
        band=(low, high),
        prefer=prefer,
        reason=reason,
        measurements=list(ordered),
    )


def sft_epoch_checkpoints(sft_dir: str | Path) -> list[Path]:
    """The complete epoch checkpoints (`epoch-N/` with a manifest) of an SFT run, by epoch."""
    found = []
    for path in Path(sft_dir).glob("epoch-*"):
        try:
            read_manifest(path)
        except Exception:
            continue  # an interrupted save, or not a checkpoint
        found.append(path)
    return sorted(found, key=lambda p: int("".join(c for c in p.name if c.isdigit()) or 0))


def select_start_checkpoint(
    checkpoints: Sequence[str | Path],
    prompts: Sequence[str],
    *,
    band: tuple[float, float] = PAPER_BAND,
    prefer: Preference = "least_trained",
    record_path: str | Path | None = None,
    **measure_kwargs: Any,
) -> StartChoice:
    """Measure, choose, and (with `record_path`) record the choice as JSON."""
    choice = choose_start_checkpoint(
        measure_checkpoints(checkpoints, prompts, **measure_kwargs), band=band, prefer=prefer
    )
    if record_path is not None:
        choice.write(record_path)
    return choice
