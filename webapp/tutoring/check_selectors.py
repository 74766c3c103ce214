"""How far a finished answer can be trusted, and whether the question is one the model knows.

`generation_answer_check` gives every finished solution one of three states, shown to the
student as a badge under the answer:

- *checked*: it matches the problem's answer key, or the statement is a pure calculation
  (`training.calculation_check`) whose exact value it matches;
- *disagrees*: the key or the exact calculation says otherwise (the page then shows what the
  check computed and offers hints instead of presenting the answer as the answer);
- *unchecked*: nothing could check it; the model's own confidence (`training.confidence`,
  stored by the worker) says whether it was unsure.

`generation_scope_note` is the note for a question outside what the serving model was trained
on: the model's manifest names its scope (`training.scope`); a model without one (Ring-lite)
gets no note. Both are pure reads of the rows and the checkpoint's manifest, computed when the
page is drawn.
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
from webapp.core.answer_checks import answer_verdict
from webapp.registry.models import ModelVersion, VersionStatus
from webapp.tutoring.models import Generation, GenerationKind, GenerationStatus, Verdict

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
    if generation.verdict == Verdict.CORRECT:
        return AnswerCheck(CHECKED, "answer key", confidence=confidence, unsure=unsure)
    if generation.verdict == Verdict.WRONG:
        return AnswerCheck(DISAGREES, "answer key", confidence=confidence, unsure=unsure)
    calculation = recognise_calculation(generation.attempt.problem.statement)
    if calculation is not None:
        # The model's final answer is untrusted text: through the site's bounded answer checker
        # (numbers in-process, anything symbolic in its worker processes under the time limit),
        # never `training.answers.verify` in this thread, where math-verify has no timeout and
        # `(999*999)!` held the web process for 4 s on every view of the page. None (ran out of
        # time) leaves the answer unchecked.
        agrees: bool | None = None
        try:
            agrees = answer_verdict(
                reference=calculation.value_text,
                answer=generation.final_answer,
                kind="number" if calculation.unit else "expression",
                unit=calculation.unit,
            )
        except Exception:  # noqa: BLE001 - a checking bug must not break the page
            logger.exception("checking generation %s failed", generation.pk)
        if agrees is not None:
            return AnswerCheck(
                CHECKED if agrees else DISAGREES,
                "calculation",
                computed=_readable(calculation.shown),
                confidence=confidence,
                unsure=unsure,
            )
    return AnswerCheck(UNCHECKED, confidence=confidence, unsure=unsure)


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
