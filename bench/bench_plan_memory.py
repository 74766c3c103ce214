"""training/plan.py's predicted peak memory against the measured peak of a real C3PO update.

A CPU has no `torch.cuda.max_memory_allocated`, so `LiveTensorBytes` measures the same quantity:
a TorchDispatchMode that sees every tensor an op creates, counts its storage once while it is
alive (a weakref finalizer subtracts it when the storage dies) and records the peak. Parameters,
gradients and optimiser state that exist before the measured region are registered up front.

The measured step is what the trainer runs: `training.c3po.update.c3po_update` on one micro-batch
of synthetic rollouts (prompt + responses of mixed length, right-padded), AdamW in steady state
(a first update creates its state, the second is measured), for ring-tiny as configured
(fp32 on this CPU) and, with `--lora`, for its LoRA variant.

Run:  .venv/bin/python bench/bench_plan_memory.py [--responses 16] [--prompt 60]
          [--response 640] [--lora]
"""

from __future__ import annotations

import argparse
import json
import sys
import weakref
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch.utils._pytree import tree_flatten  # noqa: E402

import ringmodel as rm  # noqa: E402
from training import plan  # noqa: E402


class LiveTensorBytes(TorchDispatchMode):
    """Peak bytes of live tensor storage while the mode is active (plus what `register` adds)."""

    def __init__(self) -> None:
        super().__init__()
        self._live: dict[int, int] = {}
        self.current = 0
        self.peak = 0

    def register(self, tensor: Any) -> None:
        if not isinstance(tensor, torch.Tensor) or tensor.device.type == "meta":
            return
        storage = tensor.untyped_storage()
        key = storage._cdata
        if key in self._live:
            return
        size = storage.nbytes()
        self._live[key] = size
        self.current += size
        self.peak = max(self.peak, self.current)
        weakref.finalize(storage, self._free, key)

    def _free(self, key: int) -> None:
        self.current -= self._live.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            self.register(tensor)
        return out


def synthetic_selection(
    *, responses: int, prompt: int, response: int, vocab: int, seed: int
) -> list[Any]:
    """`responses` rollouts (groups of 4) whose lengths run from half to all of `response`."""
    from training.c3po.rollout_buffer import Rollout, SelectedRollout

    generator = torch.Generator().manual_seed(seed)
    selected = []
    for index in range(responses):
        length = (
            response
            if index == 0
            else response // 2 + int(torch.randint(0, response // 2 + 1, (1,), generator=generator))
        )
        rollout = Rollout(
            problem_id=str(index // 4),
            group_id=index // 4,
            prompt_ids=torch.randint(1, vocab, (prompt,), generator=generator).tolist(),
            response_ids=torch.randint(1, vocab, (length,), generator=generator).tolist(),
            reward=float(index % 2),
            advantage=1.0 if index % 2 else -1.0,
            finished=True,
            old_logp_T=torch.empty(0),
            ref_logp_T=torch.zeros(length),
            sampled_at_step=0,
        )
        selected.append(SelectedRollout(rollout, length))
    return selected


def measure_update_peak(
    config: rm.BailingMoeConfig,
    *,
    responses: int,
    prompt: int,
    response: int,
    lora_rank: int | None = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> dict[str, Any]:
    """Measured and predicted peak bytes of one steady-state C3PO update (one micro-batch)."""
    from training.c3po.config import C3POConfig
    from training.c3po.update import c3po_update

    torch.manual_seed(seed)
    model = rm.BailingMoeForCausalLM(config).to(dtype)
    policy: Any = model
    if lora_rank is not None:
        from training.c3po.lora import LoraSpec, apply_lora

        policy = apply_lora(model, LoraSpec(rank=lora_rank, alpha=2 * lora_rank))
    trainable = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-5)
    selected = synthetic_selection(
        responses=responses, prompt=prompt, response=response, vocab=config.vocab_size, seed=seed
    )
    c3po = C3POConfig.ring_tiny(micro_batch_size=responses, budget_tokens=10**9)

    def update() -> dict[str, float]:
        return c3po_update(
            policy=policy,
            optimizer=optimizer,
            selected=selected,
            config=c3po,
            step=0,
            pad_token_id=0,
        )

    update()  # creates AdamW's state
    tracker = LiveTensorBytes()
    for parameter in policy.parameters():
        tracker.register(parameter)
    for state in optimizer.state.values():
        for value in state.values():
            tracker.register(value)
    before = tracker.current
    with tracker:
        update()
    dtype_bytes = next(model.parameters()).element_size()
    predicted = plan.measured_step_memory(
        config,
        mode="full" if lora_rank is None else "lora",
        lora_rank=lora_rank or 16,
        dtype_bytes=dtype_bytes,
        batch=responses,
        seq=prompt + response,
        response_tokens=response,
        optimizer_states=True,
    )
    return {
        "config": "ring-tiny" + (f" LoRA rank {lora_rank}" if lora_rank else ""),
        "responses": responses,
        "prompt": prompt,
        "response": response,
        "registered_before_bytes": before,
        "measured_peak_bytes": tracker.peak,
        "predicted_bytes": predicted["total"],
        "predicted_parts": predicted,
        "ratio": predicted["total"] / tracker.peak,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responses", type=int, default=16)
    parser.add_argument("--prompt", type=int, default=60)
    parser.add_argument("--response", type=int, default=640)
    parser.add_argument("--lora", type=int, default=None, metavar="RANK")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="write the result as JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = measure_update_peak(
        rm.BailingMoeConfig.ring_tiny(),
        responses=args.responses,
        prompt=args.prompt,
        response=args.response,
        lora_rank=args.lora,
    )
    mib = 2**20
    print(
        f"{result['config']}: {args.responses} responses × ({args.prompt} + up to "
        f"{args.response}) tokens: measured peak {result['measured_peak_bytes'] / mib:.1f} MiB, "
        f"plan {result['predicted_bytes'] / mib:.1f} MiB, plan / measured {result['ratio']:.3f}"
    )
    for name, value in result["predicted_parts"].items():
        print(f"  plan {name}: {value / mib:.1f} MiB")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
