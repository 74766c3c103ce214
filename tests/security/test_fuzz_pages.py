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
              "code", "id", "x", "who", "action", "status", "stage", "domains", "problem_sets",
              "base_model", "algorithm"]  # fmt: skip
EXAMPLES_PER_ROLE = 75


# Every GET page of the site, by URL name and the ids its path takes.
PAGES = [
    ("core:home", []), ("core:healthz", []), ("accounts:login", []), ("accounts:signup", []),
    ("accounts:lockouts", []),
    ("tutoring:student_home", []), ("tutoring:attempt_history", []),
    ("tutoring:problem_set_detail", ["set"]), ("tutoring:assignment_detail", ["assignment"]),
    ("tutoring:attempt_detail", ["attempt"]), ("tutoring:attempt_actions", ["attempt"]),
    ("tutoring:generation_footer", ["generation"]),
    ("classes:teacher_home", []), ("classes:my_classes", []), ("classes:join", []),
    ("classes:classroom_detail", ["classroom"]), ("classes:classroom_delete", ["classroom"]),
    ("classes:classroom_results", ["classroom"]), ("classes:classroom_results_csv", ["classroom"]),
    ("classes:join_with_code", ["code"]),
    ("problems:problem_set_list", []), ("problems:problem_set_create", []),
    ("problems:problem_set_detail", ["set"]), ("problems:problem_set_edit", ["set"]),
    ("problems:problem_set_delete", ["set"]),
    ("problems:upload", []), ("problems:upload_preview", ["token"]),
    ("problems:upload_status", ["token"]), ("problems:upload_report", ["token"]),
    ("problems:example_file", ["format"]), ("problems:problem_create", ["set"]),
    ("problems:problem_edit", ["problem"]), ("problems:problem_delete", ["problem"]),
    ("teacher_review:teacher_list", []), ("set_review:set_list", []),
    ("set_review:set_detail", ["set"]), ("audit:audit_log", []),
    ("registry:dashboard", []), ("registry:serving", []), ("registry:registry", []),
    ("registry:jobs", []), ("registry:pool_count", []), ("registry:launch", []),
    ("registry:job", ["job"]),
]  # fmt: skip
# Routes that only act on a POST (a GET is refused with 405 or sent back), so no query string
# reaches their code; the logout view logs the fuzzing client out.
POST_ONLY = {
    "accounts:logout", "accounts:lockout_unlock", "tutoring:attempt_create",
    "tutoring:problem_start", "tutoring:attempt_hint", "tutoring:attempt_solution",
    "tutoring:own_answer_create", "tutoring:generation_stop", "tutoring:feedback_save",
    "classes:classroom_create", "classes:classroom_rename", "classes:classroom_code_renew",
    "classes:student_remove", "classes:assignment_create", "classes:assignment_due",
    "classes:assignment_delete", "problems:upload_discard", "problems:upload_retry",
    "problems:problem_set_training",
    "problems:problem_training", "teacher_review:teacher_decide", "set_review:set_decide",
    "registry:promote", "registry:evaluate", "registry:rollback", "registry:cancel",
    "registry:resume",
}  # fmt: skip
# /healthz answers 503 when a service is down (no inference worker runs in these tests): that is
# its answer, not a server error.
MAY_ANSWER_503 = {"core:healthz"}


def test_every_named_route_is_fuzzed_or_post_only():
    """A new page must join PAGES (or POST_ONLY), so the fuzzing cannot silently miss it, as it
    missed the admin pages added after it was written (a NUL in `?who=` was a 500)."""
    from django.urls import URLResolver, get_resolver

    def names(resolver, namespace=""):
        for pattern in resolver.url_patterns:
            if isinstance(pattern, URLResolver):
                if pattern.app_name != "admin":
                    yield from names(pattern, f"{pattern.namespace}:" if pattern.namespace else "")
            elif pattern.name:
                yield namespace + pattern.name

    fuzzed = {name for name, _ in PAGES}
    assert not fuzzed & POST_ONLY
    assert set(names(get_resolver())) - fuzzed - POST_ONLY == set()


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
    ids = {
        "set": problem_set.pk, "assignment": assignment.pk, "attempt": attempt.pk,
        "generation": generation.pk, "classroom": classroom.pk, "code": "JOIN7B",
        "token": staged.token, "format": "csv", "problem": problem.pk, "job": job.pk,
    }  # fmt: skip
    return [reverse(name, args=[ids[key] for key in keys]) for name, keys in PAGES]


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


def health_pages() -> set[str]:
    return {reverse(name) for name in MAY_ANSWER_503}


def _fuzz_pages(client, pages, data):
    page = data.draw(st.sampled_from(pages), label="page")
    params = data.draw(query, label="query")
    headers = data.draw(htmx_headers, label="headers")
    with server_time() as spent:
        response = client.get(page, params, **headers)
    down = page in health_pages() and response.status_code == 503
    assert response.status_code < 500 or down, (page, params, headers)
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


# The values that reached a server error on some page before (NUL: PostgreSQL refuses it;
# digits of other scripts pass str.isdigit; a number past bigint).
SWEEP_VALUES = ["a\x00b", "²", "٣", "99999999999999999999", "x" * 300]


@pytest.mark.parametrize("role", ["anonymous", "student", "teacher", "admin"])
def test_every_parameter_of_every_page_holding_each_hostile_value(client, pages, role, request):
    """A deterministic sweep beside the random one: each page with every parameter name at once
    holding one value. The random examples spread over 40-odd pages and 20 names, so a single
    page's single parameter (the audit log's `who`) can go unvisited; this cannot."""
    if role != "anonymous":
        client.force_login(request.getfixturevalue(role))
    for page in pages:
        for value in SWEEP_VALUES:
            with server_time() as spent:
                response = client.get(page, dict.fromkeys(PARAMETERS, value))
            down = page in health_pages() and response.status_code == 503
            assert response.status_code < 500 or down, (role, page, value)
            assert_bounded(spent, (page, value))


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
