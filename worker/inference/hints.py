"""Tutor-mode hints, cut by the server from the model's own worked solution.

A hint must move the student one step on without giving the answer away. Asking the model for "a
hint" relies on it following that instruction (ring-tiny was never taught to, and even Ring-lite may
box the answer anyway), and whatever it streams would reach the page. So the worker asks for the
ordinary step-by-step solution, shows none of it while it is written, and sends only the piece the
server chose:

- the reasoning is split into steps (paragraphs when it has blank lines, else lines); a step that
  ends with a colon ("add 1+2 by columns:") announces the next one and is joined to it, so a hint
  never stops at an announcement;
- the steps before the first one that states the final answer (as a whole token: "12" is not stated
  by "125"), and never the last step, where the result is reached, may be shown;
- those are dealt into `HINTS_PER_ATTEMPT` consecutive parts, hint k (0-based) being part k; with
  fewer steps than hints, hint k is step k, and a hint with nothing left to show says so.

Pure functions: the worker feeds the finished text in and streams what comes out.
"""

import re

from inference_contract.protocol import HINTS_PER_ATTEMPT
from ringmodel.chat import split_reasoning
from training.answers import extract_final_answer
from worker.inference.streaming import Delta, GenerationStream

NO_FURTHER_HINT = (
    "The next step already gives the answer away. Try it yourself, or ask for the full solution."
)
NO_REASONING = "The tutor could not work this problem out step by step. Ask for the full solution."


def solution_steps(reasoning: str) -> list[str]:
    """The steps of a worked solution: its paragraphs, or its lines when it has no blank lines;
    a step ending with ":" is joined to the step it announces."""
    text = reasoning.strip()
    if not text:
        return []
    blank_lines = re.search(r"\n\s*\n", text)
    parts = re.split(r"\n\s*\n", text) if blank_lines else text.splitlines()
    joiner = "\n\n" if blank_lines else "\n"
    steps: list[str] = []
    for part in (part.strip() for part in parts):
        if not part:
            continue
        if steps and steps[-1].endswith(":"):
            steps[-1] = f"{steps[-1]}{joiner}{part}"
        else:
            steps.append(part)
    return steps


def _states(step: str, answer: str) -> bool:
    """Does `step` state `answer` (as a whole token: "12" is not stated by "125")?"""
    answer = answer.strip()
    if not answer:
        return False
    return re.search(rf"(?<![\w.]){re.escape(answer)}(?![\w]|\.\d)", step) is not None


def hint_text(completion: str, *, hint_index: int, hints: int = HINTS_PER_ATTEMPT) -> str:
    """Hint number `hint_index + 1` of `hints`, cut from the model's completion."""
    reasoning = split_reasoning(completion).reasoning
    steps = solution_steps(reasoning)
    if not steps:
        return NO_REASONING
    final_answer = extract_final_answer(completion) or ""
    # Where the answer first appears, the hints end; the last step is the full solution's.
    revealing = next((i for i, step in enumerate(steps) if _states(step, final_answer)), len(steps))
    showable = steps[: min(revealing, len(steps) - 1)]
    index = max(hint_index, 0)
    if len(showable) >= hints:
        # Part k covers showable[k*m/hints : (k+1)*m/hints]: every step in one part, in order.
        m = len(showable)
        shown = showable[index * m // hints : (index + 1) * m // hints]
    else:
        shown = showable[index : index + 1]
    if not shown:
        return NO_FURTHER_HINT
    return "\n".join(shown)


class HintStream(GenerationStream):
    """A hint's stream: it keeps the model's text to itself while the solution is written, and
    releases one answer delta, the hint, once `conclude` has cut it from the finished text. Its
    boxed answer is the solution's, not the hint's: nothing is graded or stored as an answer."""

    shows_reasoning = False

    def __init__(self, generation_id: int, *, hint_index: int, start_seq: int = 0) -> None:
        super().__init__(generation_id, start_seq=start_seq)
        self.hint_index = hint_index
        self.hint: str | None = None

    def conclude(self) -> None:
        self.hint = hint_text(self.text, hint_index=self.hint_index)

    @property
    def pending_chars(self) -> int:
        return len(self.hint) - self.sent_answer if self.hint is not None else 0

    @property
    def has_sent(self) -> bool:
        # Nothing is shown early, so there is no "first delta at once" to hurry.
        return True

    def take_deltas(self) -> list[Delta]:
        if not self.pending_chars:
            return []
        self.seq += 1
        self.sent_answer = len(self.hint)
        return [Delta(self.seq, "answer", self.hint)]

    def final_split(self) -> tuple[str, str, bool]:
        return "", self.hint or "", True

    def final_answer(self) -> str:
        return ""
