"""The SFT history a shipped ring-tiny carries: every stage once, with its own seconds."""

import json

from training.scripts.train_ring_tiny import _earlier_stages


def _epochs(*seconds: float) -> list[dict]:
    return [{"epoch": i + 1, "train_seconds": s} for i, s in enumerate(seconds)]


def test_a_shipped_start_counts_each_earlier_stage_once(tmp_path):
    # A checkpoint shipped after two stages: its total counts both, as a shipped total should.
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    first = {"shipped_epoch": 2, "train_seconds_total": 30.0, "epochs": _epochs(10, 20)}
    (shipped / "manifest.json").write_text(
        json.dumps(
            {
                "sft": {
                    "shipped_epoch": 1,
                    "train_seconds_total": 35.0,
                    "epochs": _epochs(5),
                    "earlier_stages": [first],
                }
            }
        )
    )

    stages = _earlier_stages(str(shipped))

    assert [s["train_seconds_total"] for s in stages] == [30.0, 5.0]
    assert "earlier_stages" not in stages[1]


def test_stage_totals_recorded_as_running_totals_are_recounted(tmp_path):
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    # Written before the fix: the second stage's total was the running total (30 + 5).
    earlier = [
        {"train_seconds_total": 30.0, "epochs": _epochs(10, 20)},
        {"train_seconds_total": 35.0, "epochs": _epochs(5)},
    ]
    sft = {"train_seconds_total": 42.0, "epochs": _epochs(7), "earlier_stages": earlier}
    (shipped / "manifest.json").write_text(json.dumps({"sft": sft}))

    assert [s["train_seconds_total"] for s in _earlier_stages(str(shipped))] == [30.0, 5.0, 7.0]
