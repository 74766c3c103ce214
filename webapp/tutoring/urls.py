"""URLs of webapp.tutoring (the student's pages, under /solve/)."""

from django.urls import path

from webapp.tutoring import views

app_name = "tutoring"

urlpatterns = [
    path("", views.student_home, name="student_home"),
    path("ask/", views.attempt_create, name="attempt_create"),
    path("history/", views.attempt_history, name="attempt_history"),
    path("sets/<int:problem_set_id>/", views.problem_set_detail, name="problem_set_detail"),
    path("assignments/<int:assignment_id>/", views.assignment_detail, name="assignment_detail"),
    path("problems/<int:problem_id>/start/", views.problem_start, name="problem_start"),
    path("attempts/<int:attempt_id>/", views.attempt_detail, name="attempt_detail"),
    path("attempts/<int:attempt_id>/actions/", views.attempt_actions, name="attempt_actions"),
    path("attempts/<int:attempt_id>/hint/", views.attempt_hint, name="attempt_hint"),
    path("attempts/<int:attempt_id>/solution/", views.attempt_solution, name="attempt_solution"),
    path("attempts/<int:attempt_id>/answer/", views.own_answer_create, name="own_answer_create"),
    path(
        "generations/<int:generation_id>/footer/",
        views.generation_footer,
        name="generation_footer",
    ),
    path("generations/<int:generation_id>/stop/", views.generation_stop, name="generation_stop"),
    path("generations/<int:generation_id>/feedback/", views.feedback_save, name="feedback_save"),
]
