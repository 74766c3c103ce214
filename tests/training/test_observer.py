"""The one observer interface: what each ready-made observer does with a report, and the torchrun
launcher's events file carrying every report from rank 0 to the supervisor's observer unchanged."""

import io
import json
import time

from training.c3po.launch import _BeatReporter, _dispatch, _EventFileObserver, read_rank_beats
from training.observer import (
    ConsoleObserver,
    FunctionObserver,
    RankBeat,
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

    def resumed(self, step):
        self.heard.append(("resumed", step))

    def should_stop(self):
        return False

    def rank_heartbeats(self, beats):
        self.heard.append(("ranks", beats))


def test_every_ready_made_observer_has_every_method():
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
    rank_zero.resumed(3)
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
        ("resumed", 3),
    ]


def write_beat(control, rank, pid, age, host="node"):
    payload = {"rank": rank, "pid": pid, "host": host, "time": time.time() - age}
    (control / f"heartbeat-{rank}.json").write_text(json.dumps(payload))


def test_the_supervisor_reads_every_ranks_beat_and_skips_a_torn_file(tmp_path):
    write_beat(tmp_path, 0, 11, 3.0)
    write_beat(tmp_path, 1, 12, 0.0, host="other")
    (tmp_path / "heartbeat-2.json").write_text('{"rank": 2, "pid"')  # being written
    beats = read_rank_beats(tmp_path)
    assert sorted(beats) == [0, 1]
    assert (beats[0].pid, beats[0].host, beats[0].exited) == (11, "node", False)
    assert 3.0 <= beats[0].age_seconds < 4.0 and beats[1].host == "other"
    assert all(b.exited for b in read_rank_beats(tmp_path, exited=True).values())


def test_beats_are_reported_when_a_rank_appears_or_restarts_else_once_a_period(tmp_path):
    heard = []
    reporter = _BeatReporter(FunctionObserver(rank_heartbeats=heard.append), period=3600)
    reporter.tick({})
    assert heard == []  # no rank has started yet
    write_beat(tmp_path, 0, 11, 0.0)
    reporter.tick(read_rank_beats(tmp_path))
    write_beat(tmp_path, 1, 12, 0.0)
    reporter.tick(read_rank_beats(tmp_path))
    reporter.tick(read_rank_beats(tmp_path))  # nothing new, and the period has not passed
    write_beat(tmp_path, 1, 13, 0.0)  # rank 1 restarted
    reporter.tick(read_rank_beats(tmp_path))
    assert [[(b.rank, b.pid) for b in report] for report in heard] == [
        [(0, 11)],
        [(0, 11), (1, 12)],
        [(0, 11), (1, 13)],
    ]
    assert all(isinstance(b, RankBeat) for report in heard for b in report)

    every_time = _BeatReporter(FunctionObserver(rank_heartbeats=heard.append), period=0.0)
    heard.clear()
    every_time.tick(read_rank_beats(tmp_path))
    every_time.tick(read_rank_beats(tmp_path))
    assert len(heard) == 2
