"""The choice of swap path (lora.choose_swap_path), reading and verifying a LoRA version's files,
and the engine's LoRA arguments."""

import dataclasses

import pytest

from worker.inference.config import EngineSettings, config_from_settings
from worker.inference.engine import Adapter, ModelSpec, lora_engine_args, lora_request
from worker.inference.lora import (
    AdapterRef,
    SwapPath,
    choose_swap_path,
    read_adapter_ref,
    resolve_checkpoint_path,
    verify_adapter,
)

from .lora_files import corrupt_adapter_weights, write_lora_version

BASE = ModelSpec(1, "ring-tiny", "/ckpt/ring-tiny")
TARGET = ModelSpec(7, "v7", "/ckpt/v7-merged")
ADAPTER = AdapterRef(path="/ckpt/v7-adapter", base="/ckpt/ring-tiny", rank=8)


def choose(target=TARGET, adapter=ADAPTER, *, lora=True, max_rank=16, base_path=BASE.path):
    return choose_swap_path(
        target=target,
        base=BASE,
        base_path=base_path,
        adapter=adapter,
        lora_enabled=lora,
        max_rank=max_rank,
    )


def test_an_adapter_on_the_running_base_is_hot_loaded():
    choice = choose()
    assert choice.path == SwapPath.HOT_LOAD and "rank-8" in choice.reason


def test_the_base_itself_is_a_switch_back_to_the_engine_with_lora_on_or_off():
    assert choose(BASE, None).path == SwapPath.BASE
    assert choose(BASE, None, lora=False).path == SwapPath.BASE


def test_a_full_checkpoint_goes_blue_green():
    choice = choose(adapter=None)
    assert choice.path == SwapPath.BLUE_GREEN and "no LoRA adapter" in choice.reason


def test_lora_off_goes_blue_green_with_the_merged_checkpoint():
    choice = choose(lora=False)
    assert choice.path == SwapPath.BLUE_GREEN and "INFERENCE_LORA=0" in choice.reason


def test_an_adapter_on_another_base_goes_blue_green():
    choice = choose(adapter=dataclasses.replace(ADAPTER, base="/ckpt/v3-merged"))
    assert choice.path == SwapPath.BLUE_GREEN
    assert "/ckpt/v3-merged" in choice.reason and "/ckpt/ring-tiny" in choice.reason


def test_a_rank_above_the_engines_limit_goes_blue_green():
    choice = choose(adapter=dataclasses.replace(ADAPTER, rank=32), max_rank=16)
    assert choice.path == SwapPath.BLUE_GREEN and "INFERENCE_MAX_LORA_RANK=16" in choice.reason
    assert choose(adapter=dataclasses.replace(ADAPTER, rank=16), max_rank=16).path == (
        SwapPath.HOT_LOAD
    )


def test_an_adapter_missing_on_this_host_goes_blue_green():
    missing = dataclasses.replace(ADAPTER, rank=0, problem="its adapter /x cannot be read")
    choice = choose(adapter=missing)
    assert choice.path == SwapPath.BLUE_GREEN and "cannot be read" in choice.reason


def test_the_same_path_under_another_registry_row_is_not_the_base():
    # Only the engine's own version is served without a new engine; a row registered again for
    # the same files goes the way it always went.
    again = ModelSpec(9, "ring-tiny again", BASE.path)
    assert choose(again, None).path == SwapPath.BLUE_GREEN


def test_the_manifests_are_read_with_paths_resolved(tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    merged = write_lora_version(tmp_path, "v2", base=str(base), rank=8)
    ref = read_adapter_ref(merged)
    assert ref is not None and not ref.problem
    assert ref.rank == 8 and ref.base == resolve_checkpoint_path(str(base))
    assert ref.path == str((tmp_path / "v2-adapter").resolve())
    verify_adapter(ref)


def test_a_checkpoint_that_names_no_adapter_is_a_full_one(tmp_path):
    (tmp_path / "manifest.json").write_text('{"format": "ringmodel-checkpoint/1"}')
    assert read_adapter_ref(str(tmp_path)) is None
    assert read_adapter_ref(str(tmp_path / "absent")) is None
    (tmp_path / "manifest.json").write_text("{not json")
    assert read_adapter_ref(str(tmp_path)) is None


def test_an_adapter_absent_from_this_host_is_named_as_the_reason(tmp_path):
    merged = write_lora_version(tmp_path, "v2", base=str(tmp_path))
    for child in (tmp_path / "v2-adapter").iterdir():
        child.unlink()
    (tmp_path / "v2-adapter").rmdir()
    ref = read_adapter_ref(merged)
    assert ref is not None and "cannot be read on this host" in ref.problem


def test_a_corrupt_adapter_fails_verification_naming_the_file(tmp_path):
    merged = write_lora_version(tmp_path, "v2", base=str(tmp_path))
    corrupt_adapter_weights(merged)
    ref = read_adapter_ref(merged)
    with pytest.raises(ValueError, match="adapter_model.safetensors is missing or does not match"):
        verify_adapter(ref)


def test_an_adapter_whose_manifest_names_another_base_fails_verification(tmp_path):
    other = tmp_path / "other-base"
    other.mkdir()
    merged = write_lora_version(tmp_path, "v2", base=str(other))
    ref = dataclasses.replace(read_adapter_ref(merged), base=str(tmp_path))
    with pytest.raises(ValueError, match="names base"):
        verify_adapter(ref)


def test_the_engine_gets_vllms_lora_arguments_only_with_lora_on():
    base = config_from_settings().engine
    assert lora_engine_args(base) == {} and not base.enable_lora  # the CPU default
    on = dataclasses.replace(base, enable_lora=True, max_lora_rank=32, max_loras=3)
    assert lora_engine_args(on) == {"enable_lora": True, "max_lora_rank": 32, "max_loras": 3}


def test_the_arguments_are_vllm_0_32s_own_names():
    from vllm.engine.arg_utils import AsyncEngineArgs

    on = dataclasses.replace(config_from_settings().engine, enable_lora=True)
    args = AsyncEngineArgs(model="m", **lora_engine_args(on))
    assert (args.enable_lora, args.max_lora_rank, args.max_loras) == (True, 16, 2)


def test_a_rank_vllm_does_not_offer_is_refused_at_configuration():
    base = config_from_settings().engine
    with pytest.raises(ValueError, match="INFERENCE_MAX_LORA_RANK must be one of"):
        dataclasses.replace(base, enable_lora=True, max_lora_rank=12)
    with pytest.raises(ValueError, match="INFERENCE_MAX_LORAS"):
        dataclasses.replace(base, enable_lora=True, max_loras=0)
    assert isinstance(dataclasses.replace(base, max_lora_rank=12), EngineSettings)  # LoRA off


def test_an_adapter_becomes_a_lora_request_with_a_unique_name_and_id():
    adapter = Adapter(spec=TARGET, path="/ckpt/v7-adapter", int_id=3)
    request = lora_request(adapter)
    assert (request.lora_name, request.lora_int_id, request.lora_path) == (
        "3:v7",
        3,
        "/ckpt/v7-adapter",
    )
