"""URLs of webapp.classes, under /teach/: the teacher's classes, and the student's join pages."""

from django.urls import path

from webapp.classes import views

app_name = "classes"

urlpatterns = [
    path("", views.teacher_home, name="teacher_home"),
    path("classes/new/", views.classroom_create, name="classroom_create"),
    path("classes/<int:classroom_id>/", views.classroom_detail, name="classroom_detail"),
    path("classes/<int:classroom_id>/rename/", views.classroom_rename, name="classroom_rename"),
    path(
        "classes/<int:classroom_id>/code/", views.classroom_code_renew, name="classroom_code_renew"
    ),
    path("classes/<int:classroom_id>/delete/", views.classroom_delete, name="classroom_delete"),
    path(
        "classes/<int:classroom_id>/students/<int:student_id>/remove/",
        views.student_remove,
        name="student_remove",
    ),
    path("classes/<int:classroom_id>/assign/", views.assignment_create, name="assignment_create"),
    path("classes/<int:classroom_id>/results/", views.classroom_results, name="classroom_results"),
    path(
        "classes/<int:classroom_id>/results.csv",
        views.classroom_results_csv,
        name="classroom_results_csv",
    ),
    path("assignments/<int:assignment_id>/due/", views.assignment_due, name="assignment_due"),
    path(
        "assignments/<int:assignment_id>/delete/", views.assignment_delete, name="assignment_delete"
    ),
    # The student's side: joining with a code or a shared link, and their classes.
    path("my-classes/", views.my_classes, name="my_classes"),
    path("join/", views.join, name="join"),
    path("join/<str:code>/", views.join_with_code, name="join_with_code"),
]
