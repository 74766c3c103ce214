"""Run one inference worker: `python -m worker.inference`.

The worker serves the registry's champion checkpoint (settings.RING_MODEL on a site that has none)
with a vLLM engine, takes generation requests from the Redis Stream shared by every worker, streams
each answer to the browsers watching it, and swaps to a new checkpoint when an admin promotes one.
Start as many as the machine holds; they share the queue. SIGTERM (or Ctrl-C) stops claiming,
lets short answers finish and hands the rest back to the queue.

Settings come from the environment through webapp.settings: DATABASE_URL, REDIS_URL, RING_MODEL,
INFERENCE_DTYPE, INFERENCE_MAX_MODEL_LEN, INFERENCE_MAX_NEW_TOKENS, VLLM_CPU_KVCACHE_SPACE, LOG_LEVEL
and the worker's own INFERENCE_* variables (settings.INFERENCE; docs/inference-worker.md).
"""

import argparse
import asyncio
import logging
import os
import signal
import sys

import uvloop


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m worker.inference",
        description=__doc__.split("\n\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Environment: " + __doc__.split("\n\n")[2].split(":", 1)[1].strip(),
    )
    parser.add_argument(
        "--worker-id", help="name in heartbeats and the consumer group (default: host-pid)"
    )
    parser.add_argument(
        "--max-in-flight",
        type=int,
        help="requests batched at once by the engine (default: INFERENCE_MAX_NUM_SEQS or 64)",
    )
    parser.add_argument(
        "--model",
        help="checkpoint to serve when the registry has no champion (default: RING_MODEL)",
    )
    parser.add_argument(
        "--eager",
        action="store_true",
        help="skip torch.compile (starts twice as fast, generates a little slower)",
    )
    parser.add_argument("--log-level", help="root log level (default: LOG_LEVEL or INFO)")
    parser.add_argument(
        "--check-heartbeat",
        action="store_true",
        help="exit 0 if a worker on this host is serving (its heartbeat is live), else 1; "
        "for container health checks",
    )
    return parser.parse_args(argv)


def check_heartbeat() -> int:
    """Health check: is an inference worker on this host serving, according to Redis?"""
    import socket

    from webapp.core.health import inference_workers

    host = socket.gethostname()
    serving = [
        w for w in inference_workers() if w.get("host") == host and w.get("state") == "serving"
    ]
    print("serving" if serving else f"no serving inference worker on {host}")
    return 0 if serving else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    import django

    django.setup()  # settings.LOGGING configures the root logger at settings.LOG_LEVEL
    if args.log_level:
        logging.getLogger().setLevel(args.log_level.upper())
    if args.check_heartbeat:
        return check_heartbeat()

    from dataclasses import replace

    from worker.inference.config import config_from_settings
    from worker.inference.worker import InferenceWorker

    config = config_from_settings()
    if args.worker_id:
        config = config.with_overrides(worker_id=args.worker_id)
    if args.model:
        config = config.with_overrides(fallback_model=args.model)
    if args.max_in_flight or args.eager:
        engine = config.engine
        if args.max_in_flight:
            engine = replace(engine, max_num_seqs=args.max_in_flight)
        if args.eager:
            engine = replace(engine, enforce_eager=True)
        config = config.with_overrides(engine=engine)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await InferenceWorker(config).run(stop)

    try:
        # uvloop, as uvicorn runs the site: the loop carries every token of every answer (the
        # engine's output handler, the flushes' Redis writes), and its C transports and
        # scheduling cost less per call than asyncio's own (docs/inference-worker.md, "The event
        # loop").
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(serve())
    except Exception:
        logging.getLogger("worker.inference").exception("the inference worker stopped")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
