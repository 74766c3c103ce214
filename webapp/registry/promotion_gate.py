"""The promotion gate: does a candidate's held-out evaluation regress the champion's, per domain?

A pure function over two evaluation result dicts (no database), so the rule is easy to read, to test
and to document (docs/admin-guide.md, "Promotion gate"). The rule, per domain evaluated for the
champion:

- the candidate must have been evaluated on that domain too (otherwise: "missing");
- it REGRESSES when both hold:
  1. its accuracy is below the champion's by more than `tolerance` (absolute; settings.PROMOTION_TOLERANCE), and
  2. the champion's accuracy lies above the candidate's 95% Wilson interval (`ci_high`): a drop
     that the sampling noise of a small held-out set does not explain.

A champion that was never evaluated cannot be regressed against: the gate passes with a note.
Domains only the candidate covers are reported and never block.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class DomainComparison:
    domain: str
    candidate_accuracy: float | None
    candidate_ci: tuple[float, float] | None
    candidate_n: int
    champion_accuracy: float | None
    champion_ci: tuple[float, float] | None
    champion_n: int
    delta: float | None
    verdict: str  # "ok" | "regressed" | "missing" | "new"


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    tolerance: float
    comparisons: list[DomainComparison] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def regressed_domains(self) -> list[str]:
        return [c.domain for c in self.comparisons if c.verdict in ("regressed", "missing")]

    def summary(self) -> str:
        """One sentence for an error message or a log line."""
        if self.passed:
            return "No domain regresses the champion."
        parts = []
        for c in self.comparisons:
            if c.verdict == "regressed":
                assert (
                    c.candidate_ci is not None
                )  # "regressed" is judged on the candidate's interval
                parts.append(
                    f"{c.domain}: {c.candidate_accuracy:.1%} vs champion {c.champion_accuracy:.1%}"
                    f" (candidate 95% CI up to {c.candidate_ci[1]:.1%})"
                )
            elif c.verdict == "missing":
                parts.append(f"{c.domain}: not evaluated for the candidate")
        return "Regresses the champion on " + "; ".join(parts) + "."

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "tolerance": self.tolerance,
            "comparisons": [asdict(c) for c in self.comparisons],
            "notes": self.notes,
        }


def _domain_stats(results: dict[str, Any], domain: str) -> tuple[float, tuple[float, float], int]:
    row = results[domain]
    return (
        float(row["accuracy"]),
        (float(row["ci_low"]), float(row["ci_high"])),
        int(row.get("n", 0)),
    )


def compare_evaluations(
    candidate: dict[str, Any] | None,
    champion: dict[str, Any] | None,
    *,
    tolerance: float,
) -> GateDecision:
    """Compare per-domain held-out results ({"math": {"accuracy", "ci_low", "ci_high", "n"}}).

    `candidate` None means the candidate has no finished evaluation: the gate refuses.
    """
    assert tolerance >= 0, tolerance
    if candidate is None:
        return GateDecision(
            passed=False, tolerance=tolerance, notes=["The candidate has no finished evaluation."]
        )
    if not champion:
        return GateDecision(
            passed=True,
            tolerance=tolerance,
            notes=["The champion has no finished evaluation: nothing to regress against."],
        )
    comparisons = []
    for domain in sorted(set(candidate) | set(champion)):
        if domain not in champion:
            acc, ci, n = _domain_stats(candidate, domain)
            comparisons.append(
                DomainComparison(domain, acc, ci, n, None, None, 0, None, verdict="new")
            )
            continue
        champ_acc, champ_ci, champ_n = _domain_stats(champion, domain)
        if domain not in candidate:
            comparisons.append(
                DomainComparison(
                    domain, None, None, 0, champ_acc, champ_ci, champ_n, None, verdict="missing"
                )
            )
            continue
        acc, ci, n = _domain_stats(candidate, domain)
        delta = acc - champ_acc
        regressed = delta < -tolerance and ci[1] < champ_acc
        comparisons.append(
            DomainComparison(
                domain,
                acc,
                ci,
                n,
                champ_acc,
                champ_ci,
                champ_n,
                round(delta, 6),
                verdict="regressed" if regressed else "ok",
            )
        )
    passed = all(c.verdict in ("ok", "new") for c in comparisons)
    return GateDecision(passed=passed, tolerance=tolerance, comparisons=comparisons)
