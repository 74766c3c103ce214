"""The one observer interface: what each ready-made observer does with a report, and the torchrun
launcher's events file carrying every report from rank 0 to the supervisor's observer unchanged."""

import io
import json

from training.c3po.launch import _dispatch, _EventFileObserver
from training.observer import (
    ConsoleObserver,
    FunctionObserver,
    SilentObserver,
    TrainingObserver,
)


class Recording:
    """A stand-in caller that keeps every report it hears."""

    def __init__(self):
        self.heard = []

    def metrics(self, step, metrics):
        self.heard.append(("metrics", step, metrics))

    def log(self, line):
        self.heard.append(("log", line))

    def samples(self, step, samples):
        self.heard.append(("samples", step, samples))

    def checkpoint_written(self, step, path, info):
        self.heard.append(("checkpoint", step, path, info))

    def should_stop(self):
        return False


def test_every_ready_made_observer_has_the_five_methods():
    for observer in (SilentObserver(), FunctionObserver(), ConsoleObserver(io.StringIO())):
        assert isinstance(observer, TrainingObserver)
    assert isinstance(Recording(), TrainingObserver)


def test_the_silent_observer_never_stops_the_run():
    observer = SilentObserver()
    observer.metrics(1, {"reward_mean": 1.0})
    observer.checkpoint_written(1, "/x", {})
    assert observer.should_stop() is False


def test_a_function_observer_calls_only_the_functions_it_was_given():
    seen = []
    observer = FunctionObserver(
        metrics=lambda step, m: seen.append((step, m)), should_stop=lambda: len(seen) > 1
    )
    observer.log("ignored")
    observer.samples(1, [{"completion": "x"}])
    observer.metrics(1, {"kl": 0.1})
    assert seen == [(1, {"kl": 0.1})] and observer.should_stop() is False
    observer.metrics(2, {"kl": 0.2})
    assert observer.should_stop() is True


def test_the_console_observer_prints_log_lines_only():
    stream = io.StringIO()
    observer = ConsoleObserver(stream)
    observer.log("stage math: 4 steps")
    observer.metrics(1, {"reward_mean": 0.5})
    assert stream.getvalue() == "stage math: 4 steps\n"


def test_rank_zeros_events_file_relays_each_report_to_the_supervisors_observer(tmp_path):
    events, stop = tmp_path / "events.jsonl", tmp_path / "STOP"
    rank_zero = _EventFileObserver(events, stop)
    rank_zero.metrics(3, {"reward_mean": 0.25})
    rank_zero.log("step 3")
    rank_zero.samples(3, [{"completion": "4", "stage": "math"}])
    rank_zero.checkpoint_written(3, "/ckpt/step-3", {"stage": "math", "stage_step": 3, "step": 3})
    assert rank_zero.should_stop() is False
    stop.touch()
    assert rank_zero.should_stop() is True

    caller = Recording()
    for line in events.read_text().splitlines():
        _dispatch(json.loads(line), caller)
    assert caller.heard == [
        ("metrics", 3, {"reward_mean": 0.25}),
        ("log", "step 3"),
        ("samples", 3, [{"completion": "4", "stage": "math"}]),
        ("checkpoint", 3, "/ckpt/step-3", {"stage": "math", "stage_step": 3, "step": 3}),
    ]
