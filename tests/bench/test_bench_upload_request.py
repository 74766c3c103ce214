"""Unit tests of bench/bench_upload_request.py's pure parts: the file it posts, the ABBA order of
each pair's runs and the per-pair ratios."""

import csv
import io

from bench.bench_upload_request import MIB, SIDES, big_csv, pair_orders, paired_ratios


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
