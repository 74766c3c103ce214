"""A process group's ranks on the job page: what the supervisor reported (TrainingJob.rank_beats,
written by the recorder) turned into rows of rank, host, pid, last-beat age and state.

States: "exited" once the group ended (the supervisor's last report marks every rank) or the job
is over (a run that died with its worker never sent that report, and no rank of it is alive);
"stale" when a running rank's last beat is older than rank_stale_after_seconds(); else "alive".
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from training.observer import RankBeat
from webapp.registry.models import TERMINAL_JOB_STATUSES, TrainingJob
from webapp.registry.training_jobs.heartbeat import stale_after_seconds

# Ranks beat every 2 s and the supervisor relays them every 5 s (training.c3po.launch), so a beat
# 15 s old has missed several reports: worth showing long before the supervisor gives up on the
# rank (TRAINING_STALE_SECONDS) and kills the group.
RANK_STALE_SECONDS = 15.0


def rank_stale_after_seconds() -> float:
    """A running rank whose last beat is older than this shows as stale."""
    return min(RANK_STALE_SECONDS, stale_after_seconds())


def beats_as_json(beats: list[RankBeat], *, now: datetime | None = None) -> list[dict[str, Any]]:
    """The supervisor's report as stored on the job: each beat's age turned into a time on this
    clock (the age was measured on the supervisor's, so hosts need not agree on the time)."""
    now = now or timezone.now()
    return [
        {
            "rank": beat.rank,
            "host": beat.host[:255],
            "pid": beat.pid,
            "beat_at": (now - timedelta(seconds=beat.age_seconds)).isoformat(),
            "exited": beat.exited,
        }
        for beat in sorted(beats, key=lambda b: b.rank)
    ]


def rank_rows(job: TrainingJob, *, now: datetime | None = None) -> list[dict[str, Any]]:
    """[{"rank", "host", "pid", "age_seconds", "state"}] by rank; [] for a single-process run."""
    now = now or timezone.now()
    finished = job.status in TERMINAL_JOB_STATUSES
    stale_after = rank_stale_after_seconds()
    rows = []
    for beat in job.rank_beats or []:
        beat_at = parse_datetime(str(beat.get("beat_at", "")))
        age = max(0.0, (now - beat_at).total_seconds()) if beat_at is not None else None
        if beat.get("exited") or finished:
            state = "exited"
        elif age is None or age > stale_after:
            state = "stale"
        else:
            state = "alive"
        rows.append(
            {
                "rank": int(beat["rank"]),
                "host": str(beat.get("host", "")),
                "pid": int(beat.get("pid", 0)),
                "age_seconds": None if age is None else round(age, 1),
                "state": state,
            }
        )
    return sorted(rows, key=lambda row: row["rank"])
