"""Fuzzing the answer checker: a student's own answer, and a teacher's reference answer.

Answers are drawn from a small grammar of what students type (numbers, fractions, powers,
factorials, roots, units, LaTeX) and from hostile text. Property: the check gives True, False or
"couldn't check" (None) — never an error — within the answer checker's limit plus a margin of
wall-clock time (tests/security/fuzzing.py) and under a second of the serving thread's CPU time.
"""

import pytest
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from tests.security.fuzzing import assert_bounded, fuzz, hostile_text, server_time
from webapp.core.answer_checks import answer_verdict, reference_problem

number = st.one_of(
    st.integers(-999, 99999).map(str),
    st.sampled_from(["0.5", "1e3", "3.14159", "\\pi", "e", "x", "y", "n", "10^{6}", "1,000"]),
)
math_answer = st.recursive(
    number,
    lambda inner: st.one_of(
        st.builds(
            "{}{}{}".format, inner, st.sampled_from(["+", "-", "*", "/", "^", "**", " "]), inner
        ),  # fmt: skip
        inner.map(lambda a: f"({a})"),
        inner.map(lambda a: f"{a}!"),
        inner.map(lambda a: f"({a})!"),
        inner.map(lambda a: f"\\sqrt{{{a}}}"),
        st.builds("\\frac{{{}}}{{{}}}".format, inner, inner),
        inner.map(lambda a: f"{a} m/s^2"),
    ),
    max_leaves=6,
).filter(lambda text: len(text) <= 300)
answer = st.one_of(math_answer, hostile_text)
KINDS = [
    ("expression", "x^2+2x+1", None),
    ("expression", "5/6", None),
    ("number", "9.81", "m/s^2"),
    ("number", "\\sqrt{2}", None),
    ("choice", "B", None),
]


@pytest.fixture(scope="module", autouse=True)
def warm_checker():
    # The site's checker processes start with the first symbolic check after a server starts;
    # here that start is paid once, outside the timed examples.
    answer_verdict(reference="x+1", answer="1+x", kind="expression")


@fuzz(examples=150)
@given(text=answer, key=st.sampled_from(KINDS))
def test_any_answer_against_any_key(text, key):
    kind, reference, unit = key
    with server_time() as spent:
        verdict = answer_verdict(
            reference=reference,
            answer=text,
            kind=kind,
            unit=unit,
            options=["1", "2", "3"] if kind == "choice" else None,
        )
    assert verdict in (True, False, None)
    assert_bounded(spent, text)


@fuzz(examples=80)
@given(text=answer, kind=st.sampled_from(["expression", "number", "choice"]))
def test_any_reference_answer(text, kind):
    with server_time() as spent:
        message = reference_problem(text, kind, options=["1", "2"] if kind == "choice" else None)
    assert message is None or isinstance(message, str)
    assert_bounded(spent, text)


@pytest.mark.django_db
@fuzz(examples=60)
@given(text=answer)
def test_own_answers_on_the_page(client, symbolic_attempt, student, settings, text):
    # Every example is the same student's answer within a minute: the per-student answer limits
    # would refuse most of them unchecked (they are tested in tests/webapp/tutoring).
    settings.OWN_ANSWER_CHECKS_PER_MINUTE = settings.OWN_ANSWER_CHECKS_PER_HOUR = 10_000
    settings.OWN_ANSWERS_PER_ATTEMPT = 10_000
    client.force_login(student)
    url = reverse("tutoring:own_answer_create", args=[symbolic_attempt.pk])
    with server_time() as spent:
        response = client.post(url, {"answer": text}, HTTP_HX_REQUEST="true")
    assert response.status_code < 500, text
    assert_bounded(spent, text)
