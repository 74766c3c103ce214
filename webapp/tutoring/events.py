"""The generation events a browser receives, built in this one module.

Every event is a plain JSON dict with a `type` key (`status`, `delta`, `snapshot`, `done`, `error`);
the inference worker and the site both build them here so their shapes cannot drift apart. On the
channel layer an event travels wrapped as {"type": "generation.<event type>", "event": {...}}, so
the consumer's handler names (`generation_delta`, ...) never collide with its own methods. Events
that follow a database write are sent on commit (`send_on_commit`).
"""

from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from worker.protocol import generation_group_name

EVENT_TYPES = ("status", "delta", "snapshot", "done", "error")
CHANNELS = ("reasoning", "answer")

Event = dict[str, Any]


def status_queued(*, position: int | None) -> Event:
    return {"type": "status", "status": "queued", "position": position}


def status_running(*, model_version: str) -> Event:
    return {"type": "status", "status": "running", "model_version": model_version}


def delta(*, seq: int, channel: str, text: str) -> Event:
    assert channel in CHANNELS, channel
    assert seq >= 1, seq
    return {"type": "delta", "seq": seq, "channel": channel, "text": text}


def snapshot(
    *, seq: int, reasoning: str, answer: str, status: str, model_version: str = ""
) -> Event:
    """Everything generated so far; live deltas with a higher seq follow."""
    return {
        "type": "snapshot",
        "seq": seq,
        "reasoning": reasoning,
        "answer": answer,
        "status": status,
        "model_version": model_version,
    }


def done(
    *,
    status: str,
    final_answer: str = "",
    verdict: str = "",
    model_version: str = "",
    completion_tokens: int | None = None,
    time_to_first_token_ms: float | None = None,
    duration_ms: float | None = None,
    seq: int | None = None,
) -> Event:
    """The end of a generation. `seq` (from the worker) is the number of its last delta, so a
    consumer that has seen fewer knows that a delta was lost on the way and resends the row."""
    return {
        "type": "done",
        "seq": seq,
        "status": status,
        "final_answer": final_answer,
        "verdict": verdict,
        "model_version": model_version,
        "completion_tokens": completion_tokens,
        "time_to_first_token_ms": _round(time_to_first_token_ms),
        "duration_ms": _round(duration_ms),
    }


def done_from_generation(generation) -> Event:
    """The `done` event of a finished Generation row (for a client that connects afterwards)."""
    return done(
        status=generation.status,
        final_answer=generation.final_answer,
        verdict=generation.verdict,
        model_version=generation.model_version_label,
        completion_tokens=generation.completion_tokens,
        time_to_first_token_ms=generation.time_to_first_token_ms,
        duration_ms=generation.duration_ms,
    )


def error(*, code: str, message: str) -> Event:
    """A failure the student can read: `message` is written for a person, never a traceback."""
    return {"type": "error", "code": code, "message": message}


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 1)


def channel_message(event: Event) -> dict[str, Any]:
    """The channel-layer message that carries `event` to the consumers of a generation group."""
    assert event["type"] in EVENT_TYPES, event
    return {"type": f"generation.{event['type']}", "event": event}


async def send_to_generation(generation_id: int, event: Event) -> None:
    """Send `event` to every socket watching the generation (any process, through Redis)."""
    await get_channel_layer().group_send(
        generation_group_name(generation_id), channel_message(event)
    )


def send_on_commit(generation_id: int, event: Event) -> None:
    """Send `event` once the current transaction commits (at once outside a transaction)."""
    transaction.on_commit(lambda: async_to_sync(send_to_generation)(generation_id, event))
