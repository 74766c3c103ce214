"""Fuzzing every page's query parameters, as every role, and the join code.

Every GET page of the site (with real ids: a class, a set, a problem, an assignment, an attempt, a
generation, a staged upload, a training job) is requested as anonymous, student, teacher and
admin, with query strings made of the parameters the views read and of arbitrary names, holding
hostile values (NUL, superscript and Arabic-Indic digits, 20-digit numbers, SQL, HTML, long runs),
with and without htmx's headers. Property: never a 5xx, never more than a second of server time.
"""

import pytest
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from tests.security.fuzzing import assert_bounded, fuzz, hostile_text, server_time
from webapp.classes.models import Assignment, Classroom, Enrollment
from webapp.problems.content_key import problem_content_key
from webapp.problems.models import Problem, ProblemSet
from webapp.problems.services import problem_upload_preview
from webapp.registry.models import ModelVersion, TrainingJob
from webapp.tutoring.models import Attempt, Generation

pytestmark = pytest.mark.django_db

# Every name a view reads from the query string, and a few it does not.
PARAMETERS = ["page", "q", "show", "tab", "assignment", "into", "part", "format", "next",
              "code", "id", "x"]  # fmt: skip
EXAMPLES_PER_ROLE = 75


@pytest.fixture
def pages(teacher, student, admin) -> list[str]:
    problem_set = ProblemSet.objects.create(owner=teacher, title="Algebra", is_practice=True)
    problem = Problem.objects.create(
        problem_set=problem_set,
        position=0,
        statement="Compute 2 + 2.",
        content_key=problem_content_key("Compute 2 + 2."),
        answer_kind="number",
        reference_answer="4",
    )
    classroom = Classroom.objects.create(teacher=teacher, name="7B", join_code="JOIN7B")
    Enrollment.objects.create(classroom=classroom, student=student)
    assignment = Assignment.objects.create(classroom=classroom, problem_set=problem_set)
    attempt = Attempt.objects.create(student=student, problem=problem)
    generation = Generation.objects.create(attempt=attempt, kind="solution")
    staged = problem_upload_preview(
        teacher=teacher, data=b"statement,answer\nWhat is 2+3?,5\n", filename="set.csv"
    )
    champion = ModelVersion.objects.create(label="v1", path="/checkpoints/v1", status="champion")
    job = TrainingJob.objects.create(base_model=champion, stage="c3po-math", total_steps=3)
    named = [
        ("core:home", []), ("accounts:login", []), ("accounts:signup", []),
        ("tutoring:student_home", []), ("tutoring:attempt_history", []),
        ("tutoring:problem_set_detail", [problem_set.pk]),
        ("tutoring:assignment_detail", [assignment.pk]),
        ("tutoring:attempt_detail", [attempt.pk]), ("tutoring:attempt_actions", [attempt.pk]),
        ("tutoring:generation_footer", [generation.pk]),
        ("classes:teacher_home", []), ("classes:my_classes", []),
        ("classes:classroom_detail", [classroom.pk]), ("classes:classroom_delete", [classroom.pk]),
        ("classes:classroom_results", [classroom.pk]),
        ("classes:classroom_results_csv", [classroom.pk]),
        ("classes:join_with_code", ["JOIN7B"]),
        ("problems:problem_set_list", []), ("problems:problem_set_create", []),
        ("problems:problem_set_detail", [problem_set.pk]),
        ("problems:problem_set_edit", [problem_set.pk]),
        ("problems:problem_set_delete", [problem_set.pk]),
        ("problems:upload", []), ("problems:upload_preview", [staged.token]),
        ("problems:upload_status", [staged.token]), ("problems:upload_report", [staged.token]),
        ("problems:example_file", ["csv"]), ("problems:problem_create", [problem_set.pk]),
        ("problems:problem_edit", [problem.pk]), ("problems:problem_delete", [problem.pk]),
        ("registry:dashboard", []), ("registry:serving", []), ("registry:registry", []),
        ("registry:jobs", []), ("registry:pool_count", []), ("registry:job", [job.pk]),
    ]  # fmt: skip
    return [reverse(name, args=args) for name, args in named]


query = st.dictionaries(st.one_of(st.sampled_from(PARAMETERS), st.text(max_size=8)), hostile_text, max_size=3)  # fmt: skip
htmx_headers = st.one_of(
    st.just({}),
    st.fixed_dictionaries(
        {
            "HTTP_HX_REQUEST": st.just("true"),
            "HTTP_HX_TARGET": st.one_of(
                st.sampled_from(["problem-list", "controls", "x"]), hostile_text
            ),
        }  # fmt: skip
    ),
)


def _fuzz_pages(client, pages, data):
    page = data.draw(st.sampled_from(pages), label="page")
    params = data.draw(query, label="query")
    headers = data.draw(htmx_headers, label="headers")
    with server_time() as spent:
        response = client.get(page, params, **headers)
    assert response.status_code < 500, (page, params, headers)
    assert_bounded(spent, (page, params))


@pytest.mark.parametrize("role", ["anonymous", "student", "teacher", "admin"])
def test_every_page_with_hostile_query_strings(client, pages, role, request):
    if role != "anonymous":
        client.force_login(request.getfixturevalue(role))

    @fuzz(examples=EXAMPLES_PER_ROLE)
    @given(data=st.data())
    def run(data):
        _fuzz_pages(client, pages, data)

    run()


@fuzz(examples=60)
@given(code=st.one_of(hostile_text, st.text(alphabet="ABCDEFGHJK23456789 -_join", max_size=12)))
def test_join_codes_in_the_link_and_the_form(client, student, code):
    from urllib.parse import quote

    client.force_login(student)
    with server_time() as spent:
        link = client.get(f"/teach/join/{quote(code, safe='')}/") if code else None
        form = client.post(reverse("classes:join"), {"code": code})
    for response in (link, form):
        assert response is None or response.status_code < 500, code
    assert_bounded(spent, code)
