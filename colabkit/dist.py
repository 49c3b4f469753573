"""Several processes under torchrun: one per GPU (or per CPU process, with gloo), plumbing only.

    torchrun --nproc_per_node 2 notebooks/01_began.py

torchrun starts one copy of the script per process and tells each its place in the environment
(RANK, WORLD_SIZE, LOCAL_RANK). `setup()` reads them, joins the process group (nccl on GPUs, gloo
on CPUs), puts each process on its own GPU, and records the world size in the run's settings:
resuming with another number of processes changes the global batch, so the settings guard stops
it unless the learner allows it. The notebook wraps its networks with `run.ddp(net)`, in plain
sight: DistributedDataParallel averages the gradients of the processes in `backward()`, so N
processes with batch b train like one process with batch N·b (for networks without batch
statistics; BatchNorm then sees each process's own b).

What the other pieces do with a world of N processes:
- ResumableLoader gives process r its own slice of every global batch of the epoch's shuffled
  order, and seeds that slice from (seed, epoch, batch, r): a resumed run draws exactly what the
  uninterrupted one drew, with the same N.
- The loop decides together, at every step boundary, whether to save or stop (one small
  all-reduce), so all processes save at the same step; every process's RNG state is gathered into
  the checkpoint, which process 0 alone writes (and holds the run's lease, logs, progress bar);
  on resume every process loads the same checkpoint and its own RNG state.
- Only process 0 prints: the others' standard output goes to <work>/rank-<r>.log.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def main(self) -> bool:
        """True in the process that writes checkpoints, prints and draws (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def from_env() -> World:
    """The place torchrun gave this process (a single process when not launched by torchrun)."""
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise RuntimeError(f"RANK / WORLD_SIZE / LOCAL_RANK must be integers (as torchrun sets them): {exc}") from exc
    if size > 1 and not 0 <= rank < size:
        raise RuntimeError(f"RANK={rank} is outside WORLD_SIZE={size}")
    return World(rank, size, local)


def current() -> World:
    """The world of this process: the one `init` joined, else what the environment says."""
    return _joined or from_env()


_joined: World | None = None


def init(device_type: str) -> World:
    """Join torchrun's process group once (nccl on GPUs, gloo on CPUs); a no-op for one process."""
    global _joined
    world = from_env()
    if not world.distributed:
        return world
    import torch.distributed as dist

    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        if world.local_rank >= torch.cuda.device_count():
            raise RuntimeError(f"LOCAL_RANK={world.local_rank} but this machine has {torch.cuda.device_count()} "
                               "GPU(s): start torchrun with --nproc_per_node at most the number of GPUs.")
        torch.cuda.set_device(world.local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend)
        atexit.register(_leave)
    _joined = World(world.rank, world.size, world.local_rank, backend)
    return _joined


def _leave() -> None:
    """At exit: leave the process group while the interpreter is still whole, as PyTorch asks. At the
    interpreter's teardown gloo's threads sometimes abort a finished process ("terminate called
    without an active exception", exit status -6); this made it rarer in our runs but did not stop
    it, which is why leave_to_main ends the other processes with os._exit."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def wrap(module: torch.nn.Module, world: World, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel around `module` in a world of several processes; the module itself
    otherwise. Checkpoints store the module inside (no `module.` prefix), so a run saved by N
    processes holds the same keys as one saved by one."""
    if not world.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index if device.index is not None else world.local_rank] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)


def _tensor_device(world: World) -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if world.backend == "nccl" else torch.device("cpu")


def any_of(world: World, flags: list[bool]) -> list[bool]:
    """Each flag, true if it is true in any process (one all-reduce of a few bytes)."""
    if not world.distributed:
        return list(flags)
    import torch.distributed as dist

    t = torch.tensor([1 if f else 0 for f in flags], dtype=torch.int32, device=_tensor_device(world))
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]


def gather(world: World, obj) -> list:
    """Every process's `obj`, in rank order, in every process."""
    if not world.distributed:
        return [obj]
    import torch.distributed as dist

    out = [None] * world.size
    dist.all_gather_object(out, obj)
    return out


def average(world: World, value: torch.Tensor) -> torch.Tensor:
    """`value` averaged over the processes (itself in one process): for statistics that must be the
    same in all of them, such as BEGAN's balance term measured on the global batch."""
    if not world.distributed:
        return value
    import torch.distributed as dist

    out = value.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / world.size


def copy_from_main(world: World, module: torch.nn.Module) -> torch.nn.Module:
    """Every process's `module` made equal to process 0's, parameters and buffers (in place; nothing
    happens in one process). DDP keeps the weights equal but lets each process update its own batch
    norm statistics: a network that goes on to be used in evaluation mode (StackGAN's frozen Stage-I)
    needs process 0's, which are the ones its checkpoint holds."""
    if not world.distributed:
        return module
    import torch.distributed as dist

    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src=0)
    return module
