"""What a checkpoint holds, and how it goes back: every registered object's state on the host (DDP
and torch.compile unwrapped), the RNG states, optimizer state that keeps this machine's kernel
flags, the settings' differences, and a bit-for-bit comparison of two states."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


class CheckpointError(RuntimeError):
    pass


class ConfigMismatch(CheckpointError):
    pass



def unwrap(obj: Any) -> Any:
    """The module behind torch.compile and DistributedDataParallel wrappers, so saved keys carry no
    `_orig_mod.` or `module.` prefix (a run saved by N processes loads in one, and the other way)."""
    while True:
        if isinstance(obj, torch.nn.parallel.DistributedDataParallel):
            obj = obj.module
        elif hasattr(obj, "_orig_mod"):
            obj = obj._orig_mod
        else:
            return obj


def to_host(obj: Any) -> Any:
    """A deep copy with every tensor on the CPU, detached from what training will mutate next."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach()
        return t.to("cpu", copy=True) if t.device.type != "cpu" else t.clone()
    if isinstance(obj, dict):
        out = type(obj)((k, to_host(v)) for k, v in obj.items())
        if hasattr(obj, "_metadata"):  # module state dicts carry per-layer versions
            out._metadata = obj._metadata
        return out
    if isinstance(obj, list):
        return [to_host(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(to_host(v) for v in obj)
    return obj


def rng_state() -> dict:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        # numpy arrays are not allowed by weights_only loading; a tensor is.
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        saved = state["cuda"]
        for i in range(min(len(saved), torch.cuda.device_count())):
            torch.cuda.set_rng_state(saved[i], i)


def capture(objects: dict[str, Any]) -> dict[str, Any]:
    return {name: unwrap(obj).state_dict() for name, obj in objects.items()}


def restore(objects: dict[str, Any], saved: dict[str, Any], source: str) -> None:
    missing = [name for name in objects if name not in saved]
    if missing:
        raise CheckpointError(
            f"{source} has no state for {missing} (it holds {sorted(saved)}). The notebook registers "
            "state the checkpoint was not saved with: use a new run name to start over.")
    for name, obj in objects.items():
        obj = unwrap(obj)
        if isinstance(obj, torch.optim.Optimizer):
            load_optimizer_state(obj, saved[name])
        elif isinstance(obj, torch.amp.GradScaler) and not saved[name]:
            # Saved by a disabled scaler (a bf16 or fp32 run) and resumed where it is needed (fp16
            # on a T4): it starts from its initial scale. torch's own loading refuses the empty state.
            continue
        else:
            obj.load_state_dict(saved[name])


# How an optimizer runs on this machine, not what it has learned.
_IMPLEMENTATION_FLAGS = ("foreach", "fused", "capturable")


def load_optimizer_state(opt: torch.optim.Optimizer, state: dict) -> None:
    """opt.load_state_dict(state), keeping opt's own implementation flags.

    load_state_dict takes the saved param groups whole, flags included, so a run started on a T4
    and resumed on an A100 would keep the T4's choices (no fused kernel, no CUDA graphs). The
    hyperparameters (lr, betas, ...) and the moments come from the checkpoint; `fused`, `foreach`
    and `capturable` stay as the notebook chose them for the GPU it has now.
    """
    flags = [{k: g[k] for k in _IMPLEMENTATION_FLAGS if k in g} for g in opt.param_groups]
    opt.load_state_dict(state)
    for group, keep in zip(opt.param_groups, flags):
        group.update(keep)
        if keep.get("fused") or keep.get("capturable"):   # these keep the step count on the device
            for p in group["params"]:
                step = opt.state.get(p, {}).get("step")
                if isinstance(step, torch.Tensor) and step.device != p.device:
                    opt.state[p]["step"] = step.to(device=p.device, dtype=torch.float32)


def diff_config(saved: dict, current: dict, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """Keys whose values differ, dotted for nested dicts."""
    out = []
    for key in sorted(set(saved) | set(current), key=str):
        a, b = saved.get(key, "<absent>"), current.get(key, "<absent>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += diff_config(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append((f"{prefix}{key}", a, b))
    return out


def assert_identical(a: Any, b: Any, where: str = "") -> int:
    """Bit-for-bit equality of two nested states (tensors, numbers, containers); returns the number of
    tensors compared. Raises AssertionError naming the first place they differ."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, f"differs at {where}"
        assert torch.equal(a, b), f"tensors differ at {where}: max |diff| {(a.double() - b.double()).abs().max()}"
        return 1
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"keys differ at {where}: {set(a) ^ set(b)}"
        return sum(assert_identical(a[k], b[k], f"{where}.{k}") for k in a)
    if isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), f"lengths differ at {where}"
        return sum(assert_identical(x, y, f"{where}[{i}]") for i, (x, y) in enumerate(zip(a, b)))
    assert a == b, f"values differ at {where}: {a!r} != {b!r}"
    return 0

