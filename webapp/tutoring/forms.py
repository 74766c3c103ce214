"""Forms of the student's pages: typing a problem, starting one, an own answer, feedback, search.

They only parse and bound the input; the rules (limits, access, the hint flow) are the services'.
"""

from django import forms
from django.conf import settings

from webapp.tutoring.models import AttemptMode
from webapp.tutoring.services import FEEDBACK_TAGS, MAX_FEEDBACK_TEXT_CHARS, MAX_OWN_ANSWER_CHARS


class AskForm(forms.Form):
    statement = forms.CharField(
        label="Your problem",
        max_length=settings.INFERENCE["MAX_PROMPT_CHARS"],
        strip=True,
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "true"}),
        error_messages={"required": "Type a problem first."},
    )
    mode = forms.ChoiceField(choices=AttemptMode.choices, initial=AttemptMode.SOLVE)


class StartProblemForm(forms.Form):
    mode = forms.ChoiceField(choices=AttemptMode.choices, initial=AttemptMode.SOLVE)
    assignment = forms.IntegerField(required=False, min_value=1)


class OwnAnswerForm(forms.Form):
    answer = forms.CharField(
        label="Your answer",
        max_length=MAX_OWN_ANSWER_CHARS,
        error_messages={"required": "Type your answer first."},
    )


class FeedbackForm(forms.Form):
    rating = forms.TypedChoiceField(choices=[("1", "Helpful"), ("-1", "Not helpful")], coerce=int)
    tags = forms.MultipleChoiceField(
        choices=list(FEEDBACK_TAGS.items()), required=False, widget=forms.CheckboxSelectMultiple
    )
    text = forms.CharField(
        label="Anything else?", required=False, max_length=MAX_FEEDBACK_TEXT_CHARS
    )


class HistorySearchForm(forms.Form):
    q = forms.CharField(label="Search your attempts", required=False, max_length=200)
