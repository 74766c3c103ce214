"""Data-parallel C3PO on torch.distributed: the process group, FSDP2 sharding and full checkpoints.

The trainer runs the same code at every world size; what differs is its `Communicator`:

* `SingleProcess` — one process, every reduction the identity (the CPU default).
* `DistributedContext` — one rank of a torchrun process group (NCCL on CUDA, gloo on CPU). The
  policy (and, in full fine-tuning, the frozen reference) is sharded with FSDP2 `fully_shard`,
  one unit per decoder layer plus the root, as torchtitan does. FSDP2 works on CPU with gloo in
  this torch, so the CPU tests exercise the same sharding as a GPU host.

How C3PO's global quantities stay global (docs/c3po.md, "Distributed training"):
- rollouts: every rank draws the same L prompts, samples its contiguous share of the L×K
  responses, and all-gathers the sampled tokens and rewards, so every rank holds the same queue
  and computes advantages on complete groups even when a group's responses were sampled on
  different ranks; each response is "owned" by the rank that sampled it, which alone computes its
  log-probs and trains on it;
- selection: every rank runs the same `RolloutBuffer.take(Φ)` over the same global queue, so the
  cut falls at exactly Φ tokens globally, whichever rank's response it lands in;
- loss: each rank divides by the same Φ and FSDP2's reduce-scatter SUMS (divide factor 1), so the
  gradient is that of the whole update as one batch;
- forward passes: sharded layers all-gather in every forward, so a rank with fewer micro-batches
  runs zero-weighted dummy passes to keep the collectives in step (training/c3po/update.py).
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import torch
import torch.distributed as dist
from torch import nn


class Communicator(Protocol):
    """What the trainer and the update need from the process group."""

    world_size: int
    rank: int

    @property
    def is_main(self) -> bool: ...

    def sum_floats(self, values: Sequence[float]) -> list[float]: ...

    def max_int(self, value: int) -> int: ...

    def all_gather_object(self, obj: Any) -> list[Any]: ...

    def broadcast_object(self, obj: Any) -> Any: ...

    def barrier(self) -> None: ...

    def close(self) -> None: ...


class SingleProcess:
    """The communicator of one process: every reduction is the identity."""

    world_size = 1
    rank = 0
    local_rank = 0

    @property
    def is_main(self) -> bool:
        return True

    def sum_floats(self, values: Sequence[float]) -> list[float]:
        return [float(v) for v in values]

    def max_int(self, value: int) -> int:
        return value

    def all_gather_object(self, obj: Any) -> list[Any]:
        return [obj]

    def broadcast_object(self, obj: Any) -> Any:
        return obj

    def barrier(self) -> None:
        return None

    def close(self) -> None:
        return None


class DistributedContext:
    """This process's rank in an initialised default process group."""

    def __init__(self, *, device: torch.device) -> None:
        assert dist.is_initialized(), "init the process group first (init_from_environment)"
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.local_rank = int(os.environ.get("LOCAL_RANK", self.rank))
        self.device = device
        # Reductions of Python numbers travel on the backend's device (NCCL needs CUDA tensors).
        self._reduce_device = device if dist.get_backend() == "nccl" else torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def sum_floats(self, values: Sequence[float]) -> list[float]:
        tensor = torch.tensor(list(values), dtype=torch.float64, device=self._reduce_device)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor.tolist()

    def max_int(self, value: int) -> int:
        tensor = torch.tensor([value], dtype=torch.int64, device=self._reduce_device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return int(tensor.item())

    def all_gather_object(self, obj: Any) -> list[Any]:
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj: Any) -> Any:
        box = [obj if self.rank == 0 else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        dist.barrier()

    def close(self) -> None:
        """Leave the group. A gloo process that exits with its group still alive can abort in
        C++ teardown ("terminate called without an active exception") after its work is done."""
        if dist.is_initialized():
            dist.destroy_process_group()


def init_from_environment(*, timeout_s: float = 1800.0) -> SingleProcess | DistributedContext:
    """The communicator torchrun's environment describes (WORLD_SIZE, RANK, MASTER_ADDR ...).

    Without torchrun (no WORLD_SIZE or WORLD_SIZE=1) this is the single process. On CUDA hosts
    each rank takes the GPU of its LOCAL_RANK and NCCL; elsewhere gloo on the CPU.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SingleProcess()
    if torch.cuda.is_available():
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        device, backend = torch.device("cuda", local_rank), "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    return DistributedContext(device=device)


def shard_bounds(count: int, world_size: int, rank: int) -> tuple[int, int]:
    """[start, end) of `rank`'s contiguous share of `count` items (the first ranks take one more
    when it does not divide)."""
    base, extra = divmod(count, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def owner_of(index: int, count: int, world_size: int) -> int:
    """The rank whose `shard_bounds` contain `index`."""
    for rank in range(world_size):
        start, end = shard_bounds(count, world_size, rank)
        if start <= index < end:
            return rank
    raise IndexError(index)


def is_sharded(model: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return any(isinstance(m, FSDPModule) for m in model.modules())


def shard_model(model: nn.Module, *, mixed_precision: bool = False) -> nn.Module:
    """FSDP2: one `fully_shard` unit per decoder layer, then the root (embeddings, final norm,
    lm_head), as torchtitan shards its transformers. Gradients are SUMMED over ranks (divide
    factor 1), because every rank's loss is already divided by the global Φ.

    `mixed_precision` (CUDA): bf16 compute with fp32 sharded parameters and fp32 reduction.
    """
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    from training.c3po.activation_checkpointing import decoder_layers

    kwargs: dict[str, Any] = {}
    if mixed_precision:
        kwargs["mp_policy"] = MixedPrecisionPolicy(
            param_dtype=torch.bfloat16, reduce_dtype=torch.float32
        )
    for layer in decoder_layers(model):
        fully_shard(layer, **kwargs)
    fully_shard(model, **kwargs)
    for module in model.modules():
        if hasattr(module, "set_gradient_divide_factor"):
            module.set_gradient_divide_factor(1.0)
            # A plain SUM collective (gloo has no pre-multiplied sum; with factor 1 it is exact).
            module.set_force_sum_reduction_for_comms(True)
    return model


@contextlib.contextmanager
def unsharded(model: nn.Module) -> Iterator[nn.Module]:
    """Every FSDP unit all-gathered and kept so for the block: a rank may then run any number of
    forwards on its own — what sampling needs, since each rank's sequences end at different
    steps. Outside FSDP this does nothing."""
    from torch.distributed.fsdp import FSDPModule

    units = [m for m in model.modules() if isinstance(m, FSDPModule)]
    if not units:
        yield model
        return
    for unit in units:
        unit.set_reshard_after_forward(False)
        unit.unshard()
    try:
        yield model
    finally:
        for unit in units:
            unit.reshard()
            unit.set_reshard_after_forward(True)


def full_model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The whole (unsharded) state dict on the CPU, keyed by parameter name. Collective under
    FSDP (every rank must call it); in a process group only rank 0 receives it (others: {})."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(
        model, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
    )


def full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimiser's state keyed by parameter NAME (not position), unsharded: the same format
    at every world size, so a run checkpointed on N ranks resumes on M. Collective like
    `full_model_state`."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(
        model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
    )


def load_full_state(
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    model_state: dict[str, torch.Tensor] | None,
    optimizer_state: dict[str, Any] | None,
    *,
    strict: bool = True,
) -> None:
    """Load full (unsharded) states into a plain or FSDP-sharded model and its optimiser; every
    rank passes the full states. `strict=False` loads a subset (a LoRA adapter's tensors)."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    options = StateDictOptions(full_state_dict=True, strict=strict)
    if model_state is not None:
        set_model_state_dict(model, model_state, options=options)
    if optimizer is not None and optimizer_state is not None:
        tuples = [
            {k for k, v in group.items() if isinstance(v, tuple)}
            for group in optimizer.param_groups
        ]
        set_optimizer_state_dict(model, optimizer, optimizer_state, options=options)
        # The name-keyed format round-trips tuples (AdamW's betas) as lists; restore them.
        for group, keys in zip(optimizer.param_groups, tuples, strict=True):
            for key in keys:
                group[key] = tuple(group[key])


class GatheredModel:
    """What `ringmodel.save_checkpoint` needs of a model (its config and a state dict), for the
    full state rank 0 gathers from a sharded policy — no second model is built."""

    def __init__(self, config: Any, state: dict[str, torch.Tensor]) -> None:
        self.config = config
        self._state = state

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self._state


def local_tensor(value: Any) -> Any:
    """A plain tensor (or number) from a possibly distributed one (DTensor's full value)."""
    full = getattr(value, "full_tensor", None)
    return full() if callable(full) else value
