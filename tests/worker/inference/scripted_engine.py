"""An in-process stand-in for `VllmEngine`, for the worker's unit tests only.

It "generates" a fixed completion a few characters per step with a small delay, honours `abort`
(the request ends with finish_reason "abort", as vLLM's does) and `max_tokens` ("length"), counts
requests in flight, and records what was asked of it: each request's LoRA adapter (what vLLM
would get as its `lora_request`), the adapters added and removed. An adapter whose path is in
`refuse_adapters` fails to load, as vLLM's `add_lora` does for files it cannot use. Every character is one token with
log-probability -0.01, except the first token of the second step, `weakest_logprob`. The integration tests run the real engine.
"""

import asyncio

from worker.inference.engine import Adapter, Chunk, ModelSpec


class ScriptedEngine:
    def __init__(
        self,
        spec: ModelSpec,
        completion: str,
        *,
        chars_per_step: int = 3,
        step_delay_s: float = 0.004,
        weakest_logprob: float = -0.01,
    ) -> None:
        self.spec = spec
        self.completion = completion
        self.chars_per_step = chars_per_step
        self.step_delay_s = step_delay_s
        self.weakest_logprob = weakest_logprob
        self.in_flight = 0
        self.requests: list[str] = []
        self.aborted: set[str] = set()
        # Requests whose consumer closed them before the end (vLLM aborts those).
        self.dropped: set[str] = set()
        self.closed = False
        # request id -> the adapter it carried (None: the base alone)
        self.lora_requests: dict[str, Adapter | None] = {}
        self.adapters: dict[int, Adapter] = {}  # loaded now, by int id
        self.added: list[Adapter] = []
        self.removed: list[Adapter] = []
        self.refuse_adapters: set[str] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def prompt_ids(self, problem_text: str, *, reasoning_suffix: bool = True) -> list[int]:
        return [ord(c) % 128 for c in problem_text] + ([1] if reasoning_suffix else [])

    def text_tokens(self, text: str) -> int:
        return len(text)  # one token per character, as `stream` counts them

    async def stream(self, request_id, prompt_ids, *, max_tokens, temperature, top_p, adapter=None):
        assert not self.closed, "a request reached an engine that was shut down"
        if adapter is not None:
            assert adapter.int_id in self.adapters, "a request carried an adapter never loaded"
        self.requests.append(request_id)
        self.lora_requests[request_id] = adapter
        self.in_flight += 1
        self._idle.clear()
        ended = False
        try:
            produced = 0
            for start in range(0, len(self.completion), self.chars_per_step):
                await asyncio.sleep(self.step_delay_s)
                if request_id in self.aborted:
                    ended = True
                    yield Chunk("", 0, len(prompt_ids), True, "abort")
                    return
                piece = self.completion[start : start + self.chars_per_step]
                produced += len(piece)
                logprobs = [-0.01] * len(piece)
                if start == self.chars_per_step and logprobs:
                    logprobs[0] = self.weakest_logprob
                if produced >= max_tokens:
                    ended = True
                    yield Chunk(piece, len(piece), len(prompt_ids), True, "length", tuple(logprobs))
                    return
                yield Chunk(piece, len(piece), len(prompt_ids), False, None, tuple(logprobs))
            ended = True
            yield Chunk("", 1, len(prompt_ids), True, "stop")
        finally:
            if not ended:
                self.dropped.add(request_id)
            self.in_flight -= 1
            if self.in_flight == 0:
                self._idle.set()

    async def add_adapter(self, adapter: Adapter) -> None:
        if adapter.path in self.refuse_adapters:
            raise RuntimeError(f"Loading lora {adapter.name} failed: No adapter found")
        self.adapters[adapter.int_id] = adapter
        self.added.append(adapter)

    async def remove_adapter(self, adapter: Adapter) -> None:
        self.adapters.pop(adapter.int_id, None)
        self.removed.append(adapter)

    async def abort(self, request_id: str) -> None:
        self.aborted.add(request_id)

    async def wait_idle(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def shutdown(self) -> None:
        self.closed = True
