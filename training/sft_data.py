"""Long-CoT SFT data: problems rendered as Ring chat conversations, and length-bucketed batches.

A problem becomes the prompt the model will see at inference (the checkpoint's chat template,
the statement and C3PO's "reason step by step … \\boxed{}" suffix, via `ringmodel.chat`) followed
by the assistant turn `<think>\\n{steps}\\n</think>\\n{answer sentence}` and the eos token that
closes a finished turn in the template. Only assistant tokens carry a loss. Batches are built by
drawing a pool of examples, sorting it by length and cutting it into batches under a token
budget, so padding stays small without packing unrelated conversations into one sequence
(packing would give ring-tiny positions it never sees at inference).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from ringmodel.chat import build_prompt_ids
from training.problems import Problem

IGNORE_INDEX = -100


@dataclass(frozen=True)
class SFTExample:
    """Token ids of one conversation; `num_prompt` leading ids carry no loss."""

    input_ids: tuple[int, ...]
    num_prompt: int

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass(frozen=True)
class SFTBatch:
    """Right-padded tensors [B, T]: ids, attention mask, labels (-100 outside assistant turns)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor

    @property
    def num_tokens(self) -> int:
        return int(self.attention_mask.sum())

    @property
    def num_target_tokens(self) -> int:
        return int((self.labels != IGNORE_INDEX).sum())


def completion_ids(tokenizer: Any, problem: Problem) -> list[int]:
    """The assistant turn's ids, ending with eos (what the template writes after a finished
    assistant message)."""
    ids = tokenizer(problem.assistant_text, add_special_tokens=False)["input_ids"]
    return [*ids, tokenizer.eos_token_id]


def encode_problem(tokenizer: Any, problem: Problem, *, max_length: int) -> SFTExample:
    """One problem as a training conversation; raises ValueError when it exceeds max_length."""
    prompt = build_prompt_ids(tokenizer, problem.statement)
    completion = completion_ids(tokenizer, problem)
    total = len(prompt) + len(completion)
    if total > max_length:
        raise ValueError(
            f"conversation of {total} tokens exceeds max_length {max_length}: "
            f"{problem.statement[:60]!r}"
        )
    return SFTExample(input_ids=(*prompt, *completion), num_prompt=len(prompt))


def collate(examples: list[SFTExample], *, pad_token_id: int) -> SFTBatch:
    """Right-pad examples into one batch; labels mask prompt tokens and padding."""
    width = max(len(e) for e in examples)
    input_ids = torch.full((len(examples), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    for row, example in enumerate(examples):
        ids = torch.tensor(example.input_ids, dtype=torch.long)
        input_ids[row, : len(ids)] = ids
        attention_mask[row, : len(ids)] = 1
        labels[row, example.num_prompt : len(ids)] = ids[example.num_prompt :]
    return SFTBatch(input_ids=input_ids, attention_mask=attention_mask, labels=labels)


def bucketed_batches(
    examples: Iterable[SFTExample],
    *,
    tokens_per_batch: int,
    pad_token_id: int,
    pool_batches: int = 32,
    seed: int = 0,
) -> Iterator[SFTBatch]:
    """Endless length-bucketed batches of at most `tokens_per_batch` padded tokens.

    Takes about `pool_batches` batches' worth of examples at a time, sorts them by length,
    cuts the sorted run into batches (rows x longest row <= tokens_per_batch) and yields those
    batches in a shuffled order, so consecutive steps do not walk from short to long problems.
    """
    rng = random.Random(seed)
    iterator = iter(examples)
    while True:
        pool: list[SFTExample] = []
        pool_tokens = 0
        for example in iterator:
            if len(example) > tokens_per_batch:
                raise ValueError(
                    f"an example of {len(example)} tokens exceeds tokens_per_batch "
                    f"{tokens_per_batch}"
                )
            pool.append(example)
            pool_tokens += len(example)
            if pool_tokens >= pool_batches * tokens_per_batch:
                break
        if not pool:
            return
        pool.sort(key=len)
        batches: list[list[SFTExample]] = [[]]
        for example in pool:
            current = batches[-1]
            if current and (len(current) + 1) * len(example) > tokens_per_batch:
                batches.append([example])
            else:
                current.append(example)
        rng.shuffle(batches)
        for group in batches:
            yield collate(group, pad_token_id=pad_token_id)


def problem_examples(
    tokenizer: Any, problems: Iterable[Problem], *, max_length: int
) -> Iterator[SFTExample]:
    """Encode a stream of problems, one example each."""
    for problem in problems:
        yield encode_problem(tokenizer, problem, max_length=max_length)
