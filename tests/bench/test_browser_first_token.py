"""Unit tests of bench/browser_first_token.py's pure parts: the ABBA order of each pair's runs and
the per-pair differences between the two page flows."""

from bench.browser_first_token import FLOWS, pair_orders, paired_differences


def test_pairs_alternate_which_flow_goes_first():
    assert pair_orders(4) == [
        ("inline", "redirect"),
        ("redirect", "inline"),
        ("inline", "redirect"),
        ("redirect", "inline"),
    ]
    assert FLOWS == ("inline", "redirect")
    assert pair_orders(2, ("redirect",)) == [("redirect",), ("redirect",)]


def test_paired_differences_skip_a_pair_that_lost_a_run():
    pairs = [
        {"inline": 60.0, "redirect": 140.0},
        {"redirect": 130.0},  # its inline run gave no done event
        {"inline": 75.0, "redirect": 95.0},
    ]
    assert paired_differences(pairs, "inline", "redirect") == [80.0, 20.0]
