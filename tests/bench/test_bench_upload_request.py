"""Unit tests of bench/bench_upload_request.py's pure parts: the file it posts, the ABBA order of
each pair's runs, the per-pair ratios, the preview views it times and the part of the page where
its two preview sides must agree."""

import csv
import io

from bench.bench_upload_request import (
    MIB,
    PREVIEW_SIDES,
    SIDES,
    big_csv,
    item_table,
    pair_orders,
    paired_ratios,
    preview_views,
)


def test_the_big_file_has_its_rows_and_stays_under_its_size():
    data = big_csv(20_000, 5 * MIB)
    assert 4.9 * MIB < len(data) <= 5 * MIB
    rows = list(csv.reader(io.StringIO(data.decode())))
    assert rows[0] == ["statement", "answer", "solution"] and len(rows) == 20_001
    assert rows[8][:2] == ["What is 7 + 8? (problem 7)", "15"]
    assert rows[8][2].startswith("Add the two numbers")


def test_pairs_alternate_which_side_goes_first():
    assert SIDES == ("inline", "background")
    assert pair_orders(3) == [
        ("inline", "background"),
        ("background", "inline"),
        ("inline", "background"),
    ]


def test_paired_ratios_are_per_pair():
    pairs = [{"inline": 2.0, "background": 0.1}, {"inline": 1.5, "background": 0.0}]
    assert paired_ratios(pairs, "inline", "background") == [20.0]


def test_the_preview_file_has_an_error_every_tenth_row():
    data = big_csv(20_000, 5 * MIB, error_every=10)
    assert len(data) <= 5 * MIB
    rows = list(csv.reader(io.StringIO(data.decode())))[1:]
    assert len(rows) == 20_000 and sum(1 for row in rows if not row[0]) == 2_000
    assert rows[9][0] == "" and rows[9][1] == "19" and rows[8][0] == "What is 8 + 9? (problem 8)"


def test_the_preview_views_are_page_1_a_middle_page_and_the_errors_tab():
    assert PREVIEW_SIDES == ("list", "rows")
    assert preview_views(20_000) == [
        ("page 1", {}),
        ("page 200 of 400", {"page": "200"}),
        ("Errors tab", {"tab": "error"}),
    ]


def test_the_sides_are_compared_on_the_item_table_and_its_page_links():
    page = (
        '<form><input name="csrfmiddlewaretoken" value="abc"></form>'
        '<table class="table preview"><tr class="status-ready"><td>Line 2</td></tr></table>\n'
        '<nav class="pagination" aria-label="Pages">Page 1 of 400</nav>\n<footer>x</footer>'
    )
    assert item_table(page) == (
        '<table class="table preview"><tr class="status-ready"><td>Line 2</td></tr></table>\n'
        '<nav class="pagination" aria-label="Pages">Page 1 of 400</nav>'
    )
