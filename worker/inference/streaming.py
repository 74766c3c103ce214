"""One generation's text as it streams: coalesced, split into reasoning and answer, numbered.

The engine hands over text a token or two at a time; `GenerationStream` accumulates it and, when the
worker flushes (every few tens of milliseconds, or sooner when much text is waiting), turns what is
new into at most two deltas: the growth of the reasoning and the growth of the answer, as
`ringmodel.chat.split_reasoning` cuts the whole text at `</think>`. That split only ever grows, and it
holds back a tail that may still become `</think>`, so no delta is ever taken back. Sequence numbers
continue from `start_seq` (a generation re-run after a crash keeps counting), one per delta.
Pure bookkeeping, no I/O: the worker does the sending.
"""

from dataclasses import dataclass

from ringmodel.chat import split_reasoning
from training.answers import extract_final_answer


@dataclass(frozen=True)
class Delta:
    seq: int
    channel: str  # "reasoning" | "answer"
    text: str


class GenerationStream:
    # Whether the reasoning reaches the page (and so has a thinking time worth recording).
    shows_reasoning = True

    def __init__(self, generation_id: int, *, start_seq: int = 0) -> None:
        self.generation_id = generation_id
        self.seq = start_seq
        self.text = ""
        self.sent_reasoning = 0
        self.sent_answer = 0
        self._flushed_text_len = 0

    def feed(self, text: str) -> None:
        self.text += text

    @property
    def pending_chars(self) -> int:
        """Characters received since the last flush (some may still be held back)."""
        return len(self.text) - self._flushed_text_len

    @property
    def has_sent(self) -> bool:
        return bool(self.sent_reasoning or self.sent_answer)

    def take_deltas(self) -> list[Delta]:
        """The deltas for everything new since the last call (empty when nothing is visible)."""
        if self.pending_chars == 0:
            return []
        self._flushed_text_len = len(self.text)
        split = split_reasoning(self.text)
        deltas = []
        if len(split.reasoning) > self.sent_reasoning:
            self.seq += 1
            deltas.append(Delta(self.seq, "reasoning", split.reasoning[self.sent_reasoning :]))
            self.sent_reasoning = len(split.reasoning)
        if len(split.answer) > self.sent_answer:
            self.seq += 1
            deltas.append(Delta(self.seq, "answer", split.answer[self.sent_answer :]))
            self.sent_answer = len(split.answer)
        return deltas

    def conclude(self) -> None:
        """The model has finished: everything it wrote is already visible, nothing to add."""

    def final_split(self) -> tuple[str, str, bool]:
        """(reasoning, answer, finished_thinking) of the whole text, as stored at the end."""
        split = split_reasoning(self.text)
        return split.reasoning, split.answer, split.finished_thinking

    def final_answer(self) -> str:
        """The answer to grade and store: the last `\\boxed{}` after `</think>` ("" if none)."""
        return extract_final_answer(self.text) or ""
