"""The registry table's figures: the reference evaluation is what a version's accuracy shows; a
quick check (another problem count or token cap) is kept apart and never takes its place."""

import pytest

from tests.webapp.registry.factories import domain_result
from webapp.registry.models import Evaluation, EvaluationStatus, ModelVersion, VersionStatus
from webapp.registry.selectors import evaluation_is_reference, model_version_rows
from webapp.registry.training_jobs.evaluation import evaluation_options

pytestmark = pytest.mark.django_db


def _evaluation(version, correct: int, n: int, **options) -> Evaluation:
    return Evaluation.objects.create(
        model_version=version,
        status=EvaluationStatus.DONE,
        options=evaluation_options(**options),
        results={"math": domain_result(correct, n)},
    )


def test_a_quick_check_does_not_replace_the_reference_figure():
    champion = ModelVersion.objects.create(label="v1", path="/c/v1", status=VersionStatus.CHAMPION)
    reference = _evaluation(champion, 40, 100)
    quick = _evaluation(champion, 0, 4, n_per_level=1, max_new_tokens=16)
    assert evaluation_is_reference(reference) and not evaluation_is_reference(quick)

    (row,) = model_version_rows()
    assert row.finished_evaluation == reference
    assert row.domains[0][1]["n"] == 100
    assert row.quick_check == quick and row.quick_domains[0][1]["n"] == 4
    assert row.promotion_basis == reference


def test_a_quick_check_older_than_the_reference_is_not_shown_and_alone_it_is_the_basis():
    version = ModelVersion.objects.create(label="v2", path="/c/v2")
    quick = _evaluation(version, 1, 4, n_per_level=1, max_new_tokens=16)
    (row,) = model_version_rows()
    assert row.finished_evaluation is None and row.domains == []
    assert row.promotion_basis == quick  # what Promote's confirmation cites, named a quick check

    _evaluation(version, 50, 100)
    (row,) = model_version_rows()
    assert row.quick_check is None
