"""How the supervisor reads a process group's exit status: a group that crashes while shutting
down, after every rank finished the job, keeps the job's result (a gloo rank can abort in C++
teardown, "terminate called without an active exception", after its work is done), while a rank
that crashes before it finished still fails the job.

The ranks are stood in for by one small process that writes what real ranks write into the
control directory (heartbeats, rank 0's result, the finished marks) and then aborts; the real
two-rank group is tested in test_launch.py."""

import sys
import textwrap

import pytest

from training.c3po import launch
from training.c3po.config import C3POConfig
from training.c3po.launch import RankFailure, run_under_torchrun
from training.c3po.pipeline import JobSpec, StageSpec
from training.observer import FunctionObserver

RESULT = {
    "final_checkpoint": "/jobs/7/stage-1-math/step-4",
    "stopped": False,
    "stages": [
        {
            "name": "math",
            "steps": 4,
            "final_checkpoint": "/jobs/7/stage-1-math/step-4",
            "train_problems": 5,
            "held_out_problems": 1,
            "skipped": None,
        }
    ],
    "start_checkpoint": "/base",
}


def spec(tmp_path) -> JobSpec:
    return JobSpec(
        base_checkpoint=str(tmp_path / "base"),
        output_dir=str(tmp_path / "job"),
        problems=[],
        stages=[StageSpec("math", ("math",), 4)],
        config=C3POConfig.ring_tiny(),
    )


def stand_in_group(monkeypatch, *, finished_ranks: tuple[int, ...]) -> None:
    """torchrun replaced by a process that plays two ranks which finish (or not), then aborts."""
    script = textwrap.dedent(
        f"""
        import json, os, socket, sys, time
        from pathlib import Path
        control = Path(sys.argv[1])
        for rank in (0, 1):
            beat = {{"rank": rank, "pid": os.getpid(), "host": socket.gethostname(),
                     "time": time.time()}}
            (control / f"heartbeat-{{rank}}.json").write_text(json.dumps(beat))
        (control / "{launch.RESULT_NAME}").write_text(json.dumps({RESULT!r}))
        for rank in {finished_ranks!r}:
            (control / f"{launch.FINISHED_PREFIX}{{rank}}").touch()
        sys.stderr.write("terminate called without an active exception\\n")
        sys.stderr.flush()
        os.abort()
        """
    )

    def command(*, nproc_per_node, spec_path, control, rendezvous=None):
        return [sys.executable, "-c", script, str(control)]

    monkeypatch.setattr(launch, "torchrun_command", command)


def test_a_crash_while_shutting_down_after_every_rank_finished_keeps_the_result(
    tmp_path, monkeypatch
):
    stand_in_group(monkeypatch, finished_ranks=(0, 1))
    lines = []
    result = run_under_torchrun(
        spec(tmp_path),
        FunctionObserver(log=lines.append),
        nproc_per_node=2,
        control_dir=tmp_path / "control",
        poll_seconds=0.05,
    )
    assert result.final_checkpoint == RESULT["final_checkpoint"] and not result.stopped
    assert result.stages[0].steps == 4
    # The admin is told the group did not exit cleanly.
    assert any("exited with -6 while shutting down" in line for line in lines)


def test_a_rank_that_crashes_before_it_finished_fails_the_job(tmp_path, monkeypatch):
    # Rank 1 never got past the last barrier, so rank 0's result is not the whole job's.
    stand_in_group(monkeypatch, finished_ranks=(0,))
    with pytest.raises(RankFailure, match="exited with -6"):
        run_under_torchrun(
            spec(tmp_path),
            nproc_per_node=2,
            control_dir=tmp_path / "control",
            poll_seconds=0.05,
        )


def test_marks_left_by_an_earlier_run_do_not_count_for_the_next(tmp_path, monkeypatch):
    control = tmp_path / "control"
    control.mkdir()
    for rank in (0, 1):
        (control / f"{launch.FINISHED_PREFIX}{rank}").touch()
    stand_in_group(monkeypatch, finished_ranks=())
    with pytest.raises(RankFailure):
        run_under_torchrun(spec(tmp_path), nproc_per_node=2, control_dir=control, poll_seconds=0.05)
