"""Generation events: each shape round-trips through JSON and travels under a handler-safe type."""

import json

import pytest

from webapp.tutoring import events
from webapp.tutoring.models import Generation


@pytest.mark.parametrize(
    "event",
    [
        events.status_queued(position=3),
        events.status_running(model_version="ring-tiny"),
        events.delta(seq=1, channel="reasoning", text="7 + 8 = 15"),
        events.snapshot(seq=9, reasoning="r", answer="a", status="running", model_version="v"),
        events.done(
            status="done",
            final_answer="85",
            verdict="correct",
            model_version="ring-tiny",
            completion_tokens=120,
            time_to_first_token_ms=12.345,
            duration_ms=980.04,
        ),
        events.error(code="prompt_too_long", message="This problem is too long."),
    ],
)
def test_every_event_round_trips_through_json(event):
    assert json.loads(json.dumps(event)) == event
    assert event["type"] in events.EVENT_TYPES


def test_done_rounds_timings_and_keeps_the_contract_keys():
    event = events.done(status="cancelled", time_to_first_token_ms=3.14159, duration_ms=None)
    assert set(event) == {
        "type",
        "status",
        "final_answer",
        "verdict",
        "model_version",
        "completion_tokens",
        "time_to_first_token_ms",
        "duration_ms",
        "seq",
    }
    assert event["time_to_first_token_ms"] == 3.1 and event["duration_ms"] is None


def test_done_from_a_finished_row():
    row = Generation(
        status="done",
        final_answer="12",
        verdict="wrong",
        model_version_label="ring-tiny-v2",
        completion_tokens=40,
        time_to_first_token_ms=8.0,
        duration_ms=400.0,
    )
    assert events.done_from_generation(row) == events.done(
        status="done",
        final_answer="12",
        verdict="wrong",
        model_version="ring-tiny-v2",
        completion_tokens=40,
        time_to_first_token_ms=8.0,
        duration_ms=400.0,
    )


def test_bad_events_are_refused():
    with pytest.raises(AssertionError):
        events.delta(seq=0, channel="reasoning", text="x")
    with pytest.raises(AssertionError):
        events.delta(seq=1, channel="scratchpad", text="x")
    with pytest.raises(AssertionError):
        events.send_to_generation(1, {"type": "echo"})
