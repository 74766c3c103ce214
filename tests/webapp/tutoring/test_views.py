"""The student's pages through Django's test client: role boundaries, only one's own attempts,
escaping, the htmx partials and what they store."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.webapp.tutoring.conftest import answered, checking_elsewhere, finish
from webapp.tutoring import services
from webapp.tutoring.models import Attempt, Feedback, Generation, OwnAnswer

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def student_client(client, student):
    client.force_login(student)
    return client


@pytest.fixture
def attempt(student, practice_set):
    return services.attempt_create(student=student, problem=practice_set.problems.first())


def page_urls(attempt) -> list[str]:
    generation = attempt.generations.get()
    return [
        reverse("tutoring:student_home"),
        reverse("tutoring:attempt_history"),
        reverse("tutoring:attempt_detail", args=[attempt.pk]),
        reverse("tutoring:attempt_actions", args=[attempt.pk]),
        reverse("tutoring:generation_footer", args=[generation.pk]),
        reverse("tutoring:problem_set_detail", args=[attempt.problem.problem_set_id]),
    ]


# --- who may see what -----------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_log_in(client, attempt):
    for url in page_urls(attempt):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("accounts:login"))
    response = client.post(reverse("tutoring:attempt_hint", args=[attempt.pk]))
    assert response.status_code == 302


def test_teachers_are_refused(client, teacher, attempt):
    client.force_login(teacher)
    for url in page_urls(attempt):
        assert client.get(url).status_code == 403, url
    generation = attempt.generations.get()
    assert client.post(reverse("tutoring:generation_stop", args=[generation.pk])).status_code == 403


def test_a_student_sees_only_their_own_attempts(client, other_student, attempt):
    client.force_login(other_student)
    generation = attempt.generations.get()
    for url in [
        reverse("tutoring:attempt_detail", args=[attempt.pk]),
        reverse("tutoring:attempt_actions", args=[attempt.pk]),
        reverse("tutoring:generation_footer", args=[generation.pk]),
    ]:
        assert client.get(url).status_code == 404, url
    for url in [
        reverse("tutoring:attempt_hint", args=[attempt.pk]),
        reverse("tutoring:attempt_solution", args=[attempt.pk]),
        reverse("tutoring:own_answer_create", args=[attempt.pk]),
        reverse("tutoring:generation_stop", args=[generation.pk]),
        reverse("tutoring:feedback_save", args=[generation.pk]),
    ]:
        assert client.post(url, {"answer": "5/6", "rating": "1"}).status_code == 404, url
    history = client.get(reverse("tutoring:attempt_history"))
    assert history.context["page"].paginator.count == 0
    assert not OwnAnswer.objects.exists() and not Feedback.objects.exists()


def test_sets_that_are_not_practice_or_assigned_are_hidden(student_client, private_set):
    url = reverse("tutoring:problem_set_detail", args=[private_set.pk])
    assert student_client.get(url).status_code == 404
    problem = private_set.problems.get()
    start = reverse("tutoring:problem_start", args=[problem.pk])
    assert student_client.post(start, {"mode": "solve"}).status_code == 404
    assert not Attempt.objects.exists()


# --- asking ---------------------------------------------------------------------------------


def test_home_lists_practice_sets_and_assignments(student_client, practice_set, assigned_set):
    response = student_client.get(reverse("tutoring:student_home"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Fractions" in html and "Homework 1" in html and "7B" in html
    assert reverse("tutoring:assignment_detail", args=[assigned_set.assignments.get().pk]) in html


def test_asking_creates_an_attempt_and_opens_its_live_page(student_client, student):
    response = student_client.post(
        reverse("tutoring:attempt_create"), {"statement": "Solve $3x+5=20$", "mode": "solve"}
    )
    attempt = Attempt.objects.get(student=student)
    assert response.status_code == 302
    assert response["Location"] == reverse("tutoring:attempt_detail", args=[attempt.pk])
    page = student_client.get(response["Location"]).content.decode()
    generation = attempt.generations.get()
    assert f'data-ws-path="/ws/generations/{generation.pk}/"' in page
    assert 'data-status="queued"' in page


# --- asking with JavaScript: the attempt page in the POST's answer ---------------------------

ARTICLE = re.compile(r"<article .*?</article>", re.S)
CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="[^"]+"')


def without_csrf(html: str) -> str:
    """The markup without its CSRF tokens (masked afresh on every render)."""
    return CSRF_INPUT.sub("", html)


def test_asking_with_htmx_answers_with_the_attempt_page_and_pushes_its_url(student_client, student):
    response = student_client.post(
        reverse("tutoring:attempt_create"),
        {"statement": "Solve $3x+5=20$", "mode": "solve"},
        **HTMX,
    )
    attempt = Attempt.objects.get(student=student)
    generation = attempt.generations.get()
    url = reverse("tutoring:attempt_detail", args=[attempt.pk])
    assert response.status_code == 200
    assert response["HX-Push-Url"] == url  # the address bar, reload and back: the attempt page
    fragment = response.content.decode()
    assert "<html" not in fragment and "<script" not in fragment
    assert fragment.lstrip().startswith("<title>Solve $3x+5=20$ · Ring Tutor</title>")
    assert f'data-ws-path="/ws/generations/{generation.pk}/"' in fragment
    # The same markup as the page a reload (or the redirect without JavaScript) gets.
    page = student_client.get(url).content.decode()
    assert ARTICLE.findall(without_csrf(fragment)) == ARTICLE.findall(without_csrf(page))
    assert 'data-status="queued"' in fragment
    for part in ('id="timeline"', 'id="attempt-actions"', 'id="own-answer"', "Breadcrumbs"):
        assert part in fragment and part in page
    assert "More help once this one has finished, or stop it." in fragment


def test_starting_a_problem_of_a_set_with_htmx_answers_with_the_attempt_page(
    student_client, student, assigned_set
):
    problem = assigned_set.problems.get()
    assignment = assigned_set.assignments.get()
    response = student_client.post(
        reverse("tutoring:problem_start", args=[problem.pk]),
        {"mode": "tutor", "assignment": assignment.pk},
        **HTMX,
    )
    attempt = Attempt.objects.get(student=student)
    url = reverse("tutoring:attempt_detail", args=[attempt.pk])
    assert response.status_code == 200 and response["HX-Push-Url"] == url
    fragment = response.content.decode()
    page = student_client.get(url).content.decode()
    assert ARTICLE.findall(without_csrf(fragment)) == ARTICLE.findall(without_csrf(page))
    assert "Hint 1" in fragment and "Hints used: <strong>1</strong> of 3" in fragment
    # The breadcrumbs lead back to the assignment, as on the page.
    assert reverse("tutoring:assignment_detail", args=[assignment.pk]) in fragment


def test_refusals_of_an_htmx_ask_show_the_home_page_with_the_reason(
    student_client, student, settings
):
    ask = reverse("tutoring:attempt_create")
    cases = [
        ({"statement": "", "mode": "solve"}, "Type a problem first."),
        (
            {"statement": "x" * (settings.INFERENCE["MAX_PROMPT_CHARS"] + 1), "mode": "solve"},
            "Ensure this value has at most",
        ),
    ]
    for data, message in cases:
        response = student_client.post(ask, data, **HTMX)
        assert response.status_code == 422
        assert response["HX-Retarget"] == "#student-page"
        html = response.content.decode()
        assert message in html and 'class="ask-form"' in html and "<html" not in html
        # Exactly what the page without JavaScript shows, in place of the page's content.
        plain = student_client.post(ask, data).content.decode()
        assert without_csrf(html).strip() in without_csrf(plain)
    settings.GENERATION_QUOTA_PER_HOUR = 0
    response = student_client.post(ask, {"statement": "Compute 2 + 2.", "mode": "solve"}, **HTMX)
    assert response.status_code == 422 and response["HX-Retarget"] == "#student-page"
    assert "the most the site allows (0)" in response.content.decode()
    assert not Attempt.objects.exists()


def test_a_refused_htmx_start_says_why_in_the_page_alert(student_client, practice_set, settings):
    settings.INFERENCE = {**settings.INFERENCE, "MAX_CONCURRENT_PER_USER": 0}
    start = reverse("tutoring:problem_start", args=[practice_set.problems.first().pk])
    response = student_client.post(start, {"mode": "solve"}, **HTMX)
    assert response.status_code == 422 and response["HX-Retarget"] == "#page-alert"
    assert "You already have 0 solutions being written" in response.content.decode()
    response = student_client.post(start, {"mode": "bogus"}, **HTMX)
    assert response.status_code == 422 and response["HX-Retarget"] == "#page-alert"
    assert "Choose a full solution or hints." in response.content.decode()
    assert not Attempt.objects.exists()


# Pinned query budgets (CaptureQueriesContext counts every statement: the session's and the user's,
# and 6 SAVEPOINT / RELEASE of the three atomic blocks, which are savepoints inside a test's own
# transaction: the view's, which makes the whole click one PostgreSQL commit, the service's and
# the enqueue's). The click with JavaScript is one request; without, the POST and the redirected
# GET (14 + 9 when pinned; 14 inline: the page is drawn from the rows the service created and
# the quota it counted, so it reads nothing back). The enqueue reads all its limits (the active
# count, both quota windows) in one statement.
ASK_POST_QUERY_BUDGET = 14
ASK_WITH_HTMX_QUERY_BUDGET = 14


def test_the_ask_requests_stay_within_their_query_budgets(student_client, student):
    ask = reverse("tutoring:attempt_create")
    # Warm the caches a first request fills (content types, the site's settings), as on a server.
    student_client.post(ask, {"statement": "Compute 1 + 1.", "mode": "solve"})
    Generation.objects.update(status="done")
    with CaptureQueriesContext(connection) as post:
        response = student_client.post(ask, {"statement": "Compute 2 + 2.", "mode": "solve"})
    assert response.status_code == 302
    with CaptureQueriesContext(connection) as page:
        student_client.get(response["Location"])
    Generation.objects.update(status="done")
    with CaptureQueriesContext(connection) as inline:
        response = student_client.post(
            ask, {"statement": "Compute 3 + 3.", "mode": "solve"}, **HTMX
        )
    assert response.status_code == 200
    assert len(post) <= ASK_POST_QUERY_BUDGET, [q["sql"] for q in post]
    assert len(inline) <= ASK_WITH_HTMX_QUERY_BUDGET, [q["sql"] for q in inline]
    # One request in place of two, and fewer queries than the two together.
    assert len(inline) < len(post) + len(page)


def test_an_empty_or_too_long_problem_is_a_form_error(student_client, settings):
    response = student_client.post(reverse("tutoring:attempt_create"), {"statement": ""})
    assert response.status_code == 422
    assert "Type a problem first." in response.content.decode()
    too_long = "x" * (settings.INFERENCE["MAX_PROMPT_CHARS"] + 1)
    response = student_client.post(reverse("tutoring:attempt_create"), {"statement": too_long})
    assert response.status_code == 422
    assert not Attempt.objects.exists()


def test_problem_text_is_escaped_never_html(student_client, student):
    hostile = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2"> $x$'
    attempt = services.attempt_create_from_text(student=student, statement=hostile)
    html = student_client.get(reverse("tutoring:attempt_detail", args=[attempt.pk])).content
    html = html.decode()
    assert "<script>window.pwned" not in html
    assert "<img src=x" not in html
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;&lt;img src=x onerror=" in html


def test_a_typed_problem_with_a_direction_override_shows_what_the_model_reads(
    student_client, student
):
    """A statement typed as "x = \u202e21" displays as "x = 12": the page showed one number
    while the model solved the other. The override is removed on the way in, so the page shows what is stored, and the
    statement is isolated (dir="auto") from the page around it."""
    response = student_client.post(
        reverse("tutoring:attempt_create"),
        {"statement": "Solve for $x$: $3x = \u202e21\u202c$", "mode": "solve"},
    )
    attempt = Attempt.objects.get(student=student)
    assert attempt.problem.statement == "Solve for $x$: $3x = 21$"
    page = student_client.get(response["Location"]).content.decode()
    assert "\u202e" not in page and "\u202c" not in page
    assert (
        '<div class="rich-text problem-statement" dir="auto" data-rich-text>'
        "Solve for $x$: $3x = 21$</div>"
    ) in page
    history = student_client.get(reverse("tutoring:attempt_history")).content.decode()
    assert "\u202e" not in history
    assert '<span class="rich-text attempt-statement" dir="auto" data-rich-text>' in history


def test_an_own_answer_with_a_direction_override_is_shown_as_checked(student_client, attempt):
    # "\u202e6/5" shows as "5/6", the right answer, but holds 6/5: wrong.
    url = reverse("tutoring:own_answer_create", args=[attempt.pk])
    page = student_client.post(url, {"answer": "\u202e6/5"}, **HTMX).content.decode()
    assert 'data-own-verdict="wrong"' in page
    assert "\u202e" not in page
    assert '<span class="rich-text inline-rich" dir="auto" data-rich-text>6/5</span>' in page
    assert OwnAnswer.objects.get().answer == "6/5"


def test_a_refused_start_goes_back_to_the_set_with_the_reason(
    student_client, practice_set, settings
):
    settings.INFERENCE = {**settings.INFERENCE, "MAX_CONCURRENT_PER_USER": 0}
    problem = practice_set.problems.first()
    response = student_client.post(
        reverse("tutoring:problem_start", args=[problem.pk]),
        {"mode": "solve"},
        HTTP_REFERER="https://evil.example/",
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("tutoring:problem_set_detail", args=[practice_set.pk])
    page = student_client.get(response["Location"]).content.decode()
    assert "You already have 0 solutions being written" in page
    assert not Attempt.objects.exists()


def test_starting_an_assigned_problem_in_tutor_mode(student_client, student, assigned_set):
    problem = assigned_set.problems.get()
    assignment = assigned_set.assignments.get()
    response = student_client.post(
        reverse("tutoring:problem_start", args=[problem.pk]),
        {"mode": "tutor", "assignment": assignment.pk},
    )
    attempt = Attempt.objects.get(student=student)
    assert response.status_code == 302
    assert (attempt.mode, attempt.assignment, attempt.hints_revealed) == ("tutor", assignment, 1)
    assert attempt.generations.get().kind == "hint"


# --- the attempt page's controls (htmx) -----------------------------------------------------


def test_hint_flow_is_decided_by_the_server(student_client, student, practice_set):
    attempt = services.attempt_create(
        student=student, problem=practice_set.problems.first(), mode="tutor"
    )
    hint_url = reverse("tutoring:attempt_hint", args=[attempt.pk])
    page = student_client.get(reverse("tutoring:attempt_detail", args=[attempt.pk])).content
    assert hint_url not in page.decode()  # no "Next hint" while hint 1 is being written

    refused = student_client.post(hint_url, **HTMX)
    assert refused.status_code == 422
    assert refused["HX-Retarget"] == "#page-alert"
    assert "Wait for the current hint" in refused.content.decode()

    finish(attempt.generations.get(), answer="Use a common denominator.")
    page = student_client.get(reverse("tutoring:attempt_detail", args=[attempt.pk])).content
    assert hint_url in page.decode()
    response = student_client.post(hint_url, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    hint = attempt.generations.get(hint_index=1)
    assert f'id="generation-{hint.pk}"' in html and "Hint 2" in html
    assert (
        'id="attempt-actions" class="attempt-actions" aria-label="Next steps" hx-swap-oob="true"'
        in html
    )
    assert "Hints used: <strong>2</strong> of 3" in html  # the buttons follow the new count
    attempt.refresh_from_db()
    assert attempt.hints_revealed == 2


def test_the_full_solution_is_not_in_the_page_before_it_is_asked_for(
    student_client, student, practice_set
):
    attempt = services.attempt_create(
        student=student, problem=practice_set.problems.first(), mode="tutor"
    )
    finish(attempt.generations.get(), answer="Think about sixths.")
    page = student_client.get(reverse("tutoring:attempt_detail", args=[attempt.pk])).content
    assert "Show the full solution" in page.decode()
    assert not Generation.objects.filter(kind="solution").exists()
    response = student_client.post(reverse("tutoring:attempt_solution", args=[attempt.pk]), **HTMX)
    assert response.status_code == 200
    solution = Generation.objects.get(kind="solution")
    assert f"/ws/generations/{solution.pk}/" in response.content.decode()


def test_own_answer_gets_a_verdict_and_is_recorded(student_client, attempt):
    url = reverse("tutoring:own_answer_create", args=[attempt.pk])
    wrong = student_client.post(url, {"answer": "2/5"}, **HTMX).content.decode()
    assert 'data-own-verdict="wrong"' in wrong
    right = student_client.post(url, {"answer": "10/12"}, **HTMX).content.decode()
    assert 'data-own-verdict="correct"' in right
    assert list(OwnAnswer.objects.values_list("answer", "is_correct")) == [
        ("10/12", True),
        ("2/5", False),
    ]
    empty = student_client.post(url, {"answer": ""}, **HTMX)
    assert empty.status_code == 422
    assert OwnAnswer.objects.count() == 2


def test_an_answer_past_the_limit_is_refused_in_the_page_and_not_stored(
    student_client, attempt, settings
):
    settings.OWN_ANSWER_CHECKS_PER_MINUTE = 2
    answered(attempt, 2, ago=timedelta(seconds=45))
    url = reverse("tutoring:own_answer_create", args=[attempt.pk])
    response = student_client.post(url, {"answer": "5/6"}, **HTMX)
    # The site's refusal (422, which htmx swaps into the result region; the form keeps the text).
    assert response.status_code == 422
    assert 10 <= int(response["Retry-After"]) <= 15  # 45 s ago: the minute frees in 15 s
    page = response.content.decode()
    assert 'class="form-errors"' in page and "2 answers in the last minute" in page
    assert "You can check again in" in page and "data-own-verdict" not in page
    assert OwnAnswer.objects.count() == 2


def test_without_javascript_a_refused_answer_stays_in_the_box(student_client, attempt, settings):
    settings.OWN_ANSWER_CHECKS_PER_MINUTE = 1
    answered(attempt, 1)
    url = reverse("tutoring:own_answer_create", args=[attempt.pk])
    response = student_client.post(url, {"answer": "<b>10/12</b>"})
    assert response.status_code == 429 and int(response["Retry-After"]) >= 1
    page = response.content.decode()
    assert "You have checked 1 answer in the last minute" in page
    assert 'value="&lt;b&gt;10/12&lt;/b&gt;"' in page  # what was typed, escaped
    assert 'id="own-answer-result"' in page and 'class="form-errors"' in page
    assert OwnAnswer.objects.count() == 1


def test_an_answer_while_another_is_being_checked_is_refused(student_client, attempt):
    url = reverse("tutoring:own_answer_create", args=[attempt.pk])
    with checking_elsewhere(attempt.student):
        response = student_client.post(url, {"answer": "5/6"}, **HTMX)
    assert response.status_code == 422 and "still being checked" in response.content.decode()
    assert not OwnAnswer.objects.exists()
    assert (
        'data-own-verdict="correct"'
        in student_client.post(url, {"answer": "5/6"}, **HTMX).content.decode()
    )


def test_a_wrong_unit_is_explained_beside_the_verdict(student_client, attempt):
    problem = attempt.problem
    problem.statement, problem.answer_kind = "How far does the cart go, in metres?", "number"
    problem.reference_answer, problem.unit = "135", "m"
    problem.save()
    url = reverse("tutoring:own_answer_create", args=[attempt.pk])
    wrong_quantity = student_client.post(url, {"answer": "135 kg"}, **HTMX).content.decode()
    assert 'data-own-verdict="wrong"' in wrong_quantity
    assert "kg measures a mass, but the question asks for a length (m)." in wrong_quantity
    wrong_value = student_client.post(url, {"answer": "130 m"}, **HTMX).content.decode()
    assert 'data-own-verdict="wrong"' in wrong_value and "data-own-unit-note" not in wrong_value
    right = student_client.post(url, {"answer": "0.135 km"}, **HTMX).content.decode()
    assert 'data-own-verdict="correct"' in right


def test_finished_solution_footer_shows_final_answer_and_verdict(student_client, attempt):
    generation = finish(
        attempt.generations.get(),
        reasoning="1/2 = 3/6 and 1/3 = 2/6",
        answer=r"So the sum is $\boxed{\frac{5}{6}}$.",
        final_answer=r"\frac{5}{6}",
        verdict="correct",
        model_version_label="ring-tiny",
    )
    html = student_client.get(reverse("tutoring:generation_footer", args=[generation.pk]))
    html = html.content.decode()
    assert r'<span class="final-answer-value" data-tex>\frac{5}{6}</span>' in html
    assert 'data-verdict="correct"' in html
    assert "ring-tiny" in html
    assert f'id="feedback-{generation.pk}"' in html


def test_feedback_thumbs_down_asks_what_went_wrong_and_stores_tags(student_client, attempt):
    generation = finish(attempt.generations.get(), answer="42", final_answer="42", verdict="wrong")
    url = reverse("tutoring:feedback_save", args=[generation.pk])
    first = student_client.post(url, {"rating": "-1"}, **HTMX).content.decode()
    assert "What went wrong?" in first
    student_client.post(
        url,
        {"rating": "-1", "tags": ["wrong_answer", "other"], "text": "the box says 42"},
        **HTMX,
    )
    feedback = Feedback.objects.get(generation=generation)
    assert (feedback.rating, feedback.tags, feedback.text) == (
        -1,
        ["wrong_answer", "other"],
        "the box says 42",
    )
    bad = student_client.post(url, {"rating": "0"}, **HTMX)
    assert bad.status_code == 422


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"rating": "0"}, "Choose thumbs up or thumbs down."),
        ({"rating": "-1", "tags": ["rude"]}, "Choose what went wrong from the list."),
        ({"rating": "-1", "text": "x" * 2001}, "at most 2000 characters (it has 2001)"),
        ({"rating": "-1", "text": "a\x00b"}, "Null characters are not allowed."),
    ],
    ids=["rating", "unknown-tag", "too-long-text", "nul-in-text"],
)
def test_refused_feedback_says_what_to_fix(student_client, attempt, data, message):
    """Every refusal used to read "Choose thumbs up or thumbs down.", even for a comment that was
    too long or a tag outside the list, which says nothing about what to change."""
    generation = finish(attempt.generations.get(), answer="42", final_answer="42", verdict="wrong")
    url = reverse("tutoring:feedback_save", args=[generation.pk])
    response = student_client.post(url, data, **HTMX)
    assert response.status_code == 422
    assert message in response.content.decode()
    assert not Feedback.objects.exists()


def test_stop_asks_the_server_to_cancel(student_client, attempt):
    generation = attempt.generations.get()
    response = student_client.post(
        reverse("tutoring:generation_stop", args=[generation.pk]), **HTMX
    )
    assert response.status_code == 204
    generation.refresh_from_db()
    assert generation.cancel_requested or generation.status == "cancelled"


# --- history --------------------------------------------------------------------------------


def test_history_is_searchable_and_shows_verdicts(student_client, student, practice_set):
    fractions = services.attempt_create(student=student, problem=practice_set.problems.first())
    finish(fractions.generations.get(), final_answer="5/6", verdict="correct")
    services.attempt_create_from_text(student=student, statement="Integrate $x^2$ from 0 to 1")
    url = reverse("tutoring:attempt_history")

    everything = student_client.get(url)
    assert everything.context["page"].paginator.count == 2

    found = student_client.get(
        url, {"q": "integrate"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="history-results"
    )
    html = found.content.decode()
    assert "1 attempt matching “<bdi>integrate</bdi>”" in html
    assert html.lstrip().startswith('<div id="history-results"')  # the partial, not the page
    assert "Integrate" in html and "1/2 + 1/3" not in html

    by_answer = student_client.get(url, {"q": "5/6"})
    assert [a.pk for a in by_answer.context["page"].object_list] == [fractions.pk]
    assert "✓ correct" in by_answer.content.decode()


def test_history_search_does_not_multiply_rows_per_word(student_client, student, practice_set):
    """Each word of the search used to add its own join on the attempt's generations, so an
    attempt with G hints and solutions made G**words rows before DISTINCT: 6 generations and a
    search of 8 words ("6 6 6 6 6 6 6 6", sent while the student types) held the database and the
    request for 57 s. Each word is now one EXISTS on the generations: rows stay one per attempt."""
    attempt = services.attempt_create(student=student, problem=practice_set.problems.first())
    finish(attempt.generations.get(), final_answer="5/6", verdict="correct")
    for _ in range(3):
        Generation.objects.create(attempt=attempt, status="done", final_answer="5/6")
    other = services.attempt_create_from_text(student=student, statement="Integrate $x^2$")
    finish(other.generations.get(), final_answer="1/3")
    url = reverse("tutoring:attempt_history")

    with CaptureQueriesContext(connection) as queries:
        response = student_client.get(url, {"q": " ".join(["5/6"] * 8)})
    assert [a.pk for a in response.context["page"].object_list] == [attempt.pk]
    assert response.context["page"].paginator.count == 1
    for query in queries.captured_queries:
        assert 'JOIN "tutoring_generation"' not in query["sql"], query["sql"]
    # A word of the statement and a word of an answer, together.
    both = student_client.get(url, {"q": "integrate 1/3"})
    assert [a.pk for a in both.context["page"].object_list] == [other.pk]
