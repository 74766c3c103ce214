"""Messages from the site to the inference workers, and the swap results they send back.

Pure Redis (a synchronous `redis.Redis` with decode_responses=True is passed in), so the site, the
registry's promotion service and the benchmarks can call it without importing vLLM or Django:

- `publish_swap`: ask every worker to serve another checkpoint (blue/green, checked first);
- `publish_cancel`: stop a running generation inside whichever worker's engine runs it;
- `recent_swap_results`: what the workers reported for the last swaps (newest first).
"""

import json

import redis

from inference_contract.protocol import (
    EVENT_LOG_TTL_SECONDS,
    SWAP_LOG_KEY,
    cancel_channel,
    cancel_key,
    control_channel,
    swap_message,
)


def publish_swap(
    client: redis.Redis, *, model_version_id: int | None, label: str, path: str
) -> int:
    """Broadcast a swap; returns how many subscribers (workers) received it.

    A worker that is down or restarting misses the message, and needs none: it starts on the
    registry's champion, and running workers also compare themselves with the champion every
    `INFERENCE_RECONCILE_SECONDS`.
    """
    message = swap_message(model_version_id=model_version_id, label=label, path=path)
    return int(client.publish(control_channel(client), message))


def publish_cancel(client: redis.Redis, *, generation_id: int) -> None:
    """Ask the worker running `generation_id` to abort it in its engine.

    The key covers a worker that claims the generation after the message went out (a re-claim
    after a crash); the message reaches the worker that runs it now.
    """
    with client.pipeline(transaction=True) as pipe:
        pipe.set(cancel_key(generation_id), "1", ex=EVENT_LOG_TTL_SECONDS)
        pipe.publish(cancel_channel(client), str(generation_id))
        pipe.execute()


def recent_swap_results(client: redis.Redis, *, limit: int = 20) -> list[dict]:
    """The workers' last swap reports, newest first (protocol.swap_result_channel)."""
    results = []
    for raw in client.lrange(SWAP_LOG_KEY, 0, max(0, limit - 1)):
        try:
            results.append(json.loads(raw))
        except ValueError:
            continue
    return results
