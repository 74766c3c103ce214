"""The exact check of a finished solution: the one place the site compares a model's final answer
with the value `training.calculation_check` computes from a statement that is a pure calculation
("What is 3*7?").

The inference worker runs it once, when it stores a solution the answer key could not settle
(`worker.inference.records.verdict_for`, in the same thread call as the answer-key check), and
keeps the result on the Generation (`verdict`, with `verdict_source` "calculation"); the attempt
page only reads it. The page calls it itself only for a solution finished before the worker
recorded its checks (`check_selectors.generation_answer_check`).
"""

import logging

from training.calculation_check import recognise_calculation
from webapp.core import answer_checks
from webapp.tutoring.models import Verdict

logger = logging.getLogger(__name__)


def calculation_verdict(*, statement: str, final_answer: str) -> str | None:
    """`Verdict.CORRECT` or `Verdict.WRONG` when `statement` is a pure calculation and the
    checker settles whether `final_answer` is its exact value; None when the statement is not
    one, there is no final answer, or the checker ran out of time or failed."""
    if not final_answer:
        return None
    calculation = recognise_calculation(statement)
    if calculation is None:
        return None
    # The model's final answer is untrusted text: through the site's bounded answer checker
    # (numbers in-process, anything symbolic in its worker processes under the time limit), never
    # `training.answers.verify` in this thread, where math-verify has no timeout and `(999*999)!`
    # held a process for 4 s.
    try:
        agrees = answer_checks.answer_verdict(
            reference=calculation.value_text,
            answer=final_answer,
            kind="number" if calculation.unit else "expression",
            unit=calculation.unit,
        )
    except Exception:  # noqa: BLE001 - a checking bug must not lose the student's solution
        logger.exception("checking %r against its calculation failed", final_answer[:100])
        return None
    if agrees is None:  # out of time: unchecked
        return None
    return Verdict.CORRECT if agrees else Verdict.WRONG
