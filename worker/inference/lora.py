"""LoRA adapters served on the running engine: which path a swap takes, and the adapter's view.

A LoRA C3PO job registers a merged full checkpoint whose manifest names the adapter it was made
from (`lora_adapter`: the adapter directory and its base, training/c3po/lora.py). A worker started
with `INFERENCE_LORA=1` (vLLM's `enable_lora`) can serve such a version by registering the adapter
in the engine it already runs, when that engine serves the adapter's base: no second engine, no
weights loaded twice, the switch takes as long as the adapter's check. Every other case goes
through the blue/green swap with the merged checkpoint (swap.py), so the registry's version is
served either way. `choose_swap_path` is that decision, a pure function of what the worker serves,
what the target's manifest says and the worker's LoRA settings.

`AdapterEngine` is the base engine seen through one adapter: it satisfies `Engine`, and every
request it starts carries the adapter (vLLM's `LoRARequest`). A generation pins the engine it
started on, so it pins the adapter too: a hot-load or a rollback to the base changes what new
generations get, never a running one.
"""

import asyncio
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from worker.inference.engine import Adapter, Chunk, Engine, ModelSpec, ProbeOutput

MANIFEST_NAME = "manifest.json"


class SwapPath(StrEnum):
    """How a worker moves to a version."""

    BLUE_GREEN = "blue-green"  # a second engine on the full (merged) checkpoint, checked first
    HOT_LOAD = "lora-hot-load"  # the adapter registered in the running engine, checked first
    BASE = "base"  # the running engine without an adapter (a rollback to the base)


@dataclass(frozen=True)
class AdapterRef:
    """What a merged checkpoint says of the adapter it was made from (paths resolved)."""

    path: str  # the adapter directory (adapter_model.safetensors, adapter_config.json, manifest)
    base: str  # the checkpoint the adapter applies to
    rank: int
    # Set when the adapter cannot be read on this host (absent, unreadable manifest): the merged
    # checkpoint is then served the full way.
    problem: str = ""


@dataclass(frozen=True)
class SwapChoice:
    path: SwapPath
    reason: str


def resolve_checkpoint_path(path: str) -> str:
    """A checkpoint path as the worker compares it: a directory's real path (relative paths are
    the working directory's, as the registry's are); anything else (a hub id) as written."""
    return os.path.realpath(path) if os.path.exists(path) else path


def choose_swap_path(
    *,
    target: ModelSpec,
    base: ModelSpec,
    base_path: str,
    adapter: AdapterRef | None,
    lora_enabled: bool,
    max_rank: int,
) -> SwapChoice:
    """The way to serve `target` from a worker whose running engine serves `base`.

    `base_path` is `base.path` resolved (`resolve_checkpoint_path`); `adapter` is what the
    target's manifest names (`read_adapter_ref`), None for a checkpoint that is not LoRA-trained.
    """
    if target == base:
        return SwapChoice(SwapPath.BASE, "the running engine's own checkpoint")
    if adapter is None:
        return SwapChoice(SwapPath.BLUE_GREEN, "a full checkpoint (no LoRA adapter)")
    if not lora_enabled:
        return SwapChoice(SwapPath.BLUE_GREEN, "LoRA serving is off (INFERENCE_LORA=0)")
    if adapter.problem:
        return SwapChoice(SwapPath.BLUE_GREEN, adapter.problem)
    if adapter.base != base_path:
        return SwapChoice(
            SwapPath.BLUE_GREEN,
            f"the adapter's base {adapter.base} is not the running engine's {base_path}",
        )
    if adapter.rank > max_rank:
        return SwapChoice(
            SwapPath.BLUE_GREEN,
            f"the adapter's rank {adapter.rank} is above INFERENCE_MAX_LORA_RANK={max_rank}",
        )
    return SwapChoice(SwapPath.HOT_LOAD, f"a rank-{adapter.rank} adapter on the running base")


def read_adapter_ref(checkpoint: str) -> AdapterRef | None:
    """The adapter a checkpoint's manifest names, or None when it names none (blocking I/O).

    Reads the manifests only; the adapter's files are verified before loading
    (`verify_adapter`). A checkpoint without a readable manifest is None here: the blue/green
    path then refuses it with ringmodel's own error.
    """
    try:
        manifest = json.loads((Path(checkpoint) / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None
    named = manifest.get("lora_adapter") if isinstance(manifest, dict) else None
    if not isinstance(named, dict) or not named.get("adapter"):
        return None
    adapter_path = resolve_checkpoint_path(str(named["adapter"]))
    base = resolve_checkpoint_path(str(named.get("base") or ""))
    try:
        adapter_manifest = json.loads((Path(adapter_path) / MANIFEST_NAME).read_text())
        rank = int(adapter_manifest["lora"]["rank"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        problem = f"its adapter {adapter_path} cannot be read on this host ({error})"
        return AdapterRef(path=adapter_path, base=base, rank=0, problem=problem)
    return AdapterRef(path=adapter_path, base=base, rank=rank)


def verify_adapter(ref: AdapterRef) -> None:
    """Check every adapter file against its manifest's sha256 and the manifest's base against
    `ref.base` (blocking: run it in a thread). Raises ValueError saying what is wrong."""
    from training.c3po.lora import read_adapter_manifest

    manifest = read_adapter_manifest(ref.path)
    named_base = resolve_checkpoint_path(str(manifest.get("base_checkpoint") or ""))
    if named_base != ref.base:
        raise ValueError(
            f"{ref.path}: the adapter's manifest names base {named_base}, "
            f"the merged checkpoint's names {ref.base}"
        )


class AdapterEngine:
    """The base engine serving one adapter: every request started here carries it.

    Counts its own requests, so the adapter can be removed from the engine once the last
    generation that started on it ends; the base's own count (all requests, with or without an
    adapter) is what a blue/green swap waits for before shutting the engine down.
    """

    def __init__(self, base: Engine, adapter: Adapter) -> None:
        self.base = base
        self.adapter = adapter
        self.spec = adapter.spec
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def prompt_ids(self, problem_text: str, *, reasoning_suffix: bool = True) -> list[int]:
        return self.base.prompt_ids(problem_text, reasoning_suffix=reasoning_suffix)

    def text_tokens(self, text: str) -> int:
        return self.base.text_tokens(text)

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
        # `adapter` is part of Engine's signature; this view always serves its own.
        self.in_flight += 1
        self._idle.clear()
        try:
            async for chunk in self.base.stream(
                request_id,
                prompt_ids,
                max_tokens=max_tokens,
                temperature=temperature,
                top_p=top_p,
                adapter=self.adapter,
            ):
                yield chunk
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self._idle.set()

    async def probe(
        self,
        request_id: str,
        prompt_ids: list[int],
        *,
        max_tokens: int,
        adapter: Adapter | None = None,
    ) -> ProbeOutput:
        """The engine check's greedy probe, under this view's adapter."""
        return await self.base.probe(
            request_id, prompt_ids, max_tokens=max_tokens, adapter=self.adapter
        )

    async def abort(self, request_id: str) -> None:
        await self.base.abort(request_id)

    async def wait_idle(self, timeout: float) -> bool:
        """True once no request of this adapter runs; False if `timeout` passed first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def add_adapter(self, adapter: Adapter) -> None:
        await self.base.add_adapter(adapter)

    async def remove_adapter(self, adapter: Adapter) -> None:
        await self.base.remove_adapter(adapter)

    async def shutdown(self) -> None:
        await self.base.shutdown()


def base_engine(engine: Engine) -> Engine:
    """The engine process behind `engine` (itself, or the base of an adapter's view)."""
    return engine.base if isinstance(engine, AdapterEngine) else engine
