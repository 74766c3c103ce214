"""Forms of the teacher's problem pages: upload, preview confirmation, a set, a single problem.

Forms only collect input; every rule about a problem's values lives in `importers.validation`
(through the services), so a typed problem and an uploaded one obey the same checks.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from django import forms
from django.conf import settings

from webapp.problems.importers import FORMAT_CHOICES
from webapp.problems.importers.validation import (
    MAX_CHOICE_CHARS,
    MAX_CHOICES,
    MAX_SOLUTION_CHARS,
    MAX_STATEMENT_CHARS,
)
from webapp.problems.models import AnswerKind, Domain, OnError, Problem, ProblemSet

if TYPE_CHECKING:
    from webapp.problems.importers.records import Issue

NEW_SET = ""


class UploadForm(forms.Form):
    file = forms.FileField(
        required=False,
        label="Problem file",
        help_text="CSV, JSON, JSONL, Moodle GIFT or Aiken.",
    )
    pasted = forms.CharField(
        required=False,
        label="…or paste problems",
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}),
        help_text="Paste rows copied from a spreadsheet, or GIFT / Aiken text.",
    )
    format = forms.ChoiceField(
        choices=[("auto", "Recognise it for me")] + FORMAT_CHOICES, initial="auto"
    )
    default_domain = forms.ChoiceField(
        choices=Domain.choices,
        initial=Domain.MATH,
        label="Domain for problems that do not say",
    )
    target_set = forms.ChoiceField(required=False, label="Import into")
    title = forms.CharField(
        required=False,
        max_length=200,
        label="Title of the new set",
        help_text="Leave empty to use the file's name.",
    )
    on_error = forms.ChoiceField(
        choices=OnError.choices,
        initial=OnError.SKIP,
        widget=forms.RadioSelect,
        label="If some items have errors",
    )

    def __init__(self, *args, teacher, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        sets = ProblemSet.objects.filter(owner=teacher).order_by("title").values_list("pk", "title")
        self.fields["target_set"].choices = [(NEW_SET, "A new set")] + [
            (str(pk), title) for pk, title in sets
        ]

    def clean(self) -> dict:
        cleaned = super().clean()
        upload, pasted = cleaned.get("file"), (cleaned.get("pasted") or "").strip()
        if upload and pasted:
            raise forms.ValidationError("Choose a file or paste text, not both.")
        if not upload and not pasted:
            raise forms.ValidationError("Choose a file to upload, or paste your problems.")
        limit = settings.PROBLEM_UPLOAD_MAX_BYTES
        if upload and upload.size > limit:
            raise forms.ValidationError(
                f"The file is {upload.size / 1_048_576:.1f} MB; the limit is "
                f"{limit / 1_048_576:.1f} MB. Split it into smaller files."
            )
        return cleaned

    def upload_bytes(self) -> tuple[bytes, str]:
        """The uploaded or pasted content and a name for it."""
        upload = self.cleaned_data.get("file")
        if upload:
            # Read one byte past the limit so the service can refuse an oversized stream too.
            return upload.read(settings.PROBLEM_UPLOAD_MAX_BYTES + 1), upload.name
        return self.cleaned_data["pasted"].encode("utf-8"), "pasted text"


class ImportForm(forms.Form):
    title = forms.CharField(required=False, max_length=200, label="Title of the new set")
    on_error = forms.ChoiceField(
        choices=OnError.choices, widget=forms.RadioSelect, label="If some items have errors"
    )


class ProblemSetForm(forms.ModelForm):
    class Meta:
        model = ProblemSet
        fields = ["title", "description", "is_practice"]
        labels = {
            "is_practice": "Practice set: the students of your classes may open it (every "
            "student, once an admin makes it public)"
        }
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args, may_publish: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not may_publish:
            # A teacher awaiting approval cannot offer a set to students (the service refuses).
            self.fields["is_practice"].disabled = True
            self.fields[
                "is_practice"
            ].help_text = "Available once an administrator approves your teacher account."


class ProblemForm(forms.Form):
    """One problem typed by hand. The values go to the services as upload fields.

    Every text field has its length limit here, so an oversized value is refused before the
    validation's patterns read it."""

    statement = forms.CharField(
        max_length=MAX_STATEMENT_CHARS,
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text="Markdown, with LaTeX between $…$ or \\(…\\).",
    )
    domain = forms.ChoiceField(choices=Domain.choices, initial=Domain.MATH)
    answer_kind = forms.ChoiceField(choices=AnswerKind.choices, label="Answer type")
    answer = forms.CharField(
        required=False,
        max_length=500,
        help_text="An expression (x^2+1), a number (9.81), or for multiple choice the right letter.",
    )
    tolerance = forms.CharField(
        required=False,
        max_length=40,
        help_text="Numbers only: a margin in the answer's unit (0.05) or a percentage (1%).",
    )
    unit = forms.CharField(required=False, max_length=32, help_text="Numbers only, e.g. m/s^2.")
    choices = forms.CharField(
        required=False,
        # Every choice at its longest, each on its own line (Windows line ends included).
        max_length=MAX_CHOICES * (MAX_CHOICE_CHARS + 2),
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Multiple choice only: one choice per line, in order A, B, C…",
    )
    solution = forms.CharField(
        required=False,
        max_length=MAX_SOLUTION_CHARS,
        widget=forms.Textarea(attrs={"rows": 5}),
        label="Worked solution",
    )
    difficulty = forms.TypedChoiceField(
        required=False,
        choices=[("", "—")] + [(str(n), str(n)) for n in range(1, 6)],
        coerce=str,
        empty_value="",
    )
    tags = forms.CharField(required=False, max_length=400, help_text="Separated by commas.")

    def service_fields(self) -> dict:
        data = self.cleaned_data
        return {
            "statement": data["statement"],
            "domain": data["domain"],
            "answer_kind": data["answer_kind"],
            "answer": data["answer"],
            "tolerance": data["tolerance"],
            "unit": data["unit"],
            "choices": [line for line in data["choices"].splitlines() if line.strip()],
            "solution": data["solution"],
            "difficulty": data["difficulty"],
            "tags": data["tags"],
        }

    @classmethod
    def initial_for(cls, problem: Problem) -> dict:
        tolerance = ""
        if problem.tolerance is not None:
            tolerance = f"{problem.tolerance * 100:.6g}%"
        return {
            "statement": problem.statement,
            "domain": problem.domain,
            "answer_kind": problem.answer_kind,
            "answer": problem.reference_answer,
            "tolerance": tolerance,
            "unit": problem.unit,
            "choices": "\n".join(problem.choices or []),
            "solution": problem.solution,
            "difficulty": str(problem.difficulty or ""),
            "tags": ", ".join(problem.tags or []),
        }

    def add_service_errors(self, issues: Iterable[Issue]) -> None:
        """Put each issue under its field (the validation's labels map onto form fields)."""
        by_label = {
            "statement": "statement",
            "domain": "domain",
            "answer type": "answer_kind",
            "answer": "answer",
            "tolerance": "tolerance",
            "unit": "unit",
            "choices": "choices",
            "solution": "solution",
            "difficulty": "difficulty",
            "tags": "tags",
        }
        for issue in issues:
            self.add_error(by_label.get(issue.field), issue.message)
