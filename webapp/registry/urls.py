"""URLs of webapp.registry: the admin dashboard (prefix `dashboard/`) and the training-job pages."""

from django.urls import path

from webapp.registry import views

app_name = "registry"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("serving/", views.serving_panel, name="serving"),
    path("registry/", views.registry_panel, name="registry"),
    path("jobs/", views.jobs_panel, name="jobs"),
    path("versions/<int:version_id>/promote/", views.model_version_promote, name="promote"),
    path("versions/<int:version_id>/evaluate/", views.model_version_evaluate, name="evaluate"),
    path("versions/rollback/", views.model_version_rollback, name="rollback"),
    path("jobs/pool-count/", views.pool_count, name="pool_count"),
    path("jobs/launch/", views.training_job_launch, name="launch"),
    path("jobs/<int:job_id>/", views.training_job_detail, name="job"),
    path("jobs/<int:job_id>/cancel/", views.training_job_cancel, name="cancel"),
    path("jobs/<int:job_id>/resume/", views.training_job_resume, name="resume"),
]
