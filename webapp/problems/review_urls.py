"""URLs of the admin's problem-set review, under /dashboard/sets/: make practice sets public, and
approve sets for the training pool."""

from django.urls import path

from webapp.problems import views

app_name = "set_review"

urlpatterns = [
    path("", views.set_review_list, name="set_list"),
    path("<int:problem_set_id>/", views.set_review_detail, name="set_detail"),
    path("<int:problem_set_id>/decide/", views.set_review_decide, name="set_decide"),
]
