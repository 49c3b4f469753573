"""One writer per run: a lease file in the run's folder, renewed by a heartbeat, that keeps a second
session (a Colab tab left open, a second VM) from training the same run at the same time."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid

from .state import CheckpointError
from .store import Store


class LeaseHeld(CheckpointError):
    """Another live session holds this run's lease: this one must not train it."""


class LeaseLost(CheckpointError):
    """Another session took this run's lease over while this one was training."""



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
