"""Forms of the class pages: a class's name, a join code, assigning a set, a due date."""

from __future__ import annotations

from datetime import UTC

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

    # The years a due date may take. The date is typed in the site's time zone and stored in UTC:
    # near the ends of Python's years (1 … 9999) it lands outside them in UTC, a timestamp that
    # PostgreSQL stores (10000-01-01, or a day BC) but that cannot be read back, so every page
    # showing the assignment (the class, its results, the students' pages) answered 500.
    FIRST_YEAR, LAST_YEAR = 1900, 9998

    def clean_due_at(self):
        due_at = self.cleaned_data["due_at"]
        if due_at is not None and not (
            self.FIRST_YEAR <= due_at.year <= self.LAST_YEAR
            and self.FIRST_YEAR <= due_at.astimezone(UTC).year <= self.LAST_YEAR
        ):
            raise forms.ValidationError(
                f"Choose a due date between the years {self.FIRST_YEAR} and {self.LAST_YEAR}."
            )
        return due_at


class AssignForm(DueDateForm):
    problem_set = forms.ModelChoiceField(queryset=ProblemSet.objects.none(), label="Problem set")

    field_order = ["problem_set", "due_at"]

    def __init__(self, *args, teacher, classroom=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        sets = ProblemSet.objects.filter(owner=teacher).order_by("title")
        if classroom is not None:  # offer only what is not assigned to this class yet
            sets = sets.exclude(assignments__classroom=classroom)
        self.fields["problem_set"].queryset = sets
