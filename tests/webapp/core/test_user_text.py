"""The one normalisation of user text: explicit bidirectional controls are removed (they reorder
how a text shows without changing what it holds, "Trojan Source"), everything else is kept, and a
text of invisible characters only is blank."""

import pytest

from webapp.core.user_text import (
    BIDI_CONTROLS,
    bidi_controls_in,
    is_blank,
    normalise_user_text,
    remove_bidi_controls,
    without_bidi_controls,
)


@pytest.mark.parametrize("control", list(BIDI_CONTROLS), ids=lambda c: f"U+{ord(c):04X}")
def test_every_embedding_override_and_isolate_control_is_removed(control):
    text = f"x = {control}21{control} + 1"
    assert bidi_controls_in(text) == {control}
    assert remove_bidi_controls(text) == "x = 21 + 1"


def test_the_spoofed_statement_keeps_what_it_holds_in_the_order_it_is_read():
    # Shown as "x = 12" by a browser; the model and the answer checker read "x = 21".
    spoofed = "Solve for x: x = \u202e21\u202c"
    assert normalise_user_text(spoofed) == "Solve for x: x = 21"


@pytest.mark.parametrize(
    "text",
    [
        "ما هو ناتج 12 + 9؟",  # Arabic with digits
        "כמה זה 7 × 8?",  # Hebrew
        "x \u200e= 5",  # LEFT-TO-RIGHT MARK
        "\u200fשלום 5",  # RIGHT-TO-LEFT MARK
        "٣ \u061c+ ٤",  # ARABIC LETTER MARK
        "caf\u00e9 \u200d\U0001f469\u200d\U0001f52c",  # joiners of an emoji sequence
    ],
    ids=["arabic", "hebrew", "lrm", "rlm", "alm", "zwj"],
)
def test_right_to_left_text_and_direction_marks_are_kept(text):
    assert bidi_controls_in(text) == set()
    assert remove_bidi_controls(text) is text
    assert normalise_user_text(f"  {text}  ") == text


def test_white_space_is_stripped_after_the_controls_are_removed():
    assert normalise_user_text(" \u202e 5 \u202c ") == "5"
    assert normalise_user_text("\u2067\u2069") == ""


@pytest.mark.parametrize(
    "text, blank",
    [("", True), ("\u200b\u200e", True), ("\u202e", True), (" \u0301", True), ("5", False)],
)
def test_blank_means_nothing_shows(text, blank):
    assert is_blank(text) is blank


def test_a_list_of_texts_loses_the_controls_and_other_values_are_kept():
    assert without_bidi_controls(["\u202e12", "21", 3, None]) == ["12", "21", 3, None]
    assert without_bidi_controls(7) == 7
