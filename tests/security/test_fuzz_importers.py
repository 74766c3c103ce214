"""Fuzzing every importer (CSV, JSON, JSONL, GIFT, Aiken, pasted text) through the upload service
and the upload page: no input is a server error, none costs more than a second of server time."""

import json

import pytest
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from tests.security.fuzzing import assert_bounded, fuzz, hostile_text, server_time
from webapp.core.errors import ServiceError
from webapp.problems.services import problem_upload_preview

pytestmark = pytest.mark.django_db

FIELDS = ["statement", "question", "answer", "answer_type", "choices", "tolerance", "unit",
          "solution", "difficulty", "tags", "domain", "option_a", "option_b", "Key", "x"]  # fmt: skip
cell = st.one_of(hostile_text, st.sampled_from(["1", "x^2+1", "B", "choice", "number", "5%"]))


def _stage(teacher, data: bytes, filename: str, format: str = "auto") -> None:
    with server_time() as spent:
        try:
            problem_upload_preview(teacher=teacher, data=data, filename=filename, format=format)
        except ServiceError:
            pass  # a refused file, with its message: the expected failure
    assert_bounded(spent, (filename, data[:200]))


@st.composite
def csv_files(draw) -> bytes:
    delimiter = draw(st.sampled_from([",", ";", "\t"]))
    header = draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=6))
    rows = draw(st.lists(st.lists(cell, max_size=len(header) + 1), max_size=6))

    def quote(value: str) -> str:
        if draw(st.booleans()):
            return '"' + value.replace('"', '""') + '"'
        return value

    lines = [delimiter.join(header)] + [delimiter.join(quote(v) for v in row) for row in rows]
    return "\n".join(lines).encode("utf-8", "surrogatepass")


json_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), cell),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.sampled_from(FIELDS), children)
    ),
    max_leaves=12,
)
problem = st.dictionaries(st.sampled_from(FIELDS), json_value, max_size=6)


@fuzz(examples=60)
@given(data=csv_files())
def test_csv(teacher, data):
    _stage(teacher, data, "set.csv")


@fuzz(examples=60)
@given(value=st.one_of(st.lists(problem, max_size=5), st.fixed_dictionaries({"problems": st.lists(problem, max_size=4), "title": cell}), json_value))  # fmt: skip
def test_json(teacher, value):
    _stage(teacher, json.dumps(value).encode(), "set.json")


@fuzz(examples=60)
@given(lines=st.lists(st.one_of(problem.map(json.dumps), cell), max_size=6))
def test_jsonl(teacher, lines):
    _stage(teacher, "\n".join(lines).encode("utf-8", "surrogatepass"), "set.jsonl")


gift_text = st.text(alphabet="{}=~#:\\/%$-> \nTFabc123.[html]<p>CATEGORY\t", max_size=120)


@fuzz(examples=80)
@given(text=st.one_of(gift_text, st.lists(gift_text, max_size=4).map("\n\n".join)))
def test_gift(teacher, text):
    _stage(teacher, text.encode(), "set.gift")


aiken_line = st.one_of(
    cell,
    st.builds(lambda letter, text: f"{letter}. {text}", st.sampled_from("ABCDabz"), cell),
    st.builds(lambda key: f"ANSWER: {key}", st.one_of(st.sampled_from("ABCDz"), cell)),
)


@fuzz(examples=80)
@given(lines=st.lists(aiken_line, max_size=10))
def test_aiken(teacher, lines):
    _stage(teacher, "\n".join(lines).encode("utf-8", "surrogatepass"), "set.aiken")


@fuzz(examples=60)
@given(data=st.binary(max_size=300), filename=st.sampled_from(["f.csv", "f.json", "f", "f.gift"]))
def test_any_bytes(teacher, data, filename):
    _stage(teacher, data, filename)


@fuzz(examples=60)
@given(
    pasted=st.one_of(hostile_text, gift_text, csv_files().map(lambda b: b.decode())),
    format=st.sampled_from(["auto", "csv", "json", "jsonl", "gift", "aiken", "\x00", "zip"]),
)
def test_pasted_text_on_the_upload_page(client, teacher, pasted, format):
    client.force_login(teacher)
    with server_time() as spent:
        response = client.post(
            reverse("problems:upload"),
            {"pasted": pasted, "format": format, "default_domain": "math", "target_set": "",
             "on_error": "skip"},
        )  # fmt: skip
    assert response.status_code < 500
    assert_bounded(spent, pasted[:200])
