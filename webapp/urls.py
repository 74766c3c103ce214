"""The site's URL map: one include per app."""

from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", include("webapp.core.urls")),
    path("accounts/", include("webapp.accounts.urls")),
    path("solve/", include("webapp.tutoring.urls")),
    path("teach/", include("webapp.classes.urls")),
    path("teach/sets/", include("webapp.problems.urls")),
    path("dashboard/teachers/", include("webapp.accounts.review_urls")),
    path("dashboard/sets/", include("webapp.problems.review_urls")),
    path("dashboard/audit/", include("webapp.audit.urls")),
    path("dashboard/", include("webapp.registry.urls")),
    path("django-admin/", admin.site.urls),
    # Browsers ask for /favicon.ico on pages without a <link rel="icon"> (JSON, the admin).
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
]
