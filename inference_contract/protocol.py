"""Redis names and message shapes shared by the site and the inference workers.

Both sides import these names so that a queue, a heartbeat, a replay buffer or a control message is
spelled in one place. Values are plain JSON (or plain strings) so that any process, or a person with
redis-cli, can read them. This module imports nothing but the standard library and reads no
settings: the site, the worker and the benchmarks all use it, each with its own Redis client.
"""

import json
from typing import Any

KEY_PREFIX = "ringtutor"


# Generation requests: a Redis Stream of {"generation_id": "<id>"} (plus "kind", "prompt_text" and
# "hint_index", see stream_entry) with one consumer group that every inference worker joins. A
# crashed worker's pending entries are re-claimed by another after CLAIM_MIN_IDLE_MS; a live worker
# touches its own entries to keep them.
GENERATION_STREAM = f"{KEY_PREFIX}:generations"

# Tutor mode: how many hints an attempt offers before only the full solution is left. The site's
# hint flow counts them; the worker cuts hint k of this many from the model's solution (hints.py).
HINTS_PER_ATTEMPT = 3
GENERATION_GROUP = "inference-workers"

# Each inference worker refreshes this key (JSON) every few seconds with a TTL; an expired key means
# the worker is gone. Fields: worker_id, state ("starting" | "serving" | "swapping" | "stopping"),
# model_version, model_version_id, in_flight, tokens_per_s, pid, host, started_at, updated_at,
# swap (the swap in progress or null), last_swap (the last result) and last_swap_error.
HEARTBEAT_PREFIX = f"{KEY_PREFIX}:worker:"
WORKER_STATES = ("starting", "serving", "swapping", "stopping")

# Pub/sub channels are global to a Redis server, while keys live in the database a client selects:
# without a scope, two sites (or test sessions) on one server heard each other's swaps and cancels.
# So each channel is named after the database number of the client that publishes or subscribes,
# and every process of one site, connected to the same REDIS_URL, agrees on the names.


def pubsub_scope(client: Any) -> str:
    """`ringtutor:db<N>`, N the database `client` (a redis-py client, sync or asyncio) selects."""
    return f"{KEY_PREFIX}:db{client.get_connection_kwargs().get('db') or 0}"


def control_channel(client: Any) -> str:
    """Control messages: {"type": "swap", "model_version_id": .., "label": .., "path": ..}."""
    return f"{pubsub_scope(client)}:control"


def swap_result_channel(client: Any) -> str:
    """Swap results: every worker publishes one JSON object per swap attempt here and pushes it on
    SWAP_LOG_KEY, so a page that was not listening can still show what happened:
    {"worker_id", "model_version_id", "label", "ok", "error", "seconds", "finished_at"}."""
    return f"{pubsub_scope(client)}:swap-results"


def cancel_channel(client: Any) -> str:
    """Cancel requests (payload: the generation id) for the worker that runs the generation;
    `cancel_key` covers a worker that claims the generation later (a re-claim after a crash)."""
    return f"{pubsub_scope(client)}:cancel"


SWAP_LOG_KEY = f"{KEY_PREFIX}:swap-log"
SWAP_LOG_LENGTH = 200

# Every event of one generation, in order, in a Redis Stream of its own (event_log.py): what the
# page's socket follows live and what a reconnecting page replays.
EVENT_LOG_TTL_SECONDS = 3600


def heartbeat_key(worker_id: str) -> str:
    return f"{HEARTBEAT_PREFIX}{worker_id}"


def cancel_key(generation_id: int) -> str:
    return f"{KEY_PREFIX}:generation:{generation_id}:cancel"


def event_log_key(generation_id: int) -> str:
    """The Redis Stream of one generation's events; each entry is {"e": "<JSON list of events>"}."""
    return f"{KEY_PREFIX}:generation:{generation_id}:events"


def stream_entry(
    generation_id: int,
    prompt_text: str | None = None,
    hint_index: int | None = None,
    kind: str | None = None,
) -> dict[str, str]:
    """The fields of one request on GENERATION_STREAM (Redis stream values are strings).

    With `kind` and `prompt_text` (what to ask: the problem statement or the student's own
    wording) the entry is self-contained, and a worker starts the engine while it claims the row.
    """
    fields = {"generation_id": str(generation_id)}
    if prompt_text:
        fields["prompt_text"] = prompt_text
    if hint_index is not None:
        fields["hint_index"] = str(hint_index)
    if kind:
        fields["kind"] = kind
    return fields


def swap_message(*, model_version_id: int | None, label: str, path: str) -> str:
    """The JSON control message that asks every worker to serve another checkpoint."""
    return json.dumps(
        {"type": "swap", "model_version_id": model_version_id, "label": label, "path": path}
    )
