"""Reworded problem statements: enough templates per topic, a clean train/unseen split of the
templates, the same problem (answer, solution, held-out split) in every wording, and text the
char-level tokenizer can read."""

from __future__ import annotations

import random

import pytest

from ringmodel import build_tokenizer
from training.problems import GENERATORS, LEVELS, eval_set, is_held_out, training_problems
from training.problems.phrasings import (
    FORMS,
    TEMPLATES,
    match_form,
    phrased_training_problems,
    rephrase,
    split_of,
    template_counts,
    templates_for,
    unseen_phrasing_set,
)

TOPICS = sorted({topic for _, topic in GENERATORS})


def test_every_topic_has_twenty_templates_and_unseen_ones():
    counts = template_counts()
    assert set(counts) == set(TOPICS)
    for topic, tally in counts.items():
        assert tally["train"] + tally["unseen"] >= 20, topic
        assert tally["unseen"] >= 5, topic


def test_train_and_unseen_templates_are_disjoint_in_every_form():
    for forms in FORMS.values():
        for form in forms:
            train = set(templates_for(form.templates, "train"))
            unseen = set(templates_for(form.templates, "unseen"))
            assert train and unseen and not train & unseen
            assert train | unseen == set(form.templates)


@pytest.mark.parametrize(("domain", "topic"), sorted(GENERATORS))
def test_rephrase_keeps_the_problem_and_reads_every_form(domain, topic):
    rng = random.Random(topic)
    for level in LEVELS:
        for _ in range(40):
            problem = GENERATORS[(domain, topic)](level, rng)
            for split in ("train", "unseen"):
                reworded = rephrase(problem, rng, split=split)
                assert reworded.answer == problem.answer
                assert reworded.steps == problem.steps and reworded.final == problem.final
                # The held-out split is the generator's: no wording moves a problem across it.
                assert reworded.split_key == problem.split_key
                assert is_held_out(reworded) == is_held_out(problem)
                if problem.options:
                    assert reworded.statement.endswith(problem.statement.split("\n", 1)[1])


def test_rephrased_text_is_all_known_characters():
    tokenizer = build_tokenizer()
    rng = random.Random(1)
    for index, problem in enumerate(training_problems(4)):
        if index == 1500:
            break
        text = rephrase(problem, rng).statement
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.unk_token_id not in ids, text


def test_wordings_vary_operators_latex_units_and_case():
    rng = random.Random(3)
    stream = training_problems(9)
    texts = [rephrase(next(stream), rng).statement for _ in range(3000)]
    joined = "\n".join(texts)
    for needle in ("×", "\\times", "$", "\\(", "\\frac{", "\\%", "m/s²", "metres per second"):
        assert needle in joined, needle
    assert any(t == t.lower() and any(c.isalpha() for c in t) for t in texts)
    assert any(not t.rstrip().endswith((".", "?", "!")) for t in texts)


def test_training_stream_mixes_wordings_and_uses_no_unseen_template():
    stream = phrased_training_problems(5, natural_share=0.5)
    problems = [next(stream) for _ in range(400)]
    generator_worded = sum(p.statement == p.split_text or not p.split_text for p in problems)
    assert 120 < generator_worded < 280
    assert not any(is_held_out(p) for p in problems)


def test_unseen_set_pairs_with_the_held_out_set():
    unseen = unseen_phrasing_set("math", 2, 20, seed=0)
    generator = eval_set("math", 2, 20, seed=0)
    assert [p.split_key for p in unseen] == [p.split_key for p in generator]
    assert [p.answer for p in unseen] == [p.answer for p in generator]
    assert sum(u.statement != g.statement for u, g in zip(unseen, generator, strict=True)) >= 19


def test_an_unknown_statement_is_refused_clearly():
    with pytest.raises(ValueError, match="no phrasing form"):
        match_form("addition", "What is the capital of France?")


def test_split_is_by_position_in_the_form():
    form = TEMPLATES["linear_equations"]
    assert split_of(form, form[1]) == "unseen" and split_of(form, form[0]) == "train"
