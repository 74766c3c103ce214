"""Calibrate the site's *unsure* flag on held-out problems: which wrong answers and which right
answers a student would see flagged.

Reads the JSON of `python -m training.scripts.evaluate --phrasings` (one record per completion,
each with its confidence), treats every problem as a question a student typed (no answer key),
and flags an answer as the attempt page would: cut off at the length limit; or, when the
statement is a pure calculation (`training.calculation_check`), disputed by the exact value;
otherwise unchecked with a confidence below the threshold. Prints, per wording and overall, the
share of wrong answers flagged and of right answers flagged with 95% Wilson intervals, for the
calibrated `UNSURE_BELOW` and for the alternative thresholds given, and the same for the
confidence alone:

    .venv/bin/python -m training.scripts.calibrate_confidence phrasings.json --thresholds 0.4,0.5,0.6,0.7
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from training.answers import verify
from training.calculation_check import recognise_calculation
from training.confidence import UNSURE_BELOW
from training.evaluate import wilson_interval


def calculation_verdict(record: dict) -> bool | None:
    """True/False when the exact check agrees/disagrees with the answer; None when it cannot
    check the statement (or the answer has no final answer to compare)."""
    calculation = recognise_calculation(record["statement"])
    if calculation is None or record["extracted"] is None:
        return None
    return verify(
        calculation.value_text,
        record["extracted"],
        kind="number" if calculation.unit else "expression",
        unit=calculation.unit,
    )


def site_flag(threshold: float) -> Callable[[dict], bool]:
    def flagged(record: dict) -> bool:
        if not record["finished"]:
            return True  # "This answer was cut off"
        agrees = record["calculation_agrees"]
        if agrees is not None:
            return not agrees  # checked, or disagrees with a check
        confidence = record["confidence"]
        return confidence is not None and confidence < threshold

    return flagged


def confidence_flag(threshold: float) -> Callable[[dict], bool]:
    def flagged(record: dict) -> bool:
        confidence = record["confidence"]
        return not record["finished"] or (confidence is not None and confidence < threshold)

    return flagged


def _share(records: list[dict], flagged: Callable[[dict], bool]) -> str:
    hits = sum(1 for r in records if flagged(r))
    low, high = wilson_interval(hits, len(records))
    return f"{hits}/{len(records)} = {hits / max(len(records), 1):.1%} [{low:.1%}, {high:.1%}]"


def calibration_rows(records: list[dict], thresholds: list[float]) -> list[str]:
    lines = [
        "| signal | threshold | wording | wrong answers flagged | right answers flagged |",
        "|---|---|---|---|---|",
    ]
    for name, make in (
        ("site (check + confidence)", site_flag),
        ("confidence only", confidence_flag),
    ):
        for threshold in thresholds:
            for wording in ("generator", "unseen", "all"):
                rows = [r for r in records if wording == "all" or r["wording"] == wording]
                wrong = [r for r in rows if not r["correct"]]
                right = [r for r in rows if r["correct"]]
                flagged = make(threshold)
                lines.append(
                    f"| {name} | {threshold:g} | {wording} | {_share(wrong, flagged)} | "
                    f"{_share(right, flagged)} |"
                )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", help="JSON written by evaluate --phrasings --out")
    parser.add_argument("--thresholds", default=str(UNSURE_BELOW))
    args = parser.parse_args()
    report = json.loads(Path(args.report).read_text())
    records = report["records"]
    for record in records:
        record["calculation_agrees"] = calculation_verdict(record)
    thresholds = [float(t) for t in args.thresholds.split(",")]
    print(f"{report['checkpoint']}, {report['decoding']}, seed {report['seed']}")
    print("\n".join(calibration_rows(records, thresholds)))


if __name__ == "__main__":
    main()
