"""Checkpoints that hold everything needed to continue a run exactly.

A save takes a snapshot of every registered state on host memory (the only part training waits
for), then a background thread serialises it, writes it to the store under a temporary name,
renames it, records its SHA-256 beside it, reads it back to verify, and only then prunes the
oldest checkpoints beyond `keep`. A load walks the checkpoints newest first and takes the first
one whose checksum verifies and which torch.load(weights_only=True) accepts.

The state a checkpoint holds is taken and put back by colabkit/state.py; the lease that keeps a
second session out is colabkit/lease.py. Both are re-exported here.
"""

from __future__ import annotations

import collections
import errno
import hashlib
import io
import re
import threading
import time
import warnings
from dataclasses import dataclass

import torch

from .lease import HEARTBEAT_S, LEASE_NAME, STALE_BEATS, Lease, LeaseHeld, LeaseLost
from .state import (
    CheckpointError,
    ConfigMismatch,
    assert_identical,
    capture,
    diff_config,
    load_optimizer_state,
    restore,
    rng_state,
    set_rng_state,
    to_host,
    unwrap,
)
from .store import Store, StoreError

__all__ = ["FORMAT", "NAME_RE", "ckpt_name", "Checkpointer", "SaveRecord", "DriveUnavailable",
           "CheckpointError", "ConfigMismatch", "assert_identical", "capture", "diff_config",
           "load_optimizer_state", "restore", "rng_state", "set_rng_state", "to_host", "unwrap",
           "HEARTBEAT_S", "LEASE_NAME", "STALE_BEATS", "Lease", "LeaseHeld", "LeaseLost"]

FORMAT = "colabkit-checkpoint/1"
NAME_RE = re.compile(r"^ckpt-(\d{9})\.pt$")


def ckpt_name(step: int) -> str:
    return f"ckpt-{step:09d}.pt"


class DriveUnavailable(CheckpointError):
    """The loop ended with its newest state on the VM's local disk only (the store kept failing)."""



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

