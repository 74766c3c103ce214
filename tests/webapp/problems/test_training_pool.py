"""The training pool: every problem with a verified reference in a set approved for training joins
it with its provenance (set, teacher, who approved the set and when); flagged, answerless and
excluded problems stay out; the row count in the selector and the model property agree."""

import json

import pytest

from webapp.problems import services
from webapp.problems.selectors import training_pool_problems, training_pool_queryset

pytestmark = pytest.mark.django_db


def test_pool_membership_and_provenance(teacher, other_teacher, student, site_admin):
    algebra = services.problem_set_create(teacher=teacher, title="Algebra")
    physics = services.problem_set_create(teacher=other_teacher, title="Physics")
    good = services.problem_create(
        problem_set=algebra,
        teacher=teacher,
        fields={"statement": "Expand (x+1)^2.", "answer": "x^2+2x+1", "tags": "algebra"},
    )
    choice = services.problem_create(
        problem_set=physics,
        teacher=other_teacher,
        fields={
            "statement": "Unit of force?",
            "choices": ["J", "N", "W"],
            "answer": "N",
            "domain": "science",
        },
    )
    services.problem_create(
        problem_set=algebra, teacher=teacher, fields={"statement": "Explain why."}
    )
    flagged = services.problem_create(
        problem_set=algebra,
        teacher=teacher,
        fields={
            "statement": "Integrate x.",
            "answer_kind": "expression",
            "answer": "\\frac{x^2}{2",
        },
    )
    excluded = services.problem_create(
        problem_set=algebra, teacher=teacher, fields={"statement": "Compute 1+1.", "answer": "2"}
    )
    services.problem_training_exclusion_update(problem=excluded, teacher=teacher, excluded=True)
    for problem_set in (algebra, physics):
        services.problem_set_training_approval_update(
            problem_set=problem_set, actor=site_admin, approved=True
        )

    pool = training_pool_problems()

    assert [p.problem_id for p in pool] == [good.pk, choice.pk]
    assert flagged.reference_error and not flagged.has_verified_reference
    first, second = pool
    assert (first.problem_set_title, first.teacher_username, first.tags) == (
        "Algebra",
        "t-ada",
        ("algebra",),
    )
    assert (second.answer_kind, second.reference_answer, second.choices) == (
        "choice",
        "B",
        ("J", "N", "W"),
    )
    assert (second.domain, second.teacher_id) == ("science", other_teacher.pk)
    assert first.training_approved_by == "a-dee" and first.training_approved_at
    assert json.loads(json.dumps(second.as_dict()))["problem_set_title"] == "Physics"
    assert all(
        p.has_verified_reference and not p.excluded_from_training for p in training_pool_queryset()
    )
    assert [p.problem_id for p in training_pool_problems(domains=["science"])] == [choice.pk]
    assert len(training_pool_problems(limit=1)) == 1

    services.problem_training_exclusion_update(problem=excluded, teacher=teacher, excluded=False)
    assert excluded.pk in {p.problem_id for p in training_pool_problems()}
