"""URLs of webapp.audit, under /dashboard/audit/."""

from django.urls import path

from webapp.audit import views

app_name = "audit"

urlpatterns = [path("", views.audit_log, name="audit_log")]
