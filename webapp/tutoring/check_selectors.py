"""How far a finished answer can be trusted, and whether the question is one the model knows.

`generation_answer_check` gives every finished solution one of three states, shown to the
student as a badge under the answer:

- *checked*: it matches the problem's answer key, or the statement is a pure calculation
  (`training.calculation_check`) whose exact value it matches;
- *disagrees*: the key or the exact calculation says otherwise (the page then shows what the
  check computed and offers hints instead of presenting the answer as the answer);
- *unchecked*: nothing could check it; the model's own confidence (`training.confidence`,
  stored by the worker) says whether it was unsure.

The checks themselves run once, in the inference worker, when it stores the solution
(`worker.inference.records.verdict_for`: the answer key, else `webapp.tutoring.grading`'s exact
calculation); the page reads the stored `verdict` and `verdict_source` and only re-reads the
calculation from the statement to show it ("3 × 7 = 21": `recognise_calculation`, bounded and
without sympy), so reloading a page makes the answer checker do no work.

`generation_scope_note` is the note for a question outside what the serving model was trained
on: the model's manifest names its scope (`training.scope`); a model without one (Ring-lite)
gets no note. Both are reads of the rows and the checkpoint's manifest, computed when the page is
drawn.
"""

import functools
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from training.calculation_check import recognise_calculation
from training.confidence import UNSURE_BELOW, is_unsure
from training.scope import classify_scope, manifest_scope
from webapp.registry.models import ModelVersion, VersionStatus
from webapp.tutoring.grading import calculation_verdict
from webapp.tutoring.models import (
    Generation,
    GenerationKind,
    GenerationStatus,
    Verdict,
    VerdictSource,
)

logger = logging.getLogger(__name__)

CHECKED = "checked"
DISAGREES = "disagrees"
UNCHECKED = "unchecked"


@dataclass(frozen=True)
class AnswerCheck:
    """`source` is "answer key" or "calculation" for checked/disagrees; `computed` is what the
    calculation gave ("3 * 7 = 21"); `confidence` and `unsure` come from the token
    probabilities."""

    state: str
    source: str = ""
    computed: str = ""
    confidence: float | None = None
    unsure: bool = False

    @property
    def confidence_percent(self) -> int | None:
        return None if self.confidence is None else round(100 * self.confidence)

    @property
    def threshold_percent(self) -> int:
        return round(100 * UNSURE_BELOW)


@dataclass(frozen=True)
class ScopeNote:
    area: str
    summary: str
    model: str


def generation_answer_check(*, generation: Generation) -> AnswerCheck | None:
    """The check of a finished solution with a final answer; None for anything else."""
    if generation.kind != GenerationKind.SOLUTION or generation.status != GenerationStatus.DONE:
        return None
    if not generation.final_answer or generation.cut_off:
        return None
    confidence = generation.confidence
    unsure = is_unsure(confidence)
    verdict: str | None = generation.verdict
    source = generation.verdict_source
    if not source:
        # Finished before the worker stored its calculation check (or by a worker older than
        # this page, during a deploy): a correct or wrong verdict is the answer key's, and a pure
        # calculation is checked here as the page always did, so an old wrong answer stays
        # flagged. Working these out in a data migration instead would run the answer checker on
        # every old answer at migrate time; no new row takes this path, so the per-view cost it
        # keeps is bounded to answers that already existed.
        if verdict in (Verdict.CORRECT, Verdict.WRONG):
            source = VerdictSource.ANSWER_KEY
        else:
            verdict = calculation_verdict(
                statement=generation.attempt.problem.statement,
                final_answer=generation.final_answer,
            )
            source = VerdictSource.CALCULATION
    if verdict not in (Verdict.CORRECT, Verdict.WRONG):
        return AnswerCheck(UNCHECKED, confidence=confidence, unsure=unsure)
    state = CHECKED if verdict == Verdict.CORRECT else DISAGREES
    if source == VerdictSource.CALCULATION:
        # What was computed, read again from the statement (bounded, no sympy): the same
        # statement gives the worker's calculation.
        calculation = recognise_calculation(generation.attempt.problem.statement)
        computed = _readable(calculation.shown) if calculation is not None else ""
        return AnswerCheck(
            state, "calculation", computed=computed, confidence=confidence, unsure=unsure
        )
    return AnswerCheck(state, "answer key", confidence=confidence, unsure=unsure)


def _readable(shown: str) -> str:
    return shown.replace(" * ", " × ").replace(" / ", " ÷ ")


def generation_scope_note(*, generation: Generation) -> ScopeNote | None:
    """The out-of-scope note for a generation's question, or None when the question looks like
    one the serving model was trained on or the model declares no scope."""
    if generation.kind != GenerationKind.SOLUTION:
        return None
    verdict = classify_scope(generation.attempt.problem.statement)
    if verdict.in_scope:
        return None
    manifest, label = _serving_model(generation)
    scope = manifest_scope(manifest)
    if scope is None:
        return None
    return ScopeNote(area=verdict.area or "", summary=scope["summary"], model=label)


def _serving_model(generation: Generation) -> tuple[dict, str]:
    """The manifest and label of the model that answered (or will answer) the generation: its
    registered version (the manifest stored at registration, else the file), else what a worker
    serves when nothing else is said (the champion, or the configured fallback model)."""
    version = generation.model_version if generation.model_version_id is not None else None
    if version is None:
        version = ModelVersion.objects.filter(status=VersionStatus.CHAMPION).first()
    if version is not None:
        label = generation.model_version_label or version.label
        return (
            version.manifest if "scope" in (version.manifest or {}) else _manifest(version.path)
        ), label
    path = settings.RING_MODEL
    return _manifest(path), generation.model_version_label or Path(path.rstrip("/")).name


def _manifest(path: str) -> dict:
    manifest = Path(path) / "manifest.json"
    try:
        stamp = manifest.stat().st_mtime_ns
    except OSError:
        return {}  # a hub id or a directory without a manifest: no declared scope
    return _read_manifest(str(manifest), stamp)


@functools.lru_cache(maxsize=16)
def _read_manifest(path: str, stamp: int) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        logger.warning("unreadable manifest %s", path)
        return {}
