"""The calibration flags answers as the attempt page does: cut off, disputed by the exact check,
or unchecked and below the confidence threshold."""

from __future__ import annotations

from training.scripts.calibrate_confidence import (
    calculation_verdict,
    calibration_rows,
    confidence_flag,
    site_flag,
)


def record(statement, extracted, *, correct, confidence=0.9, finished=True, wording="unseen"):
    row = {
        "statement": statement,
        "extracted": extracted,
        "correct": correct,
        "confidence": confidence,
        "finished": finished,
        "wording": wording,
    }
    row["calculation_agrees"] = calculation_verdict(row)
    return row


def test_flags_follow_the_page():
    flag = site_flag(0.6)
    assert flag(record("what is 3*7?", "297", correct=False, confidence=0.99))  # disputed
    assert not flag(record("what is 3*7?", "21", correct=True, confidence=0.1))  # checked
    story = "Ann has 12 pens and buys 30 more. How many pens now?"
    assert flag(record(story, "41", correct=False, confidence=0.3))  # unsure
    assert not flag(record(story, "42", correct=True, confidence=0.8))
    assert flag(record(story, None, correct=False, finished=False))  # cut off
    assert confidence_flag(0.6)(record("what is 3*7?", "21", correct=True, confidence=0.1))


def test_table_has_a_row_per_signal_threshold_and_wording():
    rows = [record("what is 3*7?", "297", correct=False), record("what is 2*3?", "6", correct=True)]
    table = calibration_rows(rows, [0.5, 0.6])
    assert len(table) == 2 + 2 * 2 * 3
    assert "| site (check + confidence) | 0.6 | all | 1/1 = 100.0%" in "\n".join(table)
