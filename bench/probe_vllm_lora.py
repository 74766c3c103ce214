"""Does vLLM serve a ring-tiny LoRA adapter (enable_lora + LoRARequest)? A probe, run by hand.

Builds a rank-8 adapter with non-zero weights on the shipped ring-tiny (attention only, and
attention + experts + shared experts), starts one vLLM engine with `enable_lora=True` on the base,
and compares the prompt log-probs of the fixed verification probe under the adapter (a
`LoRARequest`) with ringmodel's own log-probs of the merged model (`training.c3po.lora`). It
writes what happened — served and matching, served but wrong, or refused with vLLM's error — to
`--out` as JSON, so the answer lives in a file rather than in someone's memory.

Run:  .venv/bin/python bench/probe_vllm_lora.py --out runs/vllm-lora.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import traceback
from pathlib import Path

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, default=REPO_ROOT / "checkpoints" / "ring-tiny")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    work = Path(tempfile.mkdtemp(prefix="vllm-lora-probe-"))
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
