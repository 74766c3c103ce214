"""Does vLLM serve a ring-tiny LoRA adapter (enable_lora + LoRARequest)? A probe, run by hand.

Builds a rank-8 adapter with non-zero weights on the shipped ring-tiny (attention only, and
attention + experts + shared experts), starts one vLLM engine with `enable_lora=True` on the base,
and compares the prompt log-probs of the fixed verification probe under the adapter (a
`LoRARequest`) with ringmodel's own log-probs of the merged model (`training.c3po.lora`). It
writes what happened — served and matching, served but wrong, or refused with vLLM's error — to
`--out` as JSON, so the answer lives in a file rather than in someone's memory.

Run:  .venv/bin/python bench/probe_vllm_lora.py --out runs/vllm-lora.json

`--hot-load` is the acceptance check of the inference worker's LoRA path on a GPU host (run it
before setting `INFERENCE_LORA=1`): through the worker's own `VllmEngine`, one engine on the base
with LoRA on loads the attention + experts adapter at run time (`add_adapter`, what a promotion
does) and answers the engine check's probe prompts under it; a second engine serves the merged
checkpoint (what the blue/green path loads). It compares the two engines' log-probs token by
token, and both with ringmodel's merged model (the worker's engine check), and exits 0 only when
all agree within `--tolerance`. Also records whether the LoRA engine still serves the base alone.

      .venv/bin/python bench/probe_vllm_lora.py --hot-load --dtype bfloat16 --tolerance 0.05 \
          --out runs/vllm-lora-hot-load.json
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

import ringmodel as rm  # noqa: E402
from training.c3po.lora import LoraSpec, apply_lora, merged_weights, save_adapter  # noqa: E402
from training.c3po.rollout import probe_ids  # noqa: E402


def make_adapter(base: Path, groups: tuple[str, ...], out: Path, seed: int) -> Path:
    model, _, _ = rm.load_checkpoint(base)
    spec = LoraSpec(rank=8, alpha=16, groups=groups)
    policy = apply_lora(model, spec)
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, parameter in policy.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0.0, 0.02)
    return save_adapter(policy, out, base_checkpoint=str(base), spec=spec)


def _error(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:2000]


async def _probe_all(engine: Any, prompts: list[list[int]], adapter: Any = None) -> list[Any]:
    from worker.inference.engine_check import PROBE_NEW_TOKENS

    tag = "adapter" if adapter is not None else "plain"
    return [
        await engine.probe(
            f"probe-{tag}-{index}", ids, max_tokens=PROBE_NEW_TOKENS, adapter=adapter
        )
        for index, ids in enumerate(prompts)
    ]


def max_logprob_gap(a: list[Any], b: list[Any]) -> float | None:
    """Largest |log p| difference over the probes' prompt and completion tokens, or None when the
    two engines chose different greedy tokens (the log-probs are then not of the same tokens)."""
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        if x.completion_ids != y.completion_ids:
            return None
        for p, q in zip(
            [*x.prompt_logprobs, *x.completion_logprobs],
            [*y.prompt_logprobs, *y.completion_logprobs],
            strict=True,
        ):
            worst = max(worst, abs(p - q))
    return worst


async def hot_load_check(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The worker's hot-load path against its blue/green path on one adapter (see the module's
    docstring); the result's `ok` says whether this host may serve adapters by hot-load."""
    from training.c3po.lora import save_merged_checkpoint
    from worker.inference.config import EngineSettings
    from worker.inference.engine import Adapter, ModelSpec, VllmEngine
    from worker.inference.engine_check import (
        compare_with_reference,
        load_reference,
        probe_prompt_ids,
    )

    adapter_dir = make_adapter(
        args.base, ("attention", "dense_mlp", "experts", "shared_experts"), work / "adapter", 2
    )
    merged = save_merged_checkpoint(
        base_checkpoint=args.base, adapter_dir=adapter_dir, path=work / "merged"
    )
    settings = EngineSettings(
        dtype=args.dtype,
        max_model_len=1024,
        max_num_seqs=4,
        kv_cache_gib=1,
        enforce_eager=True,
        seed=0,
        stream_interval=1,
        enable_lora=True,
        max_lora_rank=8,
        max_loras=2,
    )
    reference = load_reference(str(merged))
    prompts = probe_prompt_ids(reference.tokenizer)
    result: dict[str, Any] = {"mode": "hot-load", "dtype": args.dtype, "ok": False}
    version = ModelSpec(None, "probe-adapter", str(merged))
    adapter = Adapter(spec=version, path=str(adapter_dir), int_id=1)
    lora_engine = None
    try:
        lora_engine = await VllmEngine.start(ModelSpec(None, "base", str(args.base)), settings)
        result["lora_engine"] = "started with enable_lora=True"
        try:
            await _probe_all(lora_engine, prompts)
            result["base_alone_on_lora_engine"] = "served"
        except Exception as error:
            result["base_alone_on_lora_engine"] = f"refused: {_error(error)}"
        await lora_engine.add_adapter(adapter)
        hot = await _probe_all(lora_engine, prompts, adapter)
    except Exception as error:
        result["hot_load"] = f"refused: {_error(error)}"
        result["traceback"] = traceback.format_exc()[-4000:]
        return result
    finally:
        if lora_engine is not None:
            await lora_engine.shutdown()
    result["hot_load"] = "served"
    merged_engine = await VllmEngine.start(
        version, dataclasses.replace(settings, enable_lora=False)
    )
    try:
        full = await _probe_all(merged_engine, prompts)
    finally:
        await merged_engine.shutdown()
    hot_report = compare_with_reference(reference, hot, tolerance=args.tolerance)
    full_report = compare_with_reference(reference, full, tolerance=args.tolerance)
    between = max_logprob_gap(hot, full)
    result.update(
        {
            "hot_load_vs_ringmodel_merged": hot_report.summary(),
            "merged_engine_vs_ringmodel_merged": full_report.summary(),
            "max_abs_diff_hot_load_vs_merged_engine": between,
            "tokens_compared": hot_report.tokens_compared,
            "ok": hot_report.ok
            and full_report.ok
            and between is not None
            and between <= args.tolerance,
        }
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, default=REPO_ROOT / "checkpoints" / "ring-tiny")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--hot-load",
        action="store_true",
        help="the worker's hot-load path against a merged engine (the GPU host's check)",
    )
    parser.add_argument("--dtype", default="float32", help="engine dtype (bfloat16 on GPUs)")
    parser.add_argument("--tolerance", type=float, default=0.05, help="largest |log p| gap")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    work = Path(tempfile.mkdtemp(prefix="vllm-lora-probe-"))
    if args.hot_load:
        result = asyncio.run(hot_load_check(args, work))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
        print(json.dumps({k: v for k, v in result.items() if k != "traceback"}, indent=2))
        return 0 if result["ok"] else 1
    tokenizer = rm.build_tokenizer()
    prompt, completion = probe_ids(tokenizer)
    results: dict[str, object] = {"base": str(args.base), "cases": {}}
    adapters = {
        "attention": make_adapter(args.base, ("attention",), work / "attention", 1),
        "attention+experts": make_adapter(
            args.base, ("attention", "dense_mlp", "experts", "shared_experts"), work / "all", 2
        ),
    }
    try:
        from vllm import LLM, SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.lora.request import LoRARequest

        llm = LLM(
            model=str(args.base),
            tokenizer=str(args.base),
            seed=0,
            dtype="float32",
            enforce_eager=True,
            enable_chunked_prefill=False,
            enable_lora=True,
            max_lora_rank=8,
            max_loras=1,
        )
    except Exception as error:
        results["engine"] = f"refused: {type(error).__name__}: {error}"
        results["traceback"] = traceback.format_exc()[-4000:]
        args.out.write_text(json.dumps(results, indent=2))
        print(results["engine"])
        return 1
    results["engine"] = "started with enable_lora=True"
    params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
    base_model, _, _ = rm.load_checkpoint(args.base)
    base_state = {k: v.clone() for k, v in base_model.state_dict().items()}
    for index, (name, adapter) in enumerate(adapters.items(), start=1):
        case: dict[str, object] = {}
        try:
            out = llm.generate(
                [TokensPrompt(prompt_token_ids=prompt + completion)],
                params,
                lora_request=LoRARequest(name, index, str(adapter)),
                use_tqdm=False,
            )[0]
            served = torch.tensor(
                [
                    e[t].logprob
                    for e, t in zip(out.prompt_logprobs[len(prompt) :], completion, strict=True)
                ]
            )
            base_model.load_state_dict(merged_weights(base_state, adapter))
            expected = rm.sequence_logprobs(base_model, prompt, completion).float()
            base_model.load_state_dict(base_state)
            plain = rm.sequence_logprobs(base_model, prompt, completion).float()
            case = {
                "served": True,
                "max_abs_diff_vs_merged": float((served - expected).abs().max()),
                "max_abs_diff_merged_vs_base": float((expected - plain).abs().max()),
            }
        except Exception as error:
            case = {"served": False, "error": f"{type(error).__name__}: {error}"[:2000]}
        results["cases"][name] = case
        print(name, case)
    args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
