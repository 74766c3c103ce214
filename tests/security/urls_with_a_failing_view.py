"""The site's URLs plus one view that fails, to see the 500 page a real bug would produce."""

from django.urls import path

from webapp.urls import urlpatterns as site_urlpatterns


def failing_view(request):
    raise RuntimeError("a bug, with a secret in its message: hunter2")


urlpatterns = [*site_urlpatterns, path("failing/", failing_view)]
