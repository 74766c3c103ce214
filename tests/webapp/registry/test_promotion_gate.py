"""The promotion gate's rule on plain result dicts (no database): what regresses and what is noise."""

from tests.webapp.registry.factories import domain_result
from webapp.registry.promotion_gate import compare_evaluations


def test_a_clear_drop_in_one_domain_regresses():
    champion = {"math": domain_result(140, 200), "science": domain_result(100, 200)}
    candidate = {"math": domain_result(80, 200), "science": domain_result(110, 200)}
    decision = compare_evaluations(candidate, champion, tolerance=0.02)
    assert not decision.passed
    assert decision.regressed_domains == ["math"]
    verdicts = {c.domain: c.verdict for c in decision.comparisons}
    assert verdicts == {"math": "regressed", "science": "ok"}
    assert "math: 40.0% vs champion 70.0%" in decision.summary()


def test_a_drop_within_the_tolerance_passes():
    champion = {"math": domain_result(700, 1000)}
    candidate = {"math": domain_result(690, 1000)}  # 1 point lower, tolerance 2 points
    assert compare_evaluations(candidate, champion, tolerance=0.02).passed


def test_a_drop_the_interval_explains_passes():
    # 5/10 against 7/10: 20 points lower, but 0.7 lies inside the candidate's Wilson interval.
    champion = {"math": domain_result(7, 10)}
    candidate = {"math": domain_result(5, 10)}
    decision = compare_evaluations(candidate, champion, tolerance=0.02)
    assert decision.passed
    assert decision.comparisons[0].delta < -0.02


def test_the_same_drop_on_a_large_held_out_set_regresses():
    champion = {"math": domain_result(700, 1000)}
    candidate = {"math": domain_result(500, 1000)}
    assert not compare_evaluations(candidate, champion, tolerance=0.02).passed


def test_a_domain_missing_from_the_candidate_blocks():
    champion = {"math": domain_result(50, 100), "science": domain_result(50, 100)}
    candidate = {"math": domain_result(60, 100)}
    decision = compare_evaluations(candidate, champion, tolerance=0.02)
    assert not decision.passed
    assert decision.regressed_domains == ["science"]


def test_a_domain_only_the_candidate_covers_does_not_block():
    decision = compare_evaluations(
        {"math": domain_result(60, 100), "science": domain_result(1, 100)},
        {"math": domain_result(60, 100)},
        tolerance=0.02,
    )
    assert decision.passed
    assert {c.domain: c.verdict for c in decision.comparisons} == {"math": "ok", "science": "new"}


def test_no_candidate_evaluation_refuses_and_no_champion_evaluation_passes():
    assert not compare_evaluations(None, {"math": domain_result(1, 2)}, tolerance=0.02).passed
    decision = compare_evaluations({"math": domain_result(1, 2)}, None, tolerance=0.02)
    assert decision.passed and decision.notes


def test_the_decision_is_json_ready():
    import json

    decision = compare_evaluations(
        {"math": domain_result(3, 10)}, {"math": domain_result(9, 10)}, tolerance=0.02
    )
    assert json.loads(json.dumps(decision.to_dict()))["comparisons"][0]["domain"] == "math"
