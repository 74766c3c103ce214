"""Training throughput of ring-tiny's MoE: batched by expert vs a naive expert loop vs dense.

Measures tokens/s of forward + backward (next-token loss) on one batch, for
  * loop      — ringmodel's "loop" expert backend: assignments sorted by expert once, one SwiGLU
                per expert on a contiguous slice, one index_add_ back
                (ringmodel.moe.routed_experts_forward);
  * bmm       — ringmodel's "bmm" backend: the same sort, the expert weights stacked and all
                experts in three padded torch.bmm calls (every slice padded to the largest);
  * grouped   — ringmodel's "grouped" backend: the same with torch._grouped_mm (private torch
                API; where this torch cannot run it, the row is left out);
  * naive     — the loop Ring-lite's own remote code trains with: for every expert, a boolean mask
                over all token copies, gather, SwiGLU, scatter back;
  * dense     — the same architecture with every layer dense and the MLP as wide as the MoE layer's
                active experts + shared expert, i.e. the same ACTIVE parameter count;
plus one full training step (forward + backward + AdamW) of ring-tiny as shipped. All variants run
in this one process, interleaved (each round runs every variant once, in an order reversed every
other round), and ratios against the loop are the median over rounds of the within-round ratio.

Run:  .venv/bin/python -m bench.bench_moe [--batch 16] [--seq 256] [--repeats 7] [--threads N]
          [--experts 64 --top-k 6]   (Ring-lite's routing at ring-tiny's width)
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn

import ringmodel as rm
import ringmodel.moe as moe_module


def naive_routed_experts_forward(
    experts: Sequence[nn.Module],
    x_TD: torch.Tensor,
    topk_ids_TK: torch.Tensor,
    topk_weights_TK: torch.Tensor,
    backend: str = "loop",
) -> torch.Tensor:
    """Ring-lite's training-time loop: mask, gather and scatter once per expert."""
    top_k = topk_ids_TK.shape[1]
    x_ND = x_TD.repeat_interleave(top_k, dim=0)
    flat_ids_N = topk_ids_TK.reshape(-1)
    y_ND = torch.empty_like(x_ND)
    for e, expert in enumerate(experts):
        chosen_N = flat_ids_N == e
        y_ND[chosen_N] = expert(x_ND[chosen_N])
    y_TKD = y_ND.view(*topk_ids_TK.shape, -1).float() * topk_weights_TK.unsqueeze(-1)
    return y_TKD.sum(dim=1).to(x_TD.dtype)


@contextlib.contextmanager
def routed_experts_implementation(function: Callable) -> Iterator[None]:
    """Swap the function BailingMoeSparseBlock uses for its routed experts, for one measurement."""
    shipped = moe_module.routed_experts_forward
    moe_module.routed_experts_forward = function
    try:
        yield
    finally:
        moe_module.routed_experts_forward = shipped


def forward_backward(model: rm.BailingMoeForCausalLM, ids: torch.Tensor) -> None:
    model(ids, labels=ids, use_cache=False).loss.backward()
    model.zero_grad(set_to_none=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--experts", type=int, help="override ring-tiny's 8 routed experts")
    parser.add_argument("--top-k", type=int, help="override ring-tiny's top-2")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    overrides = {}
    if args.experts:
        overrides["num_experts"] = args.experts
    if args.top_k:
        overrides["num_experts_per_tok"] = args.top_k
    moe_config = rm.BailingMoeConfig.ring_tiny(**overrides)
    # Dense twin: every layer dense, MLP as wide as a token's active experts plus shared experts.
    dense_config = rm.BailingMoeConfig.ring_tiny(
        first_k_dense_replace=moe_config.num_hidden_layers,
        intermediate_size=moe_config.moe_intermediate_size
        * (moe_config.num_experts_per_tok + moe_config.num_shared_experts),
    )
    torch.manual_seed(0)
    moe_model = rm.BailingMoeForCausalLM(moe_config).train()
    dense_model = rm.BailingMoeForCausalLM(dense_config).train()
    optimizer = torch.optim.AdamW(moe_model.parameters(), lr=1e-4)
    ids = torch.randint(0, moe_model.config.vocab_size, (args.batch, args.seq))
    tokens = ids.numel()

    # The variants must compute the same function, or their speeds mean nothing.
    block = moe_model.model.layers[-1].mlp
    backends = ["loop", "bmm"]
    if moe_module.grouped_mm_works(torch.device("cpu"), torch.float32):
        backends.append("grouped")
    with torch.no_grad():
        x_TD = torch.randn(257, moe_model.config.hidden_size)
        weights_TK, ids_TK, _ = block.gate(x_TD)
        reference = moe_module.routed_experts_forward(block.experts, x_TD, ids_TK, weights_TK)
        others = [naive_routed_experts_forward(block.experts, x_TD, ids_TK, weights_TK)] + [
            moe_module.routed_experts_forward(block.experts, x_TD, ids_TK, weights_TK, backend=b)
            for b in backends[1:]
        ]
        for other in others:
            torch.testing.assert_close(other, reference, rtol=1e-4, atol=1e-6)

    def full_step() -> None:
        moe_model.set_expert_backend("auto")
        moe_model(ids, labels=ids, use_cache=False).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def with_backend(backend: str) -> Callable[[], None]:
        def run() -> None:
            moe_model.set_expert_backend(backend)
            forward_backward(moe_model, ids)

        return run

    def naive() -> None:
        moe_model.set_expert_backend("loop")
        with routed_experts_implementation(naive_routed_experts_forward):
            forward_backward(moe_model, ids)

    variants: dict[str, Callable[[], None]] = {
        f"{backend} backend": with_backend(backend) for backend in backends
    }
    variants["naive expert loop"] = naive
    variants["dense, same active"] = lambda: forward_backward(dense_model, ids)
    variants["ring-tiny full step"] = full_step
    timings: dict[str, list[float]] = {name: [] for name in variants}
    for run in variants.values():  # warm-up
        run()
    order = list(variants)
    for round_index in range(args.repeats):  # interleaved, so load changes hit every variant
        for name in order if round_index % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            variants[name]()
            timings[name].append(time.perf_counter() - start)

    total, active = rm.count_parameters(moe_model.config)
    dense_total, _ = rm.count_parameters(dense_config)
    print(
        f"ring-tiny, {moe_config.num_experts} experts top-{moe_config.num_experts_per_tok}: "
        f"{total / 1e6:.2f}M total / {active / 1e6:.2f}M active parameters; "
        f"dense twin {dense_total / 1e6:.2f}M. Batch {args.batch}x{args.seq} = {tokens} tokens, "
        f"{args.threads} thread(s), median of {args.repeats}."
    )
    rates = {name: tokens / statistics.median(t) for name, t in timings.items()}
    for name, rate in rates.items():
        label = "fwd+bwd+AdamW" if name == "ring-tiny full step" else "fwd+bwd"
        print(f"  {name:<22} {rate:>9.0f} tokens/s  ({label})")
    loop = timings["loop backend"]
    for name in [n for n in variants if n not in ("loop backend", "ring-tiny full step")]:
        ratios = [t / base for t, base in zip(timings[name], loop, strict=True)]
        print(
            f"  time {name} / loop : {statistics.median(ratios):.2f}x"
            f"  (rounds {min(ratios):.2f}-{max(ratios):.2f})"
        )
    print(
        f"  'auto' on this CPU runs: {moe_module.resolve_expert_backend('auto', torch.device('cpu'), torch.float32)}"
    )


if __name__ == "__main__":
    main()
