"""Rows stored before direction controls were removed on the way in lose them when the site is
migrated (problems 0011, classes 0002, tutoring 0006): problem statements, answer keys, choices
and tags (with the duplicate key computed again), set titles, class names, students' own answers
and feedback. Rows without a control are not written."""

import pytest

from tests.fixtures.migrations import migrate
from webapp.problems.content_key import problem_content_key

BEFORE = [
    ("problems", "0010_remove_problemupload_items"),
    ("classes", "0001_initial"),
    ("tutoring", "0005_generation_verdict_source"),
]
AFTER = [
    ("problems", "0011_remove_direction_controls"),
    ("classes", "0002_remove_direction_controls"),
    ("tutoring", "0006_remove_direction_controls"),
]
RLO, PDF, RLI, PDI = "\u202e", "\u202c", "\u2067", "\u2069"


@pytest.mark.django_db(transaction=True)
def test_stored_rows_lose_their_direction_controls():
    apps = migrate(BEFORE)
    try:
        user_model = apps.get_model("accounts", "User")
        teacher = user_model.objects.create(username="t-bidi", role="teacher")
        student = user_model.objects.create(username="s-bidi", role="student")
        problem_set = apps.get_model("problems", "ProblemSet").objects.create(
            owner=teacher, title=f"Algebra {RLO}1 tes{PDF}", description=f"{RLI}x{PDI}"
        )
        spoofed = f"Solve x = {RLO}21{PDF}."
        problem_model = apps.get_model("problems", "Problem")
        problem = problem_model.objects.create(
            problem_set=problem_set,
            position=0,
            statement=spoofed,
            content_key=problem_content_key(spoofed),
            answer_kind="choice",
            reference_answer=f"{RLO}B",
            choices=[f"{RLO}12", "21", 3],
            tags=[f"alg{RLI}ebra{PDI}"],
        )
        arabic = "احسب 12 + 5"
        untouched = problem_model.objects.create(
            problem_set=problem_set,
            position=1,
            statement=arabic,
            content_key="left as it was",
        )
        classroom = apps.get_model("classes", "Classroom").objects.create(
            teacher=teacher, name=f"{RLO}A7 ssalC", join_code="BIDI0001"
        )
        attempt = apps.get_model("tutoring", "Attempt").objects.create(
            student=student, problem=problem
        )
        own = apps.get_model("tutoring", "OwnAnswer").objects.create(
            attempt=attempt, answer=f"{RLO}5/6"
        )
        generation = apps.get_model("tutoring", "Generation").objects.create(attempt=attempt)
        feedback = apps.get_model("tutoring", "Feedback").objects.create(
            generation=generation, user=student, rating=-1, text=f"wrong {RLO}sp{PDF}"
        )

        apps = migrate(AFTER)

        problem = apps.get_model("problems", "Problem").objects.get(pk=problem.pk)
        assert problem.statement == "Solve x = 21."
        assert problem.content_key == problem_content_key("Solve x = 21.")
        assert (problem.reference_answer, problem.choices) == ("B", ["12", "21", 3])
        assert problem.tags == ["algebra"]
        # A row without a control is not rewritten: its (deliberately odd) key is as it was.
        untouched = apps.get_model("problems", "Problem").objects.get(pk=untouched.pk)
        assert (untouched.statement, untouched.content_key) == (arabic, "left as it was")
        problem_set = apps.get_model("problems", "ProblemSet").objects.get(pk=problem_set.pk)
        assert (problem_set.title, problem_set.description) == ("Algebra 1 tes", "x")
        assert apps.get_model("classes", "Classroom").objects.get(pk=classroom.pk).name == (
            "A7 ssalC"
        )
        assert apps.get_model("tutoring", "OwnAnswer").objects.get(pk=own.pk).answer == "5/6"
        assert apps.get_model("tutoring", "Feedback").objects.get(pk=feedback.pk).text == (
            "wrong sp"
        )
    finally:
        migrate(AFTER)
