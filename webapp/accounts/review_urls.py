"""URLs of the admin's teacher review, under /dashboard/teachers/."""

from django.urls import path

from webapp.accounts import views

app_name = "teacher_review"

urlpatterns = [
    path("", views.teacher_list, name="teacher_list"),
    path("<int:teacher_id>/decide/", views.teacher_decide, name="teacher_decide"),
]
