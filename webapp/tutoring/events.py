"""The generation events a browser receives, built in this one module.

Every event is a plain JSON dict with a `type` key (`status`, `delta`, `snapshot`, `done`, `error`);
the inference worker and the site both build them here so their shapes cannot drift apart. They
travel through the generation's own event log (inference_contract/event_log.py), which the page's
socket follows; events that follow a database write are appended on commit (`send_on_commit`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from inference_contract.event_log import append_events
from webapp.core import after_commit
from webapp.core.redis_client import redis_client

if TYPE_CHECKING:
    from webapp.tutoring.models import Generation

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


def done_from_generation(generation: Generation) -> Event:
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


def send_to_generation(generation_id: int, event: Event) -> None:
    """Append `event` to the generation's log: every socket watching it receives it."""
    assert event["type"] in EVENT_TYPES, event
    append_events(redis_client(), generation_id, [event])


def send_on_commit(generation_id: int, event: Event) -> None:
    """Send `event` once the current transaction commits (at once outside a transaction); a failure
    is logged (webapp.core.after_commit): the page rebuilds from the stored row."""
    after_commit.send_on_commit(
        lambda: send_to_generation(generation_id, event),
        what=f"{event['type']} event for generation {generation_id}",
    )
