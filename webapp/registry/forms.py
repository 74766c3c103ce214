"""Forms of the admin dashboard's registry: promoting a version. (The launch form of a training job is
training_jobs/launch_form.py.) Forms only parse input; the services decide.
"""

from __future__ import annotations

from django import forms


class PromoteForm(forms.Form):
    override = forms.BooleanField(required=False)
    reason = forms.CharField(required=False, max_length=2000, widget=forms.Textarea)
