"""Checkpoints that hold everything needed to continue a run exactly.

A save takes a snapshot of every registered state on host memory (the only part training waits
for), then a background thread serialises it, writes it to the store under a temporary name,
renames it, records its SHA-256 beside it, reads it back to verify, and only then prunes the
oldest checkpoints beyond `keep`. A load walks the checkpoints newest first and takes the first
one whose checksum verifies and which torch.load(weights_only=True) accepts.
"""

from __future__ import annotations

import hashlib
import io
import random
import re
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .store import Store

FORMAT = "colabkit-checkpoint/1"
NAME_RE = re.compile(r"^ckpt-(\d{9})\.pt$")


class CheckpointError(RuntimeError):
    pass


class ConfigMismatch(CheckpointError):
    pass


def ckpt_name(step: int) -> str:
    return f"ckpt-{step:09d}.pt"


# --- state capture -------------------------------------------------------------------------

def unwrap(obj: Any) -> Any:
    """The module behind a torch.compile wrapper, so saved keys carry no `_orig_mod.` prefix."""
    return getattr(obj, "_orig_mod", obj)


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


# --- the store side ---------------------------------------------------------------------------

@dataclass
class SaveRecord:
    step: int
    name: str
    nbytes: int
    blocked_s: float   # time the caller waited: snapshot, plus any earlier write still running
    write_s: float = 0.0   # serialise + write + verify + prune, in the background


class Checkpointer:
    def __init__(self, store: Store, keep: int = 3):
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.store = store
        self.keep = keep
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.records: list[SaveRecord] = []
        self._checked_loadable = False

    # writing
    def save(self, step: int, payload: dict, *, blocking: bool = False) -> SaveRecord:
        """Snapshot now, write in the background (or before returning, if blocking)."""
        t0 = time.perf_counter()
        self.wait()
        if not self.records:
            # This session is the only writer: leftovers are from one that died mid-write.
            gone = self.store.clean_temp()
            names = set(self.store.list())
            for orphan in sorted(n for n in names if n.endswith(".pt.sha256") and n[:-7] not in names):
                self.store.delete(orphan)
                gone.append(orphan)
            if gone:
                print(f"removed {len(gone)} unfinished checkpoint write(s) left by an earlier session: {gone}")
        snapshot = to_host(payload)
        snapshot["format"] = FORMAT
        snapshot["step"] = step
        rec = SaveRecord(step=step, name=ckpt_name(step), nbytes=0, blocked_s=0.0)
        self.records.append(rec)
        if blocking:
            self._write(snapshot, rec)
            self._raise_pending()
        else:
            self._thread = threading.Thread(target=self._write, args=(snapshot, rec),
                                            name="colabkit-checkpoint", daemon=True)
            self._thread.start()
        rec.blocked_s = time.perf_counter() - t0
        return rec

    def wait(self) -> None:
        """Block until the write in flight has finished; re-raise its error here, in the caller."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._raise_pending()

    def _raise_pending(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def _write(self, snapshot: dict, rec: SaveRecord) -> None:
        t0 = time.perf_counter()
        try:
            buf = io.BytesIO()
            torch.save(snapshot, buf)
            data = buf.getbuffer()
            digest = hashlib.sha256(data).hexdigest()
            if not self._checked_loadable:
                # Once per run, prove the payload loads with weights_only=True before relying on it.
                try:
                    torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
                except Exception as exc:  # noqa: BLE001
                    raise CheckpointError(
                        "The training state cannot be reloaded safely (torch.load weights_only=True refuses "
                        f"it: {str(exc).splitlines()[-1][:300]}). Register only tensors, numbers, strings and "
                        "containers of them in the checkpointed state.") from exc
                self._checked_loadable = True
            # Checksum first, payload second: a checkpoint visible under its real name always has its
            # checksum beside it; a kill in between leaves only an orphan checksum, which is ignored.
            try:
                self.store.write_bytes(rec.name + ".sha256", f"{digest}  {rec.name}\n".encode())
                self.store.write_bytes(rec.name, data)
                if hashlib.sha256(self.store.read_bytes(rec.name)).hexdigest() != digest:
                    raise CheckpointError(f"{rec.name} in {self.store.url} did not read back as written")
            except BaseException:
                # Leave the store as it was before this save: the earlier checkpoints alone.
                for leftover in (rec.name, rec.name + ".sha256"):
                    try:
                        self.store.delete(leftover)
                    except OSError:
                        pass
                raise
            rec.nbytes = len(data)
            self._prune(rec.step)
        except BaseException as exc:  # surfaced in the training thread by wait()
            self._error = exc
        finally:
            rec.write_s = time.perf_counter() - t0

    def _prune(self, newest: int) -> None:
        steps = [s for s in self.steps() if s <= newest]
        for step in steps[:-self.keep]:
            self.store.delete(ckpt_name(step) + ".sha256")
            self.store.delete(ckpt_name(step))

    # reading
    def steps(self) -> list[int]:
        out = []
        for name in self.store.list():
            m = NAME_RE.match(name)
            if m:
                out.append(int(m.group(1)))
        return sorted(out)

    def verify(self, step: int) -> tuple[bytes | None, str]:
        """The checkpoint's bytes if its recorded checksum matches, else None and why."""
        name = ckpt_name(step)
        try:
            data = self.store.read_bytes(name)
        except OSError as exc:
            return None, f"unreadable ({exc})"
        try:
            recorded = self.store.read_bytes(name + ".sha256").decode().split()[0]
        except (OSError, IndexError, UnicodeDecodeError):
            return None, "no checksum recorded (the save did not finish)"
        actual = hashlib.sha256(data).hexdigest()
        if actual != recorded:
            return None, f"checksum mismatch (truncated or corrupted: {len(data):,} bytes)"
        return data, "ok"

    def load_latest(self) -> tuple[dict, str] | None:
        """(payload, file name) of the newest valid checkpoint; None if there are none at all."""
        steps = self.steps()
        bad = []
        for step in reversed(steps):
            name = ckpt_name(step)
            data, why = self.verify(step)
            if data is not None:
                try:
                    payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
                    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
                        raise CheckpointError("not a colabkit checkpoint")
                except Exception as exc:  # noqa: BLE001 - any unreadable file is skipped the same way
                    why = f"cannot be loaded ({type(exc).__name__}: {exc})"
                else:
                    return payload, name
            bad.append(name)
            warnings.warn(f"Skipping checkpoint {self.store.url}/{name}: {why}. Trying an older one.",
                          stacklevel=2)
        if bad:
            raise CheckpointError(
                f"Found {len(bad)} checkpoint(s) in {self.store.url} but none is valid: {bad}. "
                "Nothing was deleted. To start this run over, move that folder away (or use a new run "
                "name); to investigate, see the warnings above.")
        return None
