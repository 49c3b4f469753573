"""The resumable training loop. The notebook writes the step; this runs the loop around it.

    loop = run.loop("train", total_steps=N, loader=loader, state={...})
    for step, batch in loop:
        ...one training step, written in the notebook...
        loop.log(loss_D=loss_D)

Creating the loop restores the newest valid checkpoint (weights, optimizers, schedulers, scaler,
registered extra state, RNG, the position in the data), so the first step yielded is the one the
interrupted run had not finished. After each step the loop saves when `save_every_min` minutes
have passed (default 10: the most a disconnect can cost), every `save_every_steps` steps if set,
when the learner presses Interrupt (at the step boundary, then it stops), and at the end.

Drive failing mid-run (dropped, unmounted, full) does not stop training: checkpoints are kept on
the VM's disk until Drive takes them again (see checkpoint.Checkpointer); only a loop that ends
with its newest state still off Drive raises, naming the local copy. A lease file in the loop's
folder keeps a second session (another tab, a copy of the notebook, another VM) from training the
same run at the same time (see checkpoint.Lease).
"""

from __future__ import annotations

import os
import signal
import threading
import time
import warnings
from collections import defaultdict
from pathlib import Path

import torch

from . import flags
from .board import EventLog, image_grid
from .checkpoint import Checkpointer
from .config import SPEED, is_speed_key
from .dist import World, any_of, gather
from .lease import Lease, LeaseLost
from .state import ConfigMismatch, capture, diff_config, restore, rng_state, set_rng_state, to_host, unwrap
from .store import LocalStore, Store

VM_LIFETIME_H = 12.0   # Colab recycles a VM after at most this long
VM_WARN_H = 11.0


def vm_age_hours() -> float | None:
    """Hours since the machine booted (on Colab: the VM's age)."""
    try:
        with open("/proc/uptime") as f:
            return float(f.read().split()[0]) / 3600
    except (OSError, ValueError):
        return None


class State:
    """Plain training values (k_t, a learning rate, counters) that the checkpoint should carry."""

    def __init__(self, **values):
        self.__dict__.update(values)

    def state_dict(self) -> dict:
        return {k: (v.detach().clone() if isinstance(v, torch.Tensor) else v) for k, v in self.__dict__.items()}

    def load_state_dict(self, state: dict) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items())
        return f"State({inner})"


def _per_process(obj) -> bool:
    """Registered state that may differ between processes: all but networks, optimizers, schedulers
    and gradient scalers (the same in every process under DDP, saved once)."""
    shared = (torch.nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler, torch.amp.GradScaler)
    return not isinstance(unwrap(obj), shared)


class Interrupted(KeyboardInterrupt):
    """Raised at a step boundary after the learner pressed Interrupt and the checkpoint was saved."""


class Loop:
    """Made by `run.loop(name, ...)`, which passes what the loop needs of the run: its store (where
    `<name>/` goes), its local scratch folder `work`, its settings `config` (recorded in and checked
    against every checkpoint; read at each save, so later `config.update` calls are recorded), its
    name and its world of processes."""

    def __init__(self, store: Store, work: Path, name: str = "train", *, config: dict, run_name: str,
                 world: World | None = None, total_steps: int, state: dict, loader=None,
                 save_every_min: float = 10.0, save_every_steps: int | None = None, keep: int = 3,
                 log_every: int = 50, allow_config_change: bool | list = False, progress: bool = True,
                 take_over: bool = False):
        if total_steps < 0:
            raise ValueError("total_steps must be >= 0")
        self.name = name
        self.config = config
        self.run_name = run_name
        # Several processes (torchrun): all train; process 0 alone writes, holds the lease, logs.
        self.world: World = world or World()
        self.total_steps = int(total_steps)
        self.objects = dict(state)
        self.loader = loader
        self.save_every_s = save_every_min * 60
        # COLABKIT_SAVE_EVERY_STEPS (the tests' way to save often) only stands in for an argument not given.
        env_steps = os.environ.get("COLABKIT_SAVE_EVERY_STEPS")
        self.save_every_steps = int(env_steps) if save_every_steps is None and env_steps else save_every_steps
        self.log_every = max(1, int(log_every))
        self.progress = progress
        self.store = store.sub(name)
        # Where checkpoints wait, on the VM's own disk, while Drive refuses them.
        self.local_store = LocalStore(Path(work) / "unsynced" / name)
        self.ckpt = Checkpointer(self.store.sub("checkpoints"), keep=keep, local=self.local_store)
        self.take_over = take_over or os.environ.get("COLABKIT_TAKE_OVER", "") not in ("", "0")
        self.lease = Lease(self.store)
        self.ckpt.lease = self.lease   # checked and renewed by each write, before it touches the store
        self._sync_warned = False
        self._lease_warned = False
        self.history: dict[str, list] = defaultdict(list)
        self._pending: dict[str, list] = defaultdict(list)
        self._interrupt = False
        self._stop = False
        self._left_mid_step: int | None = None
        self._vm_warned = False
        self.step = 0          # steps completed
        self.resumed_from: int | None = None
        self._resume(allow_config_change)
        tb_local = Path(work) / ("tb" if self.world.main else f"tb-rank{self.world.rank}") / name
        self.events = EventLog(tb_local, self.store.sub("tb"), purge_step=self.step)
        self._last_save_time = time.monotonic()
        self._last_saved_step = self.step if self.resumed_from is not None else None

    # --- resume --------------------------------------------------------------------------------
    def _resume(self, allow_config_change) -> None:
        found = self.ckpt.load_latest()
        if self.world.distributed:   # every process must continue from the same checkpoint
            names = gather(self.world, found[1] if found else None)
            if len(set(names)) != 1:
                raise RuntimeError(f"[{self.name}] the processes found different newest checkpoints ({names}) in "
                                   f"{self.ckpt.store.url}; is another session writing there? Run again.")
        if found is None:
            print(f"[{self.name}] no checkpoint in {self.ckpt.store.url}: starting at step 0")
            return
        payload, fname = found
        diffs = diff_config(payload.get("config", {}), self.config)
        speed = [d for d in diffs if is_speed_key(d[0])]
        if speed:   # cfg["speed"] (ck.settings(speed_only=...)): how fast, not what; may change
            changes = ", ".join(f"{k.removeprefix(SPEED + '.')} {a!r} → {b!r}" for k, a, b in speed)
            print(f"[{self.name}] speed-only settings differ from {fname}'s: {changes} "
                  "(they change how fast it trains, not what it computes)")
            diffs = [d for d in diffs if not is_speed_key(d[0])]
        if allow_config_change is not True:
            allowed = set(allow_config_change or [])
            diffs_blocking = [d for d in diffs if d[0] not in allowed]
            if diffs_blocking:
                lines = "\n".join(f"  {k}: checkpoint {a!r} → now {b!r}" for k, a, b in diffs_blocking)
                if any(d[0] == "world_size" for d in diffs_blocking):
                    lines += ("\n  (world_size is the number of processes torchrun started, '<absent>' for one: "
                              "it multiplies the global batch. Start as many as the run was trained with.)")
                raise ConfigMismatch(
                    f"The settings differ from those {fname} was trained with:\n{lines}\n"
                    "Restore those settings to continue this run, use a new run name to start a new one, "
                    f"or pass allow_config_change={[d[0] for d in diffs_blocking]} to run.loop() to "
                    "continue with the new values on purpose.")
        restore(self.objects, payload["state"], fname)
        ranks = payload.get("ranks")
        if self.world.distributed and ranks and len(ranks) == self.world.size:
            mine = ranks[self.world.rank]
            set_rng_state(mine["rng"])
            for key, values in mine["states"].items():   # this process's own k_t, pools, counters
                if key in self.objects:
                    self.objects[key].load_state_dict(values)
        elif self.world.main:
            set_rng_state(payload["rng"])
        # else: another number of processes, allowed on purpose; the others keep their own seeding
        for tag, points in payload.get("history", {}).items():
            self.history[tag] = [tuple(p) for p in points]
        self.step = int(payload["step"])
        self.resumed_from = self.step
        where = ""
        if self.loader is not None:
            where = f" (epoch {self.epoch}, batch {self.step_in_epoch} of {self.steps_per_epoch})"
        note = " — already complete" if self.step >= self.total_steps else ""
        print(f"[{self.name}] resumed from {fname}: step {self.step:,} of {self.total_steps:,}{where}{note}")

    # --- position ------------------------------------------------------------------------------
    @property
    def steps_per_epoch(self) -> int | None:
        return self.loader.steps_per_epoch if self.loader is not None else None

    @property
    def epoch(self) -> int:
        """Epoch of the step being run (or, between steps, of the next one)."""
        return self._current // self.steps_per_epoch if self.loader is not None else 0

    @property
    def step_in_epoch(self) -> int:
        return self._current % self.steps_per_epoch if self.loader is not None else self._current

    @property
    def _current(self) -> int:
        return getattr(self, "_running", self.step)

    @property
    def end_of_epoch(self) -> bool:
        """True during the last step of an epoch."""
        return self.loader is not None and (self._current + 1) % self.steps_per_epoch == 0

    def every(self, n: int) -> bool:
        """True during every n-th step (steps n-1, 2n-1, … counted from 0) and the last one."""
        s = self._current
        return (s + 1) % n == 0 or s + 1 == self.total_steps

    @property
    def done(self) -> bool:
        return self.step >= self.total_steps

    # --- logging -------------------------------------------------------------------------------
    def log(self, **values) -> None:
        """Record scalars for the current step; tensors are fetched in one batch every log_every steps."""
        for tag, v in values.items():
            self._pending[tag].append(v.detach() if isinstance(v, torch.Tensor) else float(v))

    def log_images(self, tag: str, images: torch.Tensor, nrow: int = 8) -> torch.Tensor:
        grid = image_grid(images, nrow)
        self.events.images(tag, grid, self._current)
        return grid

    def _flush_logs(self) -> dict[str, float]:
        if not self._pending:
            return {}
        tags = list(self._pending)
        # One device→host transfer for everything pending, instead of a sync per value per step.
        flat = [torch.as_tensor(v, dtype=torch.float32).reshape(()).cpu() if isinstance(v, torch.Tensor)
                else torch.tensor(v, dtype=torch.float32) for t in tags for v in self._pending[t]]
        values = torch.stack(flat).tolist() if flat else []
        means, i = {}, 0
        for t in tags:
            n = len(self._pending[t])
            chunk = values[i:i + n]
            i += n
            means[t] = sum(chunk) / n
        step = self.step - 1
        for t, m in means.items():
            self.history[t].append((step, m))
        self.events.scalars(means, step)
        self._pending.clear()
        return means

    # --- saving --------------------------------------------------------------------------------
    def stop(self) -> None:
        """End the loop after the current step: it saves a checkpoint and stops without an error.

        Use this rather than `break`: after a break the loop cannot know whether the step finished.
        """
        self._stop = True

    def save(self, *, blocking: bool = False):
        """Checkpoint the state as of `self.step` completed steps (called by the loop between steps)."""
        if self._left_mid_step is not None:
            raise RuntimeError(
                f"The loop was left during step {self._left_mid_step} (a break or an error), so the state "
                "may hold part of a step the checkpoint would not count. Not saving; to end early, call "
                "loop.stop() inside the step instead of break.")
        self._flush_logs()
        rng = rng_state()
        ranks = None
        if self.world.distributed:
            # Every process is here, at the same step. Networks, optimizers, schedulers and the scaler
            # are the same in all (DDP keeps them so); what each process holds of its own is its RNG
            # and everything else registered (a pool of its generated images, a State with values
            # from its own batch): those are kept per process.
            mine = {"rng": rng, "states": {k: to_host(o.state_dict()) for k, o in self.objects.items()
                                           if _per_process(o)}}
            ranks = gather(self.world, mine)
        if not self.world.main:
            self._last_save_time = time.monotonic()
            self._last_saved_step = self.step
            return None
        payload = {
            "state": capture(self.objects),
            "rng": rng,
            "config": self.config,
            "history": {t: list(p) for t, p in self.history.items()},
            "position": {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch},
            "meta": {"run": self.run_name, "loop": self.name, "total_steps": self.total_steps,
                     "saved_at": time.time(), "torch": str(torch.__version__)},
        }
        if ranks is not None:
            payload["ranks"] = ranks
            payload["meta"]["world_size"] = self.world.size
        self._acquire_lease()
        try:
            self.events.sync()
        except OSError as exc:   # Drive failing: the files stay on local disk and are copied next time
            if not self._sync_warned:
                self._sync_warned = True
                warnings.warn(f"[{self.name}] TensorBoard files could not be copied to {self.store.url} ({exc}); "
                              "they stay on this VM and are copied at a later save.", stacklevel=2)
        rec = self.ckpt.save(self.step, payload, blocking=blocking)
        self._last_save_time = time.monotonic()
        self._last_saved_step = self.step
        return rec

    def _acquire_lease(self) -> None:
        if self.lease.held or not self.world.main:
            return
        try:
            self.lease.acquire(self.take_over)
        except OSError as exc:   # Drive failing right now: train, and try again at each save
            if not self._lease_warned:
                self._lease_warned = True
                warnings.warn(f"[{self.name}] Could not write {self.lease.where} ({exc}), the file that keeps a "
                              "second session from training this run at the same time. Training goes on; it is "
                              "written at the next save that reaches the store.", stacklevel=3)

    def _due(self) -> bool:
        if self.save_every_steps and self.step % self.save_every_steps == 0:
            return True
        return time.monotonic() - self._last_save_time >= self.save_every_s

    def _check_vm_age(self) -> None:
        age = vm_age_hours()
        if self._vm_warned or age is None or age < VM_WARN_H or self.world.distributed:
            return
        self._vm_warned = True
        if flags.in_colab():
            left = max(0.0, VM_LIFETIME_H - age)
            warnings.warn(f"This Colab VM has been up {age:.1f} h; Colab recycles VMs after at most "
                          f"{VM_LIFETIME_H:.0f} h (about {left * 60:.0f} min left). A checkpoint is being saved "
                          "now and every few minutes; when the runtime disconnects, reconnect and Run all.",
                          stacklevel=3)
            self.save_every_s = min(self.save_every_s, 300)
            self.save()

    # --- the loop ------------------------------------------------------------------------------
    def _on_sigint(self, signum, frame):
        if self._interrupt:   # pressed twice: stop right now, without saving
            signal.default_int_handler(signum, frame)
        self._interrupt = True
        print(f"\n[{self.name}] Interrupt received: finishing this step and saving a checkpoint "
              "(press Interrupt again to stop at once; a checkpoint already being written still completes).",
              flush=True)

    def _install_sigint(self):
        if threading.current_thread() is not threading.main_thread():
            return None
        previous = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, self._on_sigint)
        # If the notebook's step raises, this generator is not closed while the traceback holds it:
        # restore the handler when the cell ends, so the next Interrupt works normally.
        try:
            from IPython import get_ipython
            shell = get_ipython()
        except ImportError:
            shell = None
        if shell is not None:
            def restore_handler(*_):
                if signal.getsignal(signal.SIGINT) == self._on_sigint:
                    signal.signal(signal.SIGINT, previous)
                shell.events.unregister("post_run_cell", restore_handler)
            shell.events.register("post_run_cell", restore_handler)
        return previous

    def __iter__(self):
        if self.done:
            print(f"[{self.name}] all {self.total_steps:,} steps done; nothing to train.")
            return
        self._acquire_lease()   # before anything is written: a second session stops here
        previous = self._install_sigint()
        bar = None
        if self.progress and self.world.main:
            from tqdm.auto import tqdm
            bar = tqdm(total=self.total_steps, initial=self.step, desc=self.name, dynamic_ncols=True,
                       smoothing=0.05)
        try:
            batches = None
            while self.step < self.total_steps:
                s = self.step
                batch = None
                if self.loader is not None:
                    epoch, pos = divmod(s, self.steps_per_epoch)
                    if batches is None or pos == 0:
                        batches = self.loader.epoch_batches(epoch, pos)
                    batch = next(batches)
                self._running = s
                yield s, batch
                del self._running
                self.step = s + 1
                if bar is not None:
                    bar.update(1)
                if self.step % self.log_every == 0:
                    means = self._flush_logs()
                    if bar is not None and means:
                        bar.set_postfix({k: f"{v:.4g}" for k, v in list(means.items())[:4]}, refresh=False)
                self.ckpt.poll()
                lost, interrupt, stop, due = self._agree()
                if lost:   # found by the heartbeat: another session owns the run
                    raise self.lease.lost or LeaseLost(f"[{self.name}] process 0 lost the run's lease; stopping.")
                if interrupt:
                    self.save(blocking=True)
                    self.ckpt.require_on_store(f"[{self.name}] Interrupted at step {self.step:,}")
                    raise Interrupted(
                        f"[{self.name}] stopped at step {self.step:,}; checkpoint saved in "
                        f"{self.ckpt.store.url}. Run the notebook again to continue from here.")
                if stop:
                    self.save(blocking=True)
                    self.ckpt.require_on_store(f"[{self.name}] Stopped at step {self.step:,}")
                    print(f"[{self.name}] stopped at step {self.step:,} as asked; checkpoint saved.")
                    return
                if due:
                    self.save()
                self._check_vm_age()
            (final,) = any_of(self.world, [self._last_saved_step != self.step or self.ckpt.unsynced is not None])
            if final:
                self.save(blocking=True)
            self.ckpt.wait()
            self.ckpt.require_on_store(f"[{self.name}] Finished {self.total_steps:,} steps")
            print(f"[{self.name}] finished {self.total_steps:,} steps; final checkpoint in {self.ckpt.store.url}")
        finally:
            if hasattr(self, "_running"):   # left by break, an error in the step, or close()
                self._left_mid_step = self._running
                del self._running
            self._stop = False
            if bar is not None:
                bar.close()
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
            self._interrupt = False
            if not self.ckpt.writing:   # else the lease goes stale after the write (or is this process's)
                self.lease.release()

    def _agree(self) -> tuple[bool, bool, bool, bool]:
        """(lease lost, interrupt, stop, save due) after a step: in one process its own view; with
        several, true if true in any of them (process 0 keeps the save clock), so all act together."""
        due = self.world.main and self.step < self.total_steps and self._due()
        flags = [self.lease.lost is not None, self._interrupt, self._stop, due]
        return tuple(any_of(self.world, flags))   # (one process: the flags as they are)

    def wait(self) -> None:
        """Wait for a background checkpoint write (and raise its error, if it failed)."""
        self.ckpt.wait()

