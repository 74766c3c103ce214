"""The teacher's problem pages through Django's test client: the upload flow end to end, the
list of 10,000 problems paginated, editing, exclusion from training, and isolation (another
teacher gets 404, a student 403, an anonymous visitor the log-in page)."""

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from webapp.problems import services
from webapp.problems.content_key import problem_content_key
from webapp.problems.models import Problem, ProblemSet, ProblemUpload

pytestmark = pytest.mark.django_db
EXAMPLES = Path(__file__).resolve().parents[3] / "docs" / "examples"


def upload(client, name: str, **fields):
    path = EXAMPLES / name
    data = {"format": "auto", "default_domain": "math", "target_set": "", "on_error": "skip"}
    data["file"] = SimpleUploadedFile(path.name, path.read_bytes())
    return client.post(reverse("problems:upload"), data | fields)


def test_upload_preview_shows_errors_with_lines_then_imports(teacher_client):
    response = upload(teacher_client, "with-errors/problems.csv")
    assert response.status_code == 302
    staged = ProblemUpload.objects.get()
    assert response["Location"] == reverse("problems:upload_preview", args=[staged.token])
    assert not Problem.objects.exists()

    page = teacher_client.get(response["Location"])
    html = page.content.decode()
    # Every error of the file in the callout at once, not only the first.
    assert "5 items with errors: the other 4 can still be imported" in html
    for line in (3, 4, 5, 7, 8):
        assert f"<strong>Line {line}</strong>" in html
    assert "“forty-two” is not a number." in html
    assert "Import 4 problems" in html

    errors = teacher_client.get(response["Location"] + "?tab=error").content.decode()
    for line in (3, 4, 5, 7, 8):
        assert f"<td>Line {line}</td>" in errors

    report = teacher_client.get(reverse("problems:upload_report", args=[staged.token]))
    assert report["Content-Type"].startswith("text/csv")
    assert "Line 4,error,answer" in report.content.decode("utf-8-sig")

    done = teacher_client.post(response["Location"], {"title": "Week 1", "on_error": "skip"})
    problem_set = ProblemSet.objects.get()
    assert done["Location"] == reverse("problems:problem_set_detail", args=[problem_set.pk])
    assert problem_set.title == "Week 1" and problem_set.problems.count() == 4


def test_stop_on_error_refuses_at_confirmation(teacher_client):
    response = upload(teacher_client, "with-errors/problems-aiken.txt", on_error="stop")
    page = teacher_client.post(response["Location"], {"title": "", "on_error": "stop"})
    assert page.status_code == 200
    assert "nothing was imported" in page.content.decode()
    assert not Problem.objects.exists()


def test_a_refused_file_says_why_and_stores_nothing(teacher_client):
    response = teacher_client.post(
        reverse("problems:upload"),
        {
            "file": SimpleUploadedFile("sheet.csv", b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 64),
            "format": "auto",
            "default_domain": "math",
            "target_set": "",
            "on_error": "skip",
        },
    )
    assert response.status_code == 400
    assert "This file was not imported" in response.content.decode()
    assert "ZIP archive" in response.content.decode()
    assert not ProblemUpload.objects.exists() and not ProblemSet.objects.exists()


def test_pasted_text_is_an_upload_too(teacher_client):
    response = teacher_client.post(
        reverse("problems:upload"),
        {
            "pasted": "What is 2 + 2?\nA. 3\nB. 4\nANSWER: B\n",
            "format": "auto",
            "default_domain": "math",
            "target_set": "",
            "on_error": "skip",
        },
    )
    staged = ProblemUpload.objects.get()
    assert response["Location"].endswith(f"{staged.token}/")
    assert (staged.source_format, staged.ready_count) == ("aiken", 1)


def test_example_files_download(teacher_client):
    for name in ("csv", "json", "jsonl", "gift", "aiken"):
        response = teacher_client.get(reverse("problems:example_file", args=[name]))
        assert response.status_code == 200
        assert b"".join(response.streaming_content)


def test_ten_thousand_problems_list_in_pages(
    teacher_client, teacher, django_assert_max_num_queries
):
    problem_set = ProblemSet.objects.create(owner=teacher, title="Big")
    Problem.objects.bulk_create(
        Problem(
            problem_set=problem_set,
            position=n,
            statement=f"Compute {n} + 1.",
            answer_kind="number",
            reference_answer=str(n + 1),
            content_key=problem_content_key(f"Compute {n} + 1."),
        )
        for n in range(10_000)
    )
    url = reverse("problems:problem_set_detail", args=[problem_set.pk])
    with django_assert_max_num_queries(12):
        last = teacher_client.get(url + "?page=200")
    html = last.content.decode()
    assert "Page 200 of 200" in html and "Compute 9999 + 1." in html
    assert "Compute 9949 + 1." not in html  # 50 per page
    assert "<strong>10000</strong> problems" in html
    assert teacher_client.get(reverse("problems:problem_set_list")).status_code == 200


def test_edit_delete_and_training_exclusion(teacher_client, teacher):
    problem_set = services.problem_set_create(teacher=teacher, title="Set")
    problem = services.problem_create(
        problem_set=problem_set,
        teacher=teacher,
        fields={"statement": "Compute 2+3.", "answer": "5"},
    )
    edit_url = reverse("problems:problem_edit", args=[problem.pk])
    page = teacher_client.get(edit_url)
    assert 'value="5"' in page.content.decode()

    bad = teacher_client.post(
        edit_url,
        {"statement": "Compute 2+3.", "domain": "math", "answer_kind": "number", "answer": "five"},
    )
    assert bad.status_code == 200 and "“five” is not a number." in bad.content.decode()

    toggled = teacher_client.post(
        reverse("problems:problem_training", args=[problem.pk]),
        {"excluded": "1"},
        HTTP_HX_REQUEST="true",
    )
    assert "Excluded from training" in toggled.content.decode()
    problem.refresh_from_db()
    assert problem.excluded_from_training

    teacher_client.post(reverse("problems:problem_delete", args=[problem.pk]))
    assert not Problem.objects.filter(pk=problem.pk).exists()
    teacher_client.post(reverse("problems:problem_set_delete", args=[problem_set.pk]))
    assert not ProblemSet.objects.filter(pk=problem_set.pk).exists()


def teacher_urls(problem_set, problem, staged) -> list[tuple[str, str]]:
    return [
        ("get", reverse("problems:problem_set_detail", args=[problem_set.pk])),
        ("get", reverse("problems:problem_set_edit", args=[problem_set.pk])),
        ("post", reverse("problems:problem_set_delete", args=[problem_set.pk])),
        ("get", reverse("problems:problem_create", args=[problem_set.pk])),
        ("get", reverse("problems:problem_edit", args=[problem.pk])),
        ("post", reverse("problems:problem_delete", args=[problem.pk])),
        ("post", reverse("problems:problem_training", args=[problem.pk])),
        ("get", reverse("problems:upload_preview", args=[staged.token])),
        ("post", reverse("problems:upload_preview", args=[staged.token])),
        ("get", reverse("problems:upload_report", args=[staged.token])),
        ("post", reverse("problems:upload_discard", args=[staged.token])),
    ]


@pytest.fixture
def owned(teacher):
    problem_set = services.problem_set_create(teacher=teacher, title="Private set")
    problem = services.problem_create(
        problem_set=problem_set,
        teacher=teacher,
        fields={"statement": "Secret problem", "answer": "1"},
    )
    staged = services.problem_upload_preview(
        teacher=teacher, data=(EXAMPLES / "problems.csv").read_bytes(), filename="problems.csv"
    )
    return problem_set, problem, staged


def test_another_teacher_cannot_reach_my_sets(client, other_teacher, owned):
    client.force_login(other_teacher)
    for method, url in teacher_urls(*owned):
        assert getattr(client, method)(url).status_code == 404, url
    listing = client.get(reverse("problems:problem_set_list")).content.decode()
    assert "Private set" not in listing
    assert Problem.objects.filter(statement="Secret problem").exists()
    assert ProblemUpload.objects.exists()


def test_a_student_cannot_reach_any_teacher_page(client, student, owned):
    client.force_login(student)
    general = [
        ("get", reverse("problems:problem_set_list")),
        ("get", reverse("problems:upload")),
        ("get", reverse("problems:problem_set_create")),
        ("get", reverse("problems:example_file", args=["csv"])),
    ]
    for method, url in general + teacher_urls(*owned):
        assert getattr(client, method)(url).status_code == 403, url


def test_anonymous_visitors_are_sent_to_log_in(client, owned):
    for method, url in teacher_urls(*owned):
        response = getattr(client, method)(url)
        assert response.status_code == 302 and response["Location"].startswith(
            reverse("accounts:login")
        ), url


def test_preview_polls_while_answers_are_checked_then_reloads(teacher_client, teacher, monkeypatch):
    monkeypatch.setattr(services, "INLINE_ANSWER_CHECKS", 0)
    staged = services.problem_upload_preview(
        teacher=teacher, data=b"statement,answer\nExpand (x+1)^2.,x^2+2x+1\n", filename="a.csv"
    )
    page = teacher_client.get(
        reverse("problems:upload_preview", args=[staged.token])
    ).content.decode()
    assert "0 of 1 symbolic answers read" in page and "disabled" in page
    status_url = reverse("problems:upload_status", args=[staged.token])
    assert 'hx-trigger="every 2s"' in teacher_client.get(status_url).content.decode()

    services.problem_upload_check_answers(upload_id=staged.pk)
    done = teacher_client.get(status_url)
    assert done["HX-Refresh"] == "true"


def test_filters_and_search_render_only_the_list_for_htmx(teacher_client, teacher):
    problem_set = services.problem_set_create(teacher=teacher, title="Set")
    services.problem_create(
        problem_set=problem_set, teacher=teacher, fields={"statement": "Explain gravity."}
    )
    services.problem_create(
        problem_set=problem_set,
        teacher=teacher,
        fields={"statement": "Compute 6*7.", "answer": "42"},
    )
    url = reverse("problems:problem_set_detail", args=[problem_set.pk])

    no_answer = teacher_client.get(
        url, {"show": "no_answer"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="problem-list"
    )
    html = no_answer.content.decode()
    assert html.lstrip().startswith('<div id="problem-list">')
    assert "Explain gravity." in html and "Compute 6*7." not in html

    searched = teacher_client.get(url, {"q": "6*7"}).content.decode()
    assert "<html" in searched and "Compute 6*7." in searched and "Explain gravity." not in searched


def test_the_form_says_when_a_keys_unit_came_from_the_statement(teacher_client, teacher):
    # The upload preview says so; the single-problem form saved "135" as 135 m silently.
    problem_set = ProblemSet.objects.create(owner=teacher, title="Motion")
    form = {
        "statement": "A ball rolls 135 m. How far does it roll, in metres?",
        "domain": "science",
        "answer_kind": "number",
        "answer": "135",
        "tolerance": "",
        "unit": "",
        "choices": "",
        "solution": "",
        "difficulty": "1",
        "tags": "",
    }
    url = reverse("problems:problem_create", args=[problem_set.pk])
    page = teacher_client.post(url, form, follow=True).content.decode()
    assert Problem.objects.get().unit == "m"
    assert "the statement asks for m, so it is checked as 135 m" in page
    problem = Problem.objects.get()
    edit = reverse("problems:problem_edit", args=[problem.pk])
    page = teacher_client.post(edit, form | {"unit": "m"}, follow=True).content.decode()
    assert "Problem saved." in page and "the statement asks for" not in page


def test_new_empty_set_then_add_problems_one_by_one(teacher_client):
    response = teacher_client.post(
        reverse("problems:problem_set_create"), {"title": "Quiz", "description": ""}
    )
    problem_set = ProblemSet.objects.get()
    assert response["Location"] == reverse("problems:problem_create", args=[problem_set.pk])
    form = {
        "statement": "Which is a noble gas?",
        "domain": "science",
        "answer_kind": "choice",
        "answer": "Argon",
        "choices": "Oxygen\nArgon\nNitrogen",
        "tolerance": "",
        "unit": "",
        "solution": "",
        "difficulty": "2",
        "tags": "chemistry, gases",
    }
    again = teacher_client.post(response["Location"], form | {"add_another": "1"})
    assert again["Location"] == response["Location"]
    problem = Problem.objects.get()
    assert (problem.reference_answer, problem.choices, problem.tags) == (
        "B",
        ["Oxygen", "Argon", "Nitrogen"],
        ["chemistry", "gases"],
    )
    duplicate = teacher_client.post(response["Location"], form)
    assert "You already have this problem in “Quiz”." in duplicate.content.decode()


@pytest.mark.parametrize(
    "name,data,status",
    [
        # a lone surrogate escape: UTF-8 and PostgreSQL refuse the decoded text (was a 500)
        ("lone.json", b'[{"statement": "What is \\ud800?", "answer": "4"}]', 400),
        ("lone.jsonl", b'{"statement": "What?", "answer": "4", "\\udfff": 1}\n', 400),
        # more digits than Python turns into an int (was a 500): an error of its item
        ("big.json", b'[{"statement": "What is big?", "answer": ' + b"9" * 5000 + b"}]", 302),
        ("big.jsonl", b'{"statement": "What is big?", "answer": ' + b"9" * 5000 + b"}\n", 302),
    ],
)
def test_json_that_python_decodes_but_cannot_keep_is_not_a_server_error(
    teacher_client, name, data, status
):
    response = teacher_client.post(
        reverse("problems:upload"),
        {
            "file": SimpleUploadedFile(name, data),
            "format": "auto",
            "default_domain": "math",
            "target_set": "",
            "on_error": "skip",
        },
    )
    assert response.status_code == status
    if status == 400:
        assert "half of a character" in response.content.decode()
        assert not ProblemUpload.objects.exists()
    else:
        staged = ProblemUpload.objects.get()
        assert (staged.ready_count, staged.error_count) == (0, 1)
        page = teacher_client.get(response["Location"]).content.decode()
        assert "longer than 500 characters" in page


def test_an_uploaded_set_with_direction_overrides_imports_without_them_and_says_so(
    teacher_client,
):
    """A statement whose U+202E makes "21 + 1" show as "1 + 12" (and a title and tag with
    isolates) is imported with the controls removed; the preview names the fields that had them."""
    rows = (
        "statement,answer,tags\n"
        '"Compute \u202e21 + 1\u202c.",22,"\u2067arith\u2069"\n'
        "What is 2 + 2?,4,\n"
    )
    response = teacher_client.post(
        reverse("problems:upload"),
        {
            "file": SimpleUploadedFile("week-1.csv", rows.encode("utf-8")),
            "format": "auto",
            "default_domain": "math",
            "target_set": "",
            "on_error": "skip",
        },
    )
    staged = ProblemUpload.objects.get()
    assert staged.ready_count == 2 and staged.error_count == 0
    preview = teacher_client.get(response["Location"]).content.decode()
    assert "\u202e" not in preview and "\u2067" not in preview
    assert '<div class="statement math" dir="auto">Compute 21 + 1.</div>' in preview
    assert (
        "<strong>statement</strong>: Invisible direction controls (U+202C, U+202E) were removed"
    ) in preview
    assert "<strong>tags</strong>: Invisible direction controls (U+2067, U+2069) were removed" in (
        preview
    )

    done = teacher_client.post(
        response["Location"], {"title": "\u202eWeek 1\u202c", "on_error": "skip"}
    )
    problem_set = ProblemSet.objects.get()
    assert done["Location"] == reverse("problems:problem_set_detail", args=[problem_set.pk])
    assert problem_set.title == "Week 1"
    first = problem_set.problems.order_by("position").first()
    assert (first.statement, first.reference_answer, first.tags) == (
        "Compute 21 + 1.",
        "22",
        ["arith"],
    )
    assert first.content_key == problem_content_key("Compute 21 + 1.")
    page = teacher_client.get(done["Location"]).content.decode()
    assert "\u202e" not in page
    assert '<div class="statement math" dir="auto">Compute 21 + 1.</div>' in page
    assert "<h1><bdi>Week 1</bdi>" in page
    listing = teacher_client.get(reverse("problems:problem_set_list")).content.decode()
    assert "><bdi>Week 1</bdi></a>" in listing
