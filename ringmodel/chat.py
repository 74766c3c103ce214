"""Prompts in Ring's chat format and the split of a completion into reasoning and answer.

``build_prompt_ids`` renders a problem with the checkpoint's own chat template (so ring-tiny and
Ring-lite each get their own format), appending docs/c3po-spec.md §5's instruction for math and science.
``split_reasoning`` cuts a completion — possibly partial, while it streams — at ``<think>…</think>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .tokenizer import THINK_CLOSE, THINK_OPEN

# docs/c3po-spec.md §5: math and science prompts end with this instruction; the verifier reads the last
# \boxed{} after </think>.
REASONING_SUFFIX = "Please reason step by step, and put your final answer within \\boxed{}."


def build_prompt_messages(
    problem_text: str, *, system: str | None = None, reasoning_suffix: bool = True
) -> list[dict[str, str]]:
    """The chat messages for one problem: optional system turn, then the user turn."""
    content = f"{problem_text}\n{REASONING_SUFFIX}" if reasoning_suffix else problem_text
    messages = [{"role": "system", "content": system}] if system is not None else []
    messages.append({"role": "user", "content": content})
    return messages


def build_prompt_text(
    tokenizer: Any, problem_text: str, *, system: str | None = None, reasoning_suffix: bool = True
) -> str:
    """The rendered prompt, ending with the generation prompt ``<role>ASSISTANT</role>``."""
    messages = build_prompt_messages(problem_text, system=system, reasoning_suffix=reasoning_suffix)
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def build_prompt_ids(
    tokenizer: Any, problem_text: str, *, system: str | None = None, reasoning_suffix: bool = True
) -> list[int]:
    """Token ids of the prompt for ``problem_text``, rendered with the tokenizer's chat template.

    ``reasoning_suffix`` (default on) appends :data:`REASONING_SUFFIX` on its own line, as for the
    math and science prompts of docs/c3po-spec.md §5; turn it off for anything else (e.g. a hint request).
    """
    text = build_prompt_text(
        tokenizer, problem_text, system=system, reasoning_suffix=reasoning_suffix
    )
    # The template writes every control token itself; the tokenizer must add none (no BOS).
    return tokenizer(text, add_special_tokens=False)["input_ids"]


@dataclass(frozen=True)
class ReasoningSplit:
    reasoning: str
    answer: str
    finished_thinking: bool


def _partial_suffix_len(text: str, tag: str) -> int:
    """Length of the longest proper prefix of ``tag`` that ``text`` ends with."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


def split_reasoning(text: str) -> ReasoningSplit:
    """Split a completion at ``</think>``: reasoning before it, answer after it.

    Until ``</think>`` appears everything is reasoning and ``finished_thinking`` is False (docs/c3po-spec.md
    §5 scores such a completion 0). A leading ``<think>`` is dropped. While streaming, a tail that
    could still become ``</think>`` (``"</th"``) is held back rather than shown as reasoning. Both
    fields only ever grow as ``text`` grows, so a streamer can send ``new[len(old):]`` as deltas.
    """
    body = text
    if body.startswith(THINK_OPEN):
        body = body[len(THINK_OPEN) :]
    elif THINK_OPEN.startswith(body):
        body = ""  # a partial "<think" at the very start
    reasoning, closed, answer = body.partition(THINK_CLOSE)
    if closed:
        return ReasoningSplit(reasoning=reasoning, answer=answer, finished_thinking=True)
    held_back = _partial_suffix_len(reasoning, THINK_CLOSE)
    return ReasoningSplit(
        reasoning=reasoning[: len(reasoning) - held_back], answer="", finished_thinking=False
    )
