"""ring-tiny's character-level tokenizer and Ring's chat template, as a Hugging Face fast tokenizer.

One id per character: newline, printable ASCII and a few math symbols; anything else becomes
``<|unk|>``. Ring's control strings are single ids: ``<|endoftext|>`` (end of sequence and padding),
``<role>``, ``</role>`` (skipped when decoding with ``skip_special_tokens``), and ``<think>``,
``</think>`` (kept when decoding, because the reasoning/answer split needs them in the text).
It is a plain ``tokenizers`` WordLevel model, so ``AutoTokenizer``, ``PreTrainedTokenizerFast`` and
vLLM load ``tokenizer.json`` + ``tokenizer_config.json`` with no custom code.

The chat template is inclusionAI's Ring/Ling template (``<role>SYSTEM</role>…<role>HUMAN</role>…
<role>ASSISTANT</role>``, role ``user`` written HUMAN) with one addition: a finished assistant turn is
closed with the eos token, so that SFT teaches the model to stop. A generation prompt renders
exactly as Ring-lite's.
"""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

EOS_TOKEN = "<|endoftext|>"
UNK_TOKEN = "<|unk|>"
ROLE_OPEN, ROLE_CLOSE = "<role>", "</role>"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
# Order fixes the ids: <|endoftext|> = 0 (also padding), <|unk|> = 1, ...
SPECIAL_TOKENS = (EOS_TOKEN, UNK_TOKEN, ROLE_OPEN, ROLE_CLOSE)
REASONING_TOKENS = (THINK_OPEN, THINK_CLOSE)
MATH_SYMBOLS = "×÷−²³°µ·√π≤≥≠≈±→"
CHARACTERS = "\n" + "".join(chr(code) for code in range(32, 127)) + MATH_SYMBOLS

RING_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% set role = message['role'] | lower %}"
    "{% if role == 'user' %}{% set role = 'HUMAN' %}{% endif %}"
    "{% set role = role | upper %}"
    "{{ '<role>' + role + '</role>' + message['content'] }}"
    "{% if role == 'ASSISTANT' %}{{ eos_token }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<role>ASSISTANT</role>' }}{% endif %}"
)


def build_tokenizer(model_max_length: int = 1024) -> PreTrainedTokenizerFast:
    """ring-tiny's tokenizer (vocabulary of ``len(SPECIAL_TOKENS + REASONING_TOKENS) + len(CHARACTERS)``)."""
    tokens = [*SPECIAL_TOKENS, *REASONING_TOKENS, *CHARACTERS]
    assert len(set(tokens)) == len(tokens), "duplicate token"
    backend = Tokenizer(
        models.WordLevel(vocab={t: i for i, t in enumerate(tokens)}, unk_token=UNK_TOKEN)
    )
    # Every code point is its own pre-token ([\s\S] also matches newlines, "." would not).
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    backend.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS]
    )
    backend.add_tokens([AddedToken(t, special=False, normalized=False) for t in REASONING_TOKENS])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=EOS_TOKEN,
        pad_token=EOS_TOKEN,
        unk_token=UNK_TOKEN,
        chat_template=RING_CHAT_TEMPLATE,
        padding_side="left",
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
    )


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, directory: str | Path) -> None:
    """Write ``tokenizer.json`` and ``tokenizer_config.json`` (chat template inside it).

    The template goes into tokenizer_config.json, where Ring-lite keeps it, rather than the separate
    chat_template.jinja transformers 5 writes by default; the class is recorded by its portable name
    so older transformers (e.g. on a GPU host) load it too.
    """
    directory = Path(directory)
    tokenizer.save_pretrained(directory, save_jinja_files=False)
    config_path = directory / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
