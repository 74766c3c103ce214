"""Forms of the class pages: a class's name, a join code, assigning a set, a due date."""

from __future__ import annotations

from django import forms

from webapp.classes.join_codes import normalise_join_code
from webapp.problems.models import ProblemSet


class ClassroomForm(forms.Form):
    name = forms.CharField(max_length=200, label="Class name")


class JoinForm(forms.Form):
    code = forms.CharField(
        max_length=40, label="Join code", help_text="Your teacher gives you this code."
    )

    def clean_code(self) -> str:
        """The code as stored ("demo-1234 " → "DEMO1234"); only ASCII letters and digits."""
        code = normalise_join_code(self.cleaned_data["code"])
        if not code or not (code.isascii() and code.isalnum()):
            raise forms.ValidationError(
                "A join code has only letters and digits, like DEMO1234. Check it with your "
                "teacher."
            )
        return code


class DueDateForm(forms.Form):
    due_at = forms.DateTimeField(
        required=False,
        label="Due (optional)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
    )


class AssignForm(DueDateForm):
    problem_set = forms.ModelChoiceField(queryset=ProblemSet.objects.none(), label="Problem set")

    field_order = ["problem_set", "due_at"]

    def __init__(self, *args, teacher, classroom=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        sets = ProblemSet.objects.filter(owner=teacher).order_by("title")
        if classroom is not None:  # offer only what is not assigned to this class yet
            sets = sets.exclude(assignments__classroom=classroom)
        self.fields["problem_set"].queryset = sets
