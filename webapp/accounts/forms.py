"""Sign-up form: a student or a teacher account (admins are made by other admins)."""

from django import forms
from django.contrib.auth.forms import UserCreationForm

from webapp.accounts.models import Role, User


class SignupForm(UserCreationForm):
    role = forms.ChoiceField(
        choices=[(Role.STUDENT, "I am a student"), (Role.TEACHER, "I am a teacher")],
        initial=Role.STUDENT,
        widget=forms.RadioSelect,
    )

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "email")
