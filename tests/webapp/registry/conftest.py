"""Fixtures of the registry tests: a tiny random Bailing MoE checkpoint on disk, and the
hyper-parameters of a job small enough to run in seconds on two CPU cores."""

from pathlib import Path

import pytest

TINY_JOB_HYPERPARAMETERS = {
    "steps": 2,
    "checkpoint_every": 1,
    "curation_problems": 0,
    "prompts_per_step": 2,
    "group_size": 2,
    "max_response_tokens": 12,
    "budget_tokens": 20,
    "micro_batch_size": 4,
    "warmup_steps": 1,
    "eval_per_level": 1,
    "eval_max_new_tokens": 24,
}


def write_tiny_checkpoint(path: Path, *, seed: int = 0) -> Path:
    """A random ring-tiny-shaped model (fewer layers, short context) saved like a real one."""
    import torch

    from ringmodel import BailingMoeConfig, BailingMoeForCausalLM, build_tokenizer, save_checkpoint

    torch.manual_seed(seed)
    config = BailingMoeConfig.ring_tiny(num_hidden_layers=2, max_position_embeddings=288)
    return save_checkpoint(BailingMoeForCausalLM(config), build_tokenizer(), path)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "tiny-base")
