"""The form that launches a training job. Its hyper-parameter fields are built from the trainer's
documented defaults (fields.hyperparameter_fields), so the form, its help texts and the validation
in the service all read the same numbers; it shows the job's memory plan (plan.py). The form only
parses input; the services decide.
"""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.db.models import QuerySet

from webapp.core.errors import ServiceError
from webapp.problems.models import ProblemSet
from webapp.registry.models import ModelVersion, VersionStatus
from webapp.registry.training_jobs.catalog import ALGORITHMS, DEFAULT_STAGE, DOMAINS, STAGES
from webapp.registry.training_jobs.fields import hyperparameter_fields
from webapp.registry.training_jobs.plan import job_plan, plan_summary


def _base_model_choices() -> QuerySet[ModelVersion]:
    """The versions a job may start from, the champion and candidates first."""
    return ModelVersion.objects.exclude(status=VersionStatus.RETIRED).order_by(
        "status", "-created_at"
    )


class _ApprovedSetsField(forms.ModelMultipleChoiceField):
    """Problem sets labelled with their owner and who approved them for training, and when."""

    def label_from_instance(self, obj: ProblemSet) -> str:
        approver = obj.training_approved_by
        return (
            f"{obj.title} ({obj.owner.username}; approved by "
            f"{approver.username if approver else '?'} {obj.training_approved_at:%Y-%m-%d})"
        )


class LaunchJobForm(forms.Form):
    base_model = forms.ModelChoiceField(
        queryset=ModelVersion.objects.none(),
        empty_label=None,
        help_text="The checkpoint training starts from (default: the champion).",
    )
    stage = forms.ChoiceField(choices=[])
    algorithm = forms.ChoiceField(
        choices=[],
        help_text="C3PO: constant token budget Φ per update. GRPO: the baseline (no budget).",
    )
    domains = forms.MultipleChoiceField(
        label="Domains",
        choices=[],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Leave empty for the stage's own domains.",
    )
    problem_sets = _ApprovedSetsField(
        label="Problem sets approved for training",
        queryset=ProblemSet.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Leave empty for every set in the pool. Sets join the pool on the problem sets "
        "page.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # self.fields holds this form's own copies of the fields declared above.
        base_model = cast(forms.ModelChoiceField, self.fields["base_model"])
        base_model.queryset = _base_model_choices()
        champion = ModelVersion.objects.filter(status=VersionStatus.CHAMPION).first()
        if champion is not None:
            base_model.initial = champion.pk
        cast(forms.ChoiceField, self.fields["stage"]).choices = list(STAGES.items())
        self.fields["stage"].initial = DEFAULT_STAGE
        cast(forms.ChoiceField, self.fields["algorithm"]).choices = list(ALGORITHMS.items())
        self.fields["algorithm"].initial = "c3po"
        cast(forms.ChoiceField, self.fields["domains"]).choices = list(DOMAINS.items())
        # Only sets approved for training have problems in the pool.
        problem_sets = cast(forms.ModelMultipleChoiceField, self.fields["problem_sets"])
        problem_sets.queryset = (
            ProblemSet.objects.filter(training_approved_at__isnull=False)
            .select_related("owner", "training_approved_by")
            .order_by("title")
        )
        self.hyperparameter_names = []
        for spec in hyperparameter_fields():
            field_class = forms.IntegerField if spec.kind == "int" else forms.FloatField
            # An int knob's bounds are ints (fields.py), a float knob's floats.
            bounds: dict[str, Any] = {"min_value": spec.minimum, "max_value": spec.maximum}
            self.fields[f"hp_{spec.name}"] = field_class(
                label=spec.label,
                initial=spec.default,
                help_text=f"{spec.help} Default {spec.default}.",
                required=False,
                **bounds,
            )
            self.hyperparameter_names.append(spec.name)

    def problem_fields(self) -> list[forms.BoundField]:
        return [self["domains"], self["problem_sets"]]

    def hyperparameter_bound_fields(self) -> list[forms.BoundField]:
        return [self[f"hp_{name}"] for name in self.hyperparameter_names]

    def problem_filter(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "domains": list(data.get("domains") or []),
            "problem_set_ids": [s.pk for s in data.get("problem_sets") or []],
        }

    def plan_summary(self) -> dict[str, Any] | None:
        """training/plan.py's per-device memory for the chosen base model and values (the
        defaults until the form is submitted); None when the base model's config is unreadable."""
        base = None
        values: dict[str, Any] = {}
        if self.is_bound and hasattr(self, "cleaned_data"):
            base = self.cleaned_data.get("base_model")
            values = self.hyperparameters()
        if base is None:
            base = _base_model_choices().filter(pk=self["base_model"].initial).first()
        if base is None:
            return None
        try:
            plan = job_plan(base_model_path=base.path, hyperparameters=values)
        except (ServiceError, ValueError):
            return None
        return plan_summary(plan)

    def hyperparameters(self) -> dict[str, Any]:
        """Only the values the admin typed; the service fills in the documented defaults."""
        return {
            name: self.cleaned_data[f"hp_{name}"]
            for name in self.hyperparameter_names
            if self.cleaned_data.get(f"hp_{name}") is not None
        }
