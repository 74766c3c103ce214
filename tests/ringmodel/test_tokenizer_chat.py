"""ring-tiny's tokenizer, Ring's chat template, prompt building and the reasoning split."""

import json

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerFast

import ringmodel as rm


def test_round_trip_of_text_with_math_symbols_and_newlines(tokenizer):
    text = "Compute 12 × 3 ÷ 4 − 2² + 3³!\n  {x: [1, 2]} ~ 5°C, 3 µm · π ≈ 3.14\n\n\\boxed{7}"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text), "one id per character"
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids) == text


def test_unknown_characters_become_unk(tokenizer):
    ids = tokenizer("aé€b", add_special_tokens=False)["input_ids"]
    assert ids[1:3] == [tokenizer.unk_token_id] * 2 and len(ids) == 4


def test_control_tokens_are_single_ids_and_think_survives_skip_special(tokenizer):
    for token, expected_id in [
        ("<|endoftext|>", 0),
        ("<|unk|>", 1),
        ("<role>", 2),
        ("</role>", 3),
        ("<think>", 4),
        ("</think>", 5),
    ]:
        assert tokenizer(token, add_special_tokens=False)["input_ids"] == [expected_id]
    ids = tokenizer("<role>HUMAN</role>x<think>r</think>a<|endoftext|>", add_special_tokens=False)[
        "input_ids"
    ]
    assert tokenizer.decode(ids, skip_special_tokens=True) == "HUMANx<think>r</think>a"
    assert tokenizer.eos_token_id == tokenizer.pad_token_id == 0
    assert tokenizer.padding_side == "left"


def test_chat_template_renders_rings_format_exactly(tokenizer):
    messages = [
        {"role": "system", "content": "You are a tutor."},
        {"role": "user", "content": "1+1?"},
        {"role": "assistant", "content": "<think>1+1=2</think>\\boxed{2}"},
        {"role": "user", "content": "2+2?"},
    ]
    rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert rendered == (
        "<role>SYSTEM</role>You are a tutor.<role>HUMAN</role>1+1?"
        "<role>ASSISTANT</role><think>1+1=2</think>\\boxed{2}<|endoftext|>"
        "<role>HUMAN</role>2+2?<role>ASSISTANT</role>"
    )
    without_prompt = tokenizer.apply_chat_template(messages[:2], tokenize=False)
    assert without_prompt == "<role>SYSTEM</role>You are a tutor.<role>HUMAN</role>1+1?"


def test_saved_tokenizer_loads_with_auto_classes_and_keeps_template_in_config(tmp_path, tokenizer):
    rm.save_tokenizer(tokenizer, tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["chat_template"] == rm.RING_CHAT_TEMPLATE
    assert not (tmp_path / "chat_template.jinja").exists()
    text = "<role>HUMAN</role>3 × 4 = ?<role>ASSISTANT</role>"
    for loaded in (
        AutoTokenizer.from_pretrained(tmp_path),
        PreTrainedTokenizerFast.from_pretrained(tmp_path),
    ):
        assert (
            loaded(text, add_special_tokens=False)["input_ids"]
            == tokenizer(text, add_special_tokens=False)["input_ids"]
        )
        assert loaded.chat_template == rm.RING_CHAT_TEMPLATE
        assert loaded.eos_token == "<|endoftext|>"


def test_build_prompt_ids_appends_the_reasoning_suffix(tokenizer):
    ids = rm.build_prompt_ids(tokenizer, "What is 6 × 7?")
    assert tokenizer.decode(ids) == (
        "<role>HUMAN</role>What is 6 × 7?\n"
        "Please reason step by step, and put your final answer within \\boxed{}."
        "<role>ASSISTANT</role>"
    )
    plain = rm.build_prompt_ids(
        tokenizer, "Give a hint.", system="Be brief.", reasoning_suffix=False
    )
    assert tokenizer.decode(plain) == (
        "<role>SYSTEM</role>Be brief.<role>HUMAN</role>Give a hint.<role>ASSISTANT</role>"
    )
    assert rm.REASONING_SUFFIX.endswith("within \\boxed{}.")


@pytest.mark.parametrize(
    ("text", "reasoning", "answer", "finished"),
    [
        ("<think>3×4=12</think>\\boxed{12}", "3×4=12", "\\boxed{12}", True),
        ("3×4=12</think>\\boxed{12}", "3×4=12", "\\boxed{12}", True),  # <think> in the prompt
        ("<think>3×4=", "3×4=", "", False),
        ("<think>3×4=12</th", "3×4=12", "", False),  # partial closing tag held back
        ("<thi", "", "", False),
        ("", "", "", False),
        ("<think>a</think>", "a", "", True),
        ("<think>a</think>b</think>c", "a", "b</think>c", True),
    ],
)
def test_split_reasoning(text, reasoning, answer, finished):
    assert rm.split_reasoning(text) == rm.ReasoningSplit(reasoning, answer, finished)


def test_split_reasoning_only_grows_while_streaming():
    completion = (
        "<think>Step 1: 12 × 3 = 36.\nStep 2: 36 − 1 = 35.</think>The answer is \\boxed{35}."
    )
    previous = rm.split_reasoning("")
    for end in range(1, len(completion) + 1):
        current = rm.split_reasoning(completion[:end])
        assert current.reasoning.startswith(previous.reasoning)
        assert current.answer.startswith(previous.answer)
        assert current.finished_thinking >= previous.finished_thinking
        previous = current
    assert previous == rm.ReasoningSplit(
        "Step 1: 12 × 3 = 36.\nStep 2: 36 − 1 = 35.", "The answer is \\boxed{35}.", True
    )
