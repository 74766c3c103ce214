"""URLs of webapp.problems: a teacher's problem sets, under /teach/sets/."""

from django.urls import path

from webapp.problems import views

app_name = "problems"

urlpatterns = [
    path("", views.problem_set_list, name="problem_set_list"),
    path("new/", views.problem_set_create, name="problem_set_create"),
    path("upload/", views.upload, name="upload"),
    path("upload/<uuid:token>/", views.upload_preview, name="upload_preview"),
    path("upload/<uuid:token>/status/", views.upload_status, name="upload_status"),
    path("upload/<uuid:token>/discard/", views.upload_discard, name="upload_discard"),
    path("upload/<uuid:token>/retry/", views.upload_retry, name="upload_retry"),
    path("upload/<uuid:token>/report.csv", views.upload_report, name="upload_report"),
    path("examples/<str:format>/", views.example_file, name="example_file"),
    path("<int:problem_set_id>/", views.problem_set_detail, name="problem_set_detail"),
    path("<int:problem_set_id>/edit/", views.problem_set_edit, name="problem_set_edit"),
    path("<int:problem_set_id>/delete/", views.problem_set_delete, name="problem_set_delete"),
    path("<int:problem_set_id>/training/", views.problem_set_training, name="problem_set_training"),
    path("<int:problem_set_id>/problems/new/", views.problem_create, name="problem_create"),
    path("problems/<int:problem_id>/edit/", views.problem_edit, name="problem_edit"),
    path("problems/<int:problem_id>/delete/", views.problem_delete, name="problem_delete"),
    path("problems/<int:problem_id>/training/", views.problem_training, name="problem_training"),
]
