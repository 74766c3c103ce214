"""The class pages through Django's test client: create a class, share its code, join as a
student (by code or link), assign a set, see it as a student; another teacher gets 404, a student
403 on every teacher page, an anonymous visitor the log-in page."""

import pytest
from django.urls import reverse

from webapp.classes import services
from webapp.classes.models import Assignment, Classroom, Enrollment
from webapp.problems import services as problem_services

pytestmark = pytest.mark.django_db


def test_teacher_creates_a_class_and_assigns_a_set(client, teacher, problem_set):
    client.force_login(teacher)
    response = client.post(reverse("classes:classroom_create"), {"name": "Year 9 maths"})
    classroom = Classroom.objects.get()
    assert response["Location"] == reverse("classes:classroom_detail", args=[classroom.pk])

    page = client.get(response["Location"]).content.decode()
    assert classroom.join_code in page
    assert f"http://testserver/teach/join/{classroom.join_code}/" in page

    client.post(
        reverse("classes:assignment_create", args=[classroom.pk]),
        {"problem_set": problem_set.pk, "due_at": "2030-05-01T09:00"},
    )
    assignment = Assignment.objects.get()
    assert assignment.due_at.year == 2030 and assignment.problem_set == problem_set
    client.post(reverse("classes:assignment_due", args=[assignment.pk]), {"due_at": ""})
    assignment.refresh_from_db()
    assert assignment.due_at is None

    home = client.get(reverse("classes:teacher_home")).content.decode()
    assert "Year 9 maths" in home and "Week 1" in home


def test_a_class_name_cannot_reorder_the_names_around_it(client, teacher, students, problem_set):
    """An override in a class name ("\u202eA 9 raeY" shows as "Year 9 A") is removed on the way
    in, and every name is isolated (<bdi>) from the text beside it on the student's page."""
    client.force_login(teacher)
    client.post(reverse("classes:classroom_create"), {"name": "Year 9 \u202eB\u202c"})
    classroom = Classroom.objects.get()
    assert classroom.name == "Year 9 B"
    page = client.get(reverse("classes:classroom_detail", args=[classroom.pk])).content.decode()
    assert "\u202e" not in page and '<h1 dir="auto">Year 9 B</h1>' in page
    refused = client.post(
        reverse("classes:classroom_create"), {"name": "\u202e\u202c"}, follow=True
    )
    assert "Give the class a name." in refused.content.decode()
    assert Classroom.objects.count() == 1

    services.assignment_create(classroom=classroom, teacher=teacher, problem_set=problem_set)
    services.enrollment_join(student=students[0], code=classroom.join_code)
    client.force_login(students[0])
    mine = client.get(reverse("classes:my_classes")).content.decode()
    assert '<p class="meta"><bdi>Year 9 B</bdi> · <bdi>t-ada</bdi>' in mine
    assert "<li><bdi>Year 9 B</bdi>" in mine


def test_student_joins_by_link_and_sees_the_assignment(client, teacher, students, problem_set):
    classroom = services.classroom_create(teacher=teacher, name="Year 9")
    services.assignment_create(classroom=classroom, teacher=teacher, problem_set=problem_set)
    client.force_login(students[0])

    link = reverse("classes:join_with_code", args=[classroom.join_code.lower()])
    confirm = client.get(link)
    assert "Join <bdi>Year 9</bdi>?" in confirm.content.decode()
    assert not Enrollment.objects.exists()  # opening the link changes nothing

    joined = client.post(link, follow=True)
    assert Enrollment.objects.filter(classroom=classroom, student=students[0]).exists()
    html = joined.content.decode()
    assert "You joined Year 9." in html
    assert "Week 1" in html and "0 of 3 solved" in html


def test_student_joins_by_typed_code_and_a_wrong_code_is_explained(client, teacher, students):
    classroom = services.classroom_create(teacher=teacher, name="Year 9")
    client.force_login(students[0])
    wrong = client.post(reverse("classes:join"), {"code": "nope"}, follow=True)
    assert "No class has the code “NOPE”" in wrong.content.decode()
    client.post(reverse("classes:join"), {"code": classroom.join_code})
    assert Enrollment.objects.filter(student=students[0]).exists()


def test_teacher_removes_a_student(client, teacher, students):
    classroom = services.classroom_create(teacher=teacher, name="Year 9")
    services.enrollment_join(student=students[0], code=classroom.join_code)
    client.force_login(teacher)
    response = client.post(
        reverse("classes:student_remove", args=[classroom.pk, students[0].pk]),
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200 and response.content == b""
    assert not Enrollment.objects.exists()


@pytest.fixture
def owned(teacher, students, problem_set):
    classroom = services.classroom_create(teacher=teacher, name="Private class")
    services.enrollment_join(student=students[0], code=classroom.join_code)
    assignment = services.assignment_create(
        classroom=classroom, teacher=teacher, problem_set=problem_set
    )
    return classroom, assignment, students[0]


def class_urls(classroom, assignment, student) -> list[tuple[str, str]]:
    return [
        ("get", reverse("classes:classroom_detail", args=[classroom.pk])),
        ("post", reverse("classes:classroom_rename", args=[classroom.pk])),
        ("post", reverse("classes:classroom_code_renew", args=[classroom.pk])),
        ("get", reverse("classes:classroom_delete", args=[classroom.pk])),
        ("post", reverse("classes:classroom_delete", args=[classroom.pk])),
        ("post", reverse("classes:student_remove", args=[classroom.pk, student.pk])),
        ("post", reverse("classes:assignment_create", args=[classroom.pk])),
        ("get", reverse("classes:classroom_results", args=[classroom.pk])),
        (
            "get",
            reverse("classes:classroom_results", args=[classroom.pk])
            + f"?assignment={assignment.pk}",
        ),
        ("get", reverse("classes:classroom_results_csv", args=[classroom.pk])),
        ("post", reverse("classes:assignment_due", args=[assignment.pk])),
        ("post", reverse("classes:assignment_delete", args=[assignment.pk])),
    ]


def test_another_teacher_cannot_see_my_classes_or_results(client, other_teacher, owned):
    client.force_login(other_teacher)
    for method, url in class_urls(*owned):
        assert getattr(client, method)(url).status_code == 404, url
    assert "Private class" not in client.get(reverse("classes:teacher_home")).content.decode()
    assert Classroom.objects.filter(name="Private class").exists()
    assert Enrollment.objects.exists() and Assignment.objects.exists()


def test_another_teachers_assignment_cannot_scope_my_results(
    client, teacher, other_teacher, owned, problem_set
):
    classroom, _, _ = owned
    their_class = services.classroom_create(teacher=other_teacher, name="Theirs")
    their_set = problem_services.problem_set_create(teacher=other_teacher, title="Theirs")
    theirs = services.assignment_create(
        classroom=their_class, teacher=other_teacher, problem_set=their_set
    )
    client.force_login(teacher)
    url = reverse("classes:classroom_results", args=[classroom.pk]) + f"?assignment={theirs.pk}"
    assert client.get(url).status_code == 404


def test_a_student_cannot_reach_any_teacher_page(client, owned):
    client.force_login(owned[2])
    for method, url in [
        ("get", reverse("classes:teacher_home")),
        ("post", reverse("classes:classroom_create")),
    ] + class_urls(*owned):
        assert getattr(client, method)(url).status_code == 403, url


def test_a_teacher_cannot_use_student_join_pages(client, teacher, owned):
    client.force_login(teacher)
    assert client.get(reverse("classes:my_classes")).status_code == 403
    assert client.post(reverse("classes:join"), {"code": owned[0].join_code}).status_code == 403


def test_anonymous_visitors_are_sent_to_log_in(client, owned):
    classroom = owned[0]
    join_link = reverse("classes:join_with_code", args=[classroom.join_code])
    for method, url in class_urls(*owned) + [
        ("get", join_link),
        ("get", reverse("classes:my_classes")),
    ]:
        response = getattr(client, method)(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("accounts:login")), url
    # The join link survives the log-in: it is the `next` of the log-in page.
    assert client.get(join_link)["Location"].endswith(f"?next={join_link}")


@pytest.mark.parametrize(
    "zone,due", [("America/New_York", "9999-12-31T23:59"), ("Asia/Tokyo", "0001-01-01T00:00")]
)
def test_a_due_date_the_database_cannot_hold_is_refused_with_a_reason(
    client, settings, teacher, students, problem_set, zone, due
):
    # With TIME_ZONE behind UTC, 31 Dec 9999 23:59 is a day of the year 10000 in UTC: PostgreSQL
    # stored it, and reading the assignment back failed, so the class page, the results and every
    # student's "Your classes" answered 500 until the row was removed by hand. Ahead of UTC,
    # 1 Jan 0001 is a day BC in UTC: stored, and unreadable the same way.
    settings.TIME_ZONE = zone
    classroom = services.classroom_create(teacher=teacher, name="Year 9")
    services.enrollment_join(student=students[0], code=classroom.join_code)
    client.force_login(teacher)
    assign = reverse("classes:assignment_create", args=[classroom.pk])
    detail = reverse("classes:classroom_detail", args=[classroom.pk])

    response = client.post(assign, {"problem_set": problem_set.pk, "due_at": due}, follow=True)
    assert response.status_code == 200
    assert "Choose a due date between the years 1900 and 9998." in response.content.decode()
    assert not Assignment.objects.exists()

    client.post(assign, {"problem_set": problem_set.pk, "due_at": "2030-05-01T09:00"})
    assignment = Assignment.objects.get()
    due_url = reverse("classes:assignment_due", args=[assignment.pk])
    response = client.post(due_url, {"due_at": due}, follow=True)
    assert "Choose a due date between the years 1900 and 9998." in response.content.decode()
    assignment.refresh_from_db()
    assert (assignment.due_at.year, assignment.due_at.month) == (2030, 5)
    assert client.get(detail).status_code == 200
    client.force_login(students[0])
    assert client.get(reverse("classes:my_classes")).status_code == 200
