"""Run a training script in a subprocess, kill it at random moments, restart it until it finishes."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from colabkit import assert_identical

REPO = Path(__file__).resolve().parents[1]


def env_for(home: Path, work: Path, **extra) -> dict:
    env = dict(os.environ)
    env.update(COLABKIT_HOME=str(home), COLABKIT_WORK=str(work), PYTHONUNBUFFERED="1",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def isolate_colabkit(monkeypatch, home, work) -> None:
    """Point colabkit at throw-away folders and clear the variables that change a loop's behaviour."""
    monkeypatch.setenv("COLABKIT_HOME", str(home))
    monkeypatch.setenv("COLABKIT_WORK", str(work))
    for name in ("COLABKIT_SMOKE", "COLABKIT_SAVE_EVERY_STEPS", "COLABKIT_TAKE_OVER"):
        monkeypatch.delenv(name, raising=False)


def run_to_end(cmd: list[str], env: dict, cwd: Path, timeout: float = 600, *, own_session: bool = False) -> str:
    """Run `cmd` to its end; its output, or AssertionError with its tail when it fails. `own_session`:
    in a session of its own (torchrun's whole group is then one to kill)."""
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          start_new_session=own_session)
    if proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout + proc.stderr


def run_with_kills(cmd: list[str], env: dict, cwd: Path, *, kills: int, seed: int, done_marker: str,
                   min_delay: float, max_delay: float, sig=signal.SIGKILL, max_attempts: int = 40,
                   wait_for: str | None = None, progress_folder: Path | Callable | None = None,
                   steps: tuple[int, int] | None = None) -> dict:
    """Start `cmd`; `kills` times, send `sig` after a random delay (measured from when the output shows
    `wait_for`, if given), then start it again; finally let it run to the end. Returns counts and logs.

    With `progress_folder`, the delay is measured from when that folder holds a complete checkpoint
    newer than the one the attempt started from: on a loaded machine a fixed delay after start can
    end every attempt before its first save, and the run never gets anywhere. A callable in its place
    returns that newest complete step itself (for a bucket).

    With `steps=(lo, hi)` as well, each attempt first waits for a checkpoint a random lo..hi steps past
    the one it started from, and the random delay runs from there: the kills then land at a given
    number of steps, whatever the machine's speed. With a delay in seconds alone, a fast machine can
    finish the whole run before the last kills, and the restarts under test never happen."""
    rng = random.Random(seed)
    logs, killed, attempts = [], 0, 0
    while True:
        attempts += 1
        if attempts > max_attempts:
            raise AssertionError("too many restarts:\n" + "\n----\n".join(logs[-3:]))
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1)
        if killed < kills:
            newest = progress_folder if callable(progress_folder) else lambda: newest_complete_step(progress_folder)
            start_step = newest() if progress_folder else None
            out = _read_until(proc, wait_for, timeout=300) if wait_for else ""
            if progress_folder:
                t0 = time.monotonic()
                target = (-1 if start_step is None else start_step) + (rng.randint(*steps) if steps else 0)
                while (-1 if (now := newest()) is None else now) <= target \
                        and proc.poll() is None and time.monotonic() - t0 < 300:
                    time.sleep(0.01)
            time.sleep(rng.uniform(min_delay, max_delay))
            if proc.poll() is None:
                proc.send_signal(sig)
                killed += 1
            rest, _ = proc.communicate(timeout=300)
            logs.append(out + rest)
            if done_marker in out + rest:
                break
            continue
        rest, _ = proc.communicate(timeout=600)
        logs.append(rest)
        if proc.returncode != 0:
            raise AssertionError(f"final run failed ({proc.returncode}):\n{rest[-4000:]}")
        break
    return {"killed": killed, "attempts": attempts, "logs": logs}


def newest_complete_step(folder: Path) -> int | None:
    """The newest checkpoint a restart can resume from. colabkit writes the checksum file first and
    then the payload (atomically, under a temporary name): a checksum alone may be an orphan left by
    a kill in between, so a checkpoint counts only when both files are there."""
    if not folder.is_dir():
        return None
    steps = [int(p.name[5:14]) for p in folder.glob("ckpt-*.pt") if (folder / (p.name + ".sha256")).is_file()]
    return max(steps, default=None)


def kill_after_first_checkpoint(cmd: list[str], env: dict, cwd: Path, *, wait_for: str, folder: Path,
                                timeout: float = 120) -> str:
    """Start `cmd`; once its output shows `wait_for` and `folder` holds a complete checkpoint, SIGKILL
    it. Returns everything it printed."""
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1)
    out = _read_until(proc, wait_for, timeout=300)
    t0 = time.monotonic()
    while newest_complete_step(folder) is None and proc.poll() is None and time.monotonic() - t0 < timeout:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    return out + proc.communicate(timeout=60)[0]


def _read_until(proc, marker: str, timeout: float) -> str:
    seen, t0 = [], time.monotonic()
    while time.monotonic() - t0 < timeout:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if marker in line:
            break
    return "".join(seen)


def assert_same(a, b, path="") -> int:
    """Bit-for-bit equality of nested state; returns the number of tensors compared."""
    return assert_identical(a, b, path)
