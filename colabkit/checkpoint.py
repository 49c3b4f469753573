"""Checkpoints that hold everything needed to continue a run exactly.

A save takes a snapshot of every registered state on host memory (the only part training waits
for), then a background thread serialises it, writes it to the store under a temporary name,
renames it, records its SHA-256 beside it, reads it back to verify, and only then prunes the
oldest checkpoints beyond `keep`. A load walks the checkpoints newest first and takes the first
one whose checksum verifies and which torch.load(weights_only=True) accepts.
"""

from __future__ import annotations

import collections
import errno
import hashlib
import io
import json
import os
import random
import re
import socket
import threading
import time
import uuid
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .store import Store, StoreError

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


# --- the store side ---------------------------------------------------------------------------

class DriveUnavailable(CheckpointError):
    """The loop ended with its newest state on the VM's local disk only (the store kept failing)."""


class LeaseHeld(CheckpointError):
    """Another live session holds this run's lease: this one must not train it."""


class LeaseLost(CheckpointError):
    """Another session took this run's lease over while this one was training."""


# The write in flight for each store URL, across Checkpointer objects of this process: a loop made
# again after an Interrupt (pressed twice) waits for the write the previous one left running instead
# of reading, and tidying, the folder under it. An Event, not Thread.join: a join interrupted by
# KeyboardInterrupt can mark a thread that is still running as finished (CPython, bpo-45274's fix).
_inflight: dict[str, threading.Event] = {}
_inflight_lock = threading.Lock()


def _wait_inflight(url: str) -> None:
    with _inflight_lock:
        done = _inflight.get(url)
    if done is not None:
        done.wait()


def _mb(n: int | None) -> str:
    if n is None:
        return "unknown"
    return f"{n / 2**10:,.0f} kB" if n < 2**20 else f"{n / 2**20:,.1f} MB"


@dataclass
class SaveRecord:
    step: int
    name: str
    nbytes: int
    blocked_s: float   # time the caller waited: snapshot, plus any earlier write still running
    write_s: float = 0.0   # serialise + write + verify + prune, in the background
    on_store: bool = False   # verified in the store (False: only on the local fallback, or failed)


class Checkpointer:
    """Verified checkpoint writes to `store`, in the background.

    With `local` (a folder on the VM's own disk), a write the store refuses (Drive dropped: ENOTCONN,
    EIO, a vanished mount; Drive full) does not stop training: the snapshot is kept in `local`, a
    warning says so once, and every later save tries the store again (spaced out by `retry_base_s`,
    doubling up to `retry_max_s`, after repeated failures) and says when it is back. `unsynced` is
    then the newest record held locally only; `require_on_store()` raises if there is one.
    Without `local`, a failed write raises at the next save (or wait()).
    """

    def __init__(self, store: Store, keep: int = 3, *, local: Store | None = None,
                 retry_base_s: float = 30.0, retry_max_s: float = 600.0):
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.store = store
        self.keep = keep
        self.local = local
        self.retry_base_s, self.retry_max_s = retry_base_s, retry_max_s
        self.lease: Lease | None = None
        self._done: threading.Event | None = None   # set when the write in flight has finished
        self._error: BaseException | None = None
        self.records: list[SaveRecord] = []
        self._checked_loadable = False
        self.fault: str | None = None          # why the store is failing now; None when it works
        self._failures = 0
        self._next_try = 0.0
        self.unsynced: SaveRecord | None = None
        self.last_on_store: int | None = None  # step of the newest checkpoint verified in the store
        self._notes: collections.deque = collections.deque()   # (kind, text) from the writer thread

    # writing
    def save(self, step: int, payload: dict, *, blocking: bool = False) -> SaveRecord:
        """Snapshot now, write in the background (blocking: and wait for it)."""
        t0 = time.perf_counter()
        self.wait()
        _wait_inflight(self.store.url)
        if not self.records:
            self._tidy()
        snapshot = to_host(payload)
        snapshot["format"] = FORMAT
        snapshot["step"] = step
        rec = SaveRecord(step=step, name=ckpt_name(step), nbytes=0, blocked_s=0.0)
        self.records.append(rec)
        # The final save (blocking) always tries the store; others respect the back-off.
        attempt = blocking or self.fault is None or time.monotonic() >= self._next_try
        # A thread even when blocking: a second Interrupt while waiting stops the wait, not the write.
        self._done = done = threading.Event()
        with _inflight_lock:
            _inflight[self.store.url] = done
        threading.Thread(target=self._write, args=(snapshot, rec, attempt, done),
                         name="colabkit-checkpoint", daemon=True).start()
        if blocking:
            self.wait()
        rec.blocked_s = time.perf_counter() - t0
        return rec

    def _tidy(self) -> None:
        """Remove what a session that died mid-write left (this session holds the run's lease)."""
        try:
            gone = self.store.clean_temp()
            names = set(self.store.list())
            for orphan in sorted(n for n in names if n.endswith(".pt.sha256") and n[:-7] not in names):
                self.store.delete(orphan)
                gone.append(orphan)
        except OSError:
            return   # the store is failing: the write below will say so
        if gone:
            print(f"removed {len(gone)} unfinished checkpoint write(s) left by an earlier session: {gone}")

    def wait(self) -> None:
        """Block until the write in flight has finished; report and re-raise its outcome here, in the caller."""
        if self._done is not None:
            self._done.wait()
            self._done = None
        self.poll()

    def poll(self) -> None:
        """Show, in the calling (training) thread, what the writer thread had to say; raise its error
        (a lost lease, a state that cannot be saved) as soon as the write is over."""
        while self._notes:
            kind, text = self._notes.popleft()
            if kind == "warn":
                warnings.warn(text, UserWarning, stacklevel=3)
            else:
                print(text, flush=True)
        if self._error is not None and not self.writing:
            err, self._error = self._error, None
            raise err

    @property
    def writing(self) -> bool:
        """A write is in flight (started by this Checkpointer and not yet finished)."""
        return self._done is not None and not self._done.is_set()

    def _write(self, snapshot: dict, rec: SaveRecord, attempt: bool, done: threading.Event) -> None:
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
            rec.nbytes = len(data)
            if self.lease is not None:
                self.lease.refresh()   # LeaseLost: another session owns the run now; write nothing
            if not attempt:
                self._keep_locally(rec, data, digest, None)
                return
            try:
                self._check_room(rec)
                _put(self.store, rec.name, data, digest)
            except OSError as exc:
                if self.local is None:
                    raise
                self._keep_locally(rec, data, digest, exc)
                return
            rec.on_store = True
            self.last_on_store = rec.step
            self._recovered(rec)
            try:
                self._prune(rec.step)
            except OSError as exc:   # the new checkpoint is safe; extra old files cost space only
                self._notes.append(("print", f"note: could not delete old checkpoints in {self.store.url} "
                                             f"({exc}); they will be pruned at the next save."))
        except BaseException as exc:  # surfaced in the training thread by wait()
            self._error = exc
        finally:
            rec.write_s = time.perf_counter() - t0
            done.set()

    def _check_room(self, rec: SaveRecord) -> None:
        """Refuse to start a write that the store's free space cannot hold (nothing is pruned first)."""
        free = self.store.free_bytes()
        needed = rec.nbytes + (1 << 20)   # the file, its checksum and a margin for the file system
        if free is not None and free < needed:
            raise StoreError(errno.ENOSPC, (
                f"{self.store.url} is (nearly) full: {rec.name} needs {_mb(needed)} and only {_mb(free)} "
                f"is free. Nothing was pruned to make room (the older checkpoints stay until a newer one is "
                f"safely written). To make room: delete runs you no longer need from the folder above "
                f"{self.store.url} and empty the Drive trash (deleted files count against the quota until "
                f"then), or keep fewer checkpoints with run.loop(..., keep=1) (now keep={self.keep}: about "
                f"{_mb((self.keep + 1) * rec.nbytes)} while a new one is written)."))

    def _keep_locally(self, rec: SaveRecord, data, digest: str, exc: OSError | None) -> None:
        """The store failed (exc) or is being given a rest (exc None): put the snapshot on the VM's disk."""
        _put(self.local, rec.name, data, digest)   # if this fails too, it is raised: nowhere is left
        for step in _steps(self.local):
            if step < rec.step:
                self.local.delete(ckpt_name(step) + ".sha256")
                self.local.delete(ckpt_name(step))
        self.unsynced = rec
        if exc is None:
            return
        self._failures += 1
        self._next_try = time.monotonic() + min(self.retry_base_s * 2 ** (self._failures - 1), self.retry_max_s)
        if self.fault is None:
            since = (f"the newest checkpoint there is {ckpt_name(self.last_on_store)}"
                     if self.last_on_store is not None else "no checkpoint of this session is there yet")
            self._notes.append(("warn", (
                f"Saving {rec.name} to {self.store.url} failed: {exc}\n"
                f"Training goes on. This checkpoint, and each newer one until the store works again, is kept "
                f"on this VM's disk in {self.local.url} ({since}). Saving to {self.store.url} is retried at "
                "each save point, and a message says when it works again. You can mount Drive again in "
                "another cell while this one trains (from google.colab import drive; "
                "drive.mount('/content/drive', force_remount=True)), free space if it is full, or just wait. "
                "If the loop ends before the store works, it raises an error that says where the local copy is "
                "(the VM's disk is lost when Colab recycles the VM).")))
        self.fault = str(exc)

    def _recovered(self, rec: SaveRecord) -> None:
        if self.unsynced is None and self.fault is None:
            return
        if self.fault is not None:
            self._notes.append(("print", f"The store works again: {rec.name} is saved in {self.store.url}; "
                                         "the local copies are no longer needed and were removed."))
        self.fault, self._failures, self.unsynced = None, 0, None
        if self.local is not None:
            for step in _steps(self.local):
                self.local.delete(ckpt_name(step) + ".sha256")
                self.local.delete(ckpt_name(step))

    def require_on_store(self, why: str = "The training ended") -> None:
        """Raise DriveUnavailable if the newest checkpoint is only on the local fallback."""
        self.wait()
        rec = self.unsynced
        if rec is None:
            return
        older = (f"the newest one there is {ckpt_name(self.last_on_store)}" if self.last_on_store is not None
                 else "this session saved none there")
        raise DriveUnavailable(
            f"{why}, but its newest checkpoint (step {rec.step:,}) is not saved in {self.store.url} "
            f"({older}): {self.fault}\n"
            f"It is safe on this VM's disk: {self.local.url}/{rec.name}. Mount Drive again (from google.colab "
            "import drive; drive.mount('/content/drive', force_remount=True)) or free space on it, then run this "
            "cell again: the loop resumes from the local copy and saves it to Drive. The local copy is lost if "
            "Colab recycles this VM first.")

    def _prune(self, newest: int) -> None:
        steps = [s for s in self.steps() if s <= newest]
        for step in steps[:-self.keep]:
            self.store.delete(ckpt_name(step) + ".sha256")
            self.store.delete(ckpt_name(step))

    # reading
    def steps(self) -> list[int]:
        return _steps(self.store)

    def verify(self, step: int, store: Store | None = None) -> tuple[bytes | None, str]:
        """The checkpoint's bytes if its recorded checksum matches, else None and why."""
        store = self.store if store is None else store
        name = ckpt_name(step)
        try:
            data = store.read_bytes(name)
        except OSError as exc:
            return None, f"unreadable ({exc})"
        try:
            recorded = store.read_bytes(name + ".sha256").decode().split()[0]
        except (OSError, IndexError, UnicodeDecodeError):
            return None, "no checksum recorded (the save did not finish)"
        actual = hashlib.sha256(data).hexdigest()
        if actual != recorded:
            return None, f"checksum mismatch (truncated or corrupted: {len(data):,} bytes)"
        return data, "ok"

    def load_latest(self) -> tuple[dict, str] | None:
        """(payload, file name) of the newest valid checkpoint; None if there are none at all.

        A local copy newer than anything in the store (kept while the store failed) comes first; it
        is copied to the store right away when the store takes it."""
        _wait_inflight(self.store.url)
        steps = self.steps()
        candidates = [(step, self.store) for step in steps]
        if self.local is not None:
            newest = max(steps, default=-1)
            candidates += [(step, self.local) for step in _steps(self.local) if step > newest]
        bad = []
        for step, store in sorted(candidates, key=lambda c: c[0], reverse=True):
            name = ckpt_name(step)
            data, why = self.verify(step, store)
            if data is not None:
                try:
                    payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
                    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
                        raise CheckpointError("not a colabkit checkpoint")
                except Exception as exc:  # noqa: BLE001 - any unreadable file is skipped the same way
                    why = f"cannot be loaded ({type(exc).__name__}: {exc})"
                else:
                    if store is self.store:
                        self.last_on_store = step
                    else:
                        self._promote(step, data)
                    return payload, name
            bad.append(name)
            warnings.warn(f"Skipping checkpoint {store.url}/{name}: {why}. Trying an older one.", stacklevel=2)
        if bad:
            raise CheckpointError(
                f"Found {len(bad)} checkpoint(s) in {self.store.url} but none is valid: {bad}. "
                "Nothing was deleted. To start this run over, move that folder away (or use a new run "
                "name); to investigate, see the warnings above.")
        return None

    def _promote(self, step: int, data: bytes) -> None:
        """Copy a checkpoint found only on the local fallback to the store (or say it stays local)."""
        rec = SaveRecord(step=step, name=ckpt_name(step), nbytes=len(data), blocked_s=0.0)
        try:
            _put(self.store, rec.name, data, hashlib.sha256(data).hexdigest())
        except OSError as exc:
            self.unsynced, self.fault = rec, str(exc)
            self._failures, self._next_try = 1, 0.0
            print(f"Resuming from {self.local.url}/{rec.name}, kept on this VM while the store failed; it is "
                  f"still not in {self.store.url} ({exc}). Training goes on and saving there is retried.")
            return
        rec.on_store, self.last_on_store = True, step
        print(f"{rec.name} was kept on this VM while the store failed; it is now saved in {self.store.url}.")
        for old in _steps(self.local):
            self.local.delete(ckpt_name(old) + ".sha256")
            self.local.delete(ckpt_name(old))
        self._prune(step)


def _steps(store: Store) -> list[int]:
    out = []
    for name in store.list():
        m = NAME_RE.match(name)
        if m:
            out.append(int(m.group(1)))
    return sorted(out)


def _put(store: Store, name: str, data, digest: str) -> None:
    """Write a checkpoint and its checksum, read it back; on any failure leave neither behind."""
    # Checksum first, payload second: a checkpoint visible under its real name always has its
    # checksum beside it; a kill in between leaves only an orphan checksum, which is ignored.
    try:
        store.write_bytes(name + ".sha256", f"{digest}  {name}\n".encode())
        store.write_bytes(name, data)
        if hashlib.sha256(store.read_bytes(name)).hexdigest() != digest:
            raise StoreError(errno.EIO, f"{name} in {store.url} did not read back as written")
    except BaseException:
        # Leave the store as it was before this save: the earlier checkpoints alone.
        for leftover in (name, name + ".sha256"):
            try:
                store.delete(leftover)
            except OSError:
                pass
        raise


# --- one writer per run ------------------------------------------------------------------------

LEASE_NAME = "lease.json"


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def _pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError, TypeError):
        return True
    return True


def _utc(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


HEARTBEAT_S = 60.0   # the holder renews its lease this often, from a thread of its own…
STALE_BEATS = 5      # …and another session may take it over after this many missed beats (5 min)


class Lease:
    """A file in the run's folder naming the one session that trains it.

    It holds an owner id, the host, the process, when it started and a heartbeat that the holder
    renews every minute (a thread of its own, and before each checkpoint write). Another session
    refuses to train while the heartbeat is younger than five of the holder's heartbeat intervals,
    unless the holder is a process of this machine that has ended, or it is told to take over. The
    holder checks the file at every renewal and stops (LeaseLost) when someone else took it over.

    The heartbeat is not tied to the save interval on purpose: after the usual disconnect the old VM
    is gone, and the next Run all should wait minutes at most for its lease to go stale, not twice a
    10-minute save interval. Five beats leave room for Drive syncing a file between VMs late.
    """

    def __init__(self, store: Store, interval_s: float | None = None, *, name: str = LEASE_NAME):
        self.store, self.name = store, name
        self.interval_s = float(HEARTBEAT_S if interval_s is None else interval_s)
        self.owner = uuid.uuid4().hex
        self.host, self.boot, self.pid = socket.gethostname(), _boot_id(), os.getpid()
        self.started = time.time()
        self.held = False
        self.lost: LeaseLost | None = None     # set by the heartbeat thread; the loop raises it
        self._lock = threading.Lock()           # renewals and the release never interleave
        self._stop_beat = threading.Event()
        self._beat: threading.Thread | None = None

    @property
    def where(self) -> str:
        return f"{self.store.url}/{self.name}"

    def read(self) -> dict | None:
        return self._read()[0]

    def _read(self) -> tuple[dict | None, bool]:
        """(the lease, whether the file was there but unreadable)."""
        try:
            info = json.loads(self.store.read_bytes(self.name).decode())
        except FileNotFoundError:
            return None, False
        except (ValueError, UnicodeDecodeError):
            return None, True   # a torn or foreign file: treated as no lease, and replaced
        return (info, False) if isinstance(info, dict) else (None, True)

    def _read_settled(self, tries: int = 3, pause_s: float = 0.1) -> dict | None:
        """Read, giving a file caught half-written (a store without atomic renames) a moment to settle,
        so a renewal does not overwrite another session's take-over that is still arriving."""
        for _ in range(tries - 1):
            info, torn = self._read()
            if not torn:
                return info
            time.sleep(pause_s)
        return self._read()[0]

    def _write(self, now: float) -> None:
        info = {"owner": self.owner, "host": self.host, "boot": self.boot, "pid": self.pid,
                "started": self.started, "heartbeat": now, "interval_s": self.interval_s}
        self.store.write_bytes(self.name, json.dumps(info).encode())

    def _verdict(self, info: dict, now: float) -> tuple[bool, str]:
        """(may take it, why) for a lease held by someone else."""
        same_machine = info.get("host") == self.host and info.get("boot") == self.boot
        if same_machine and info.get("pid") == self.pid:
            return True, ""   # an earlier loop of this very process (the cell was run again)
        if same_machine and not _pid_alive(info.get("pid")):
            return True, f"its holder, process {info.get('pid')} on this machine, has ended"
        age = now - float(info.get("heartbeat", 0))
        limit = STALE_BEATS * float(info.get("interval_s", self.interval_s))
        if age > limit:
            return True, f"its last heartbeat is {_ago(age)} old (it is renewed every {_ago(limit / STALE_BEATS)})"
        return False, ""

    def acquire(self, take_over: bool = False) -> None:
        now = time.time()
        info = self.read()
        if info is not None and info.get("owner") != self.owner:
            ok, why = self._verdict(info, now)
            if not ok and not take_over:
                raise LeaseHeld(self._held_message(info, now))
            if not ok:
                why = "take_over was asked for"
            if why:
                print(f"Taking over {self.where} from process {info.get('pid')} on {info.get('host')} "
                      f"(started {_utc(float(info.get('started', 0)))}): {why}.")
        self._write(now)
        back = self.read()   # two sessions starting at once: the last writer wins, the other refuses
        if back is None or back.get("owner") != self.owner:
            raise LeaseHeld(self._held_message(back or {}, time.time()))
        self.held, self.lost = True, None
        self._stop_beat.clear()
        self._beat = threading.Thread(target=self._heartbeat, name="colabkit-lease", daemon=True)
        self._beat.start()

    def _heartbeat(self) -> None:
        while not self._stop_beat.wait(self.interval_s):
            try:
                self.refresh()
            except LeaseLost as exc:
                self.lost = exc
                return

    def refresh(self) -> None:
        """Every heartbeat and before each checkpoint write: make sure this session still holds the
        lease, and renew it."""
        with self._lock:
            self._refresh()

    def _refresh(self) -> None:
        if not self.held:
            return
        try:
            info = self._read_settled()
            if info is not None and info.get("owner") != self.owner:
                self.held = False
                raise LeaseLost(
                    f"Another session took this run over: {self.where} now names process {info.get('pid')} on "
                    f"{info.get('host')} (since {_utc(float(info.get('started', 0)))}). This session stops "
                    "without saving so the two do not mix their checkpoints; the run continues there.")
            self._write(time.time())
        except OSError:
            pass   # the store is failing; the checkpoint write says so and keeps a local copy

    def release(self) -> None:
        self._stop_beat.set()
        with self._lock:
            self._release()

    def _release(self) -> None:
        if not self.held:
            return
        self.held = False
        try:
            info = self.read()
            if info is not None and info.get("owner") == self.owner:
                self.store.delete(self.name)
        except OSError:
            pass   # it goes stale by itself

    def _held_message(self, info: dict, now: float) -> str:
        beat = float(info.get("heartbeat", now))
        limit = STALE_BEATS * float(info.get("interval_s", self.interval_s))
        return (
            f"Another session is training this run: {self.where} is held by process {info.get('pid')} on "
            f"{info.get('host')} since {_utc(float(info.get('started', now)))}, last heartbeat {_ago(now - beat)} "
            f"ago (it is renewed every {_ago(limit / STALE_BEATS)} while that session trains). Two sessions "
            "writing one run would mix their checkpoints, "
            "so this one does not train. To train here instead: stop the other session (in its tab: Runtime > "
            f"Disconnect and delete runtime), then wait until its heartbeat is older than {_ago(limit)} "
            f"(after {_utc(beat + limit)}) and run this cell again; or, if you are sure it is gone, take over "
            "now with run.loop(..., take_over=True) or %env COLABKIT_TAKE_OVER=1.")
