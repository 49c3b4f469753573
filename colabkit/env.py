"""Where the notebook runs: Colab or not, Drive, the GPU and the precision to train in; `setup()`."""

from __future__ import annotations

import json
import os
import random
import re
import sys
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from . import board, flags
from .board import use_figure_folder
from .config import SetupError
from .dist import World, copy_from_main
from .dist import average as average_over
from .dist import init as join_world
from .dist import wrap as wrap_ddp
from .loader import derive_seed
from .loop import Loop
from .store import Store, open_store

DRIVE_MOUNT = "/content/drive"
DRIVE_HOME = "/content/drive/MyDrive/colabkit"
COLAB_WORK = "/content/colabkit"



class DriveMountError(SetupError):
    pass


class NoGPUError(SetupError):
    pass


def repo_root(start: Path | None = None) -> Path | None:
    """The nearest folder above `start` (default: cwd) holding this project's pyproject.toml."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "colabkit").is_dir():
            return folder
    return None


def mount_drive(mountpoint: str | None = None, timeout_ms: int = 120_000) -> Path:
    """Mount Google Drive (asks the learner to authorise in the browser) and return MyDrive."""
    mountpoint = mountpoint or DRIVE_MOUNT
    try:
        from google.colab import drive
    except ImportError as exc:
        raise DriveMountError("google.colab is not available: Drive can only be mounted inside Colab. "
                              "Outside Colab, set COLABKIT_HOME to a local folder.") from exc
    try:
        drive.mount(mountpoint, timeout_ms=timeout_ms)
    except Exception as exc:  # noqa: BLE001 - mount fails with many exception types
        raise DriveMountError(
            f"Google Drive could not be mounted at {mountpoint} ({type(exc).__name__}: {exc}).\n"
            "Run this cell again and allow access in the pop-up (all the permissions it asks for). "
            "If it keeps failing: Runtime → Disconnect and delete runtime, then Run all.\n"
            "To train without Drive (checkpoints are then lost when the VM is recycled), set "
            "os.environ['COLABKIT_HOME'] = '/content/runs' before this cell.") from exc
    mydrive = Path(mountpoint) / "MyDrive"
    if not mydrive.is_dir():
        raise DriveMountError(f"Drive mounted at {mountpoint} but {mydrive} is missing: mount it again.")
    return mydrive


# --- device and precision -------------------------------------------------------------------------

@dataclass
class Precision:
    """How to train: "bf16" (autocast, compute capability >= 8.0), "fp16" (autocast + GradScaler), "fp32"."""

    name: str
    device_type: str

    @property
    def dtype(self):
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.name)

    @classmethod
    def of(cls, dtype, device_type: str) -> Precision:
        """The precision whose autocast dtype is `dtype` (None: fp32)."""
        names = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
        if dtype not in names:
            raise ValueError(f"no precision computes in {dtype}: use torch.bfloat16, torch.float16 or None")
        return cls(names[dtype], device_type)

    def autocast(self, cache: bool = True):
        """The autocast context (a no-op for fp32). cache=False recasts the weights at every use,
        as CUDA graphs need (a replay must not reuse casts made at recording time)."""
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype, cache_enabled=cache)

    def make_scaler(self) -> torch.amp.GradScaler:
        """A GradScaler that is active only for fp16; a disabled one elsewhere keeps the code uniform."""
        return torch.amp.GradScaler(self.device_type, enabled=self.name == "fp16")


@dataclass
class DeviceInfo:
    device: torch.device
    name: str
    memory_gb: float | None = None
    capability: tuple[int, int] | None = None

    def best_precision(self) -> Precision:
        if self.device.type != "cuda":
            return Precision("fp32", self.device.type)
        if self.capability and self.capability >= (8, 0):
            return Precision("bf16", "cuda")
        return Precision("fp16", "cuda")


NO_GPU_MESSAGE = (
    "No GPU is attached to this runtime. In Colab: Runtime → Change runtime type → choose a GPU "
    "(T4 on the free tier) → Save, then Runtime → Run all. Training on the CPU would take weeks; "
    "to do it anyway, set ALLOW_CPU = True in the settings cell (or COLABKIT_ALLOW_CPU=1).")


def detect_device(allow_cpu: bool = False) -> DeviceInfo:
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return DeviceInfo(torch.device("cuda"), props.name, props.total_memory / 2**30,
                          (props.major, props.minor))
    if not allow_cpu:
        raise NoGPUError(NO_GPU_MESSAGE)
    return DeviceInfo(torch.device("cpu"), f"CPU ({os.cpu_count()} cores)")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# --- the run ----------------------------------------------------------------------------------------

@dataclass
class Run:
    name: str
    config: dict
    device: torch.device
    info: DeviceInfo
    precision: Precision
    store: Store
    work: Path
    data_dir: Path
    cache: Path      # downloaded archives: <home>/cache; on this machine's disk when the home is a bucket URL
    seed: int
    world: World = field(default_factory=World)

    @property
    def home(self) -> str:
        return self.store.url

    @property
    def main(self) -> bool:
        """True in the process that prints, draws, evaluates and writes checkpoints (always, unless
        the script was started by torchrun with several processes: then only in rank 0)."""
        return self.world.main

    def ddp(self, module: torch.nn.Module) -> torch.nn.Module:
        """`module` wrapped in DistributedDataParallel when several processes train (torchrun), the
        module itself otherwise. Checkpoints store the module inside either way."""
        return wrap_ddp(module, self.world, self.device)

    @contextmanager
    def main_first(self):
        """With several processes, process 0 runs the block first (downloads, extracts) while the
        others wait, then they run it (finding everything in place). One process: just the block."""
        if not self.world.distributed:
            yield
            return
        import torch.distributed as dist

        if not self.world.main:
            dist.barrier()
        try:
            yield
        finally:
            if self.world.main:
                dist.barrier()

    def leave_to_main(self) -> None:
        """After training with several processes: the others end here (exit status 0), process 0
        goes on alone (drawing, evaluating, playing). With one process: nothing happens."""
        if self.world.main:
            return
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()   # local: process 0 does no collective after training
        sys.stdout.flush()
        sys.stderr.flush()
        # Straight out, without the interpreter's teardown: there, gloo's threads sometimes abort a
        # finished process ("terminate called without an active exception", exit status -6), which
        # torchrun reports as a failed run. This process holds no lease and writes no checkpoint.
        os._exit(0)

    def copy_from_main(self, module: torch.nn.Module) -> torch.nn.Module:
        """`module` in every process made equal to process 0's, weights and batch-norm statistics (one
        process: unchanged). For a network trained in DDP that is then used in evaluation mode."""
        return copy_from_main(self.world, module)

    def average(self, value: torch.Tensor) -> torch.Tensor:
        """`value` averaged over the processes (itself when one process trains)."""
        return average_over(self.world, value)

    def loop(self, name: str = "train", **kwargs):
        """A resumable training loop whose checkpoints live in <home>/<name>/ (see colabkit.loop.Loop)."""
        return Loop(self.store, self.work, name, config=self.config, run_name=self.name, world=self.world,
                    **kwargs)

    def saved_steps(self) -> dict[str, int]:
        """The newest checkpoint step of each loop already in the store (not verified here)."""
        out = {}
        for name in self.store.list():
            m = re.match(r"^(.+)/checkpoints/ckpt-(\d{9})\.pt$", name)
            if m:
                out[m.group(1)] = max(out.get(m.group(1), -1), int(m.group(2)))
        return out


def _normalise(config: dict | None) -> dict:
    try:
        return json.loads(json.dumps(config or {}))
    except TypeError as exc:
        raise SetupError(f"The settings must be plain values (numbers, strings, lists, dicts): {exc}") from exc


def _default_home(colab: bool) -> str:
    if os.environ.get("COLABKIT_HOME"):
        return os.environ["COLABKIT_HOME"]
    if colab:
        return str(mount_drive() / "colabkit")
    root = repo_root()
    return str((root / "runs") if root else Path.home() / "colabkit-runs")


def _default_work(colab: bool) -> Path:
    if os.environ.get("COLABKIT_WORK"):
        return Path(os.environ["COLABKIT_WORK"])
    if colab:
        return Path(COLAB_WORK)
    root = repo_root()
    return (root / ".work") if root else Path.home() / "colabkit-work"


# Figures a script draws before any setup() go to the default scratch folder (board sits below env).
board.set_default_figure_folder(lambda: _default_work(flags.in_colab()) / "figures")


def setup(name: str, config: dict | None = None, *, seed: int | None = None, allow_cpu: bool | None = None,
          precision: str | None = None, deterministic: bool | None = None, verbose: bool = True) -> Run:
    """Mount Drive (in Colab), make the run's folders, pick device and precision, seed, print a table.

    In smoke mode the run name gets a `-smoke` suffix, the CPU is allowed and algorithms are made
    deterministic (so resumed runs can be compared bit for bit).
    """
    smoke = flags.smoke_mode()
    colab = flags.in_colab()
    if smoke:
        name = f"{name}-smoke"
    config = _normalise(config)
    if seed is None:   # ck.settings() keeps the settings' own names: SEED
        seed = config.get("seed", config.get("SEED", 0))
    seed = int(seed)
    if allow_cpu is None:
        allow_cpu = smoke or flags._flag("COLABKIT_ALLOW_CPU")
    deterministic = smoke if deterministic is None else deterministic

    info = detect_device(allow_cpu)
    world = join_world(info.device.type)   # torchrun: join the process group, one GPU per process
    if world.distributed and info.device.type == "cuda":
        info = replace(info, device=torch.device("cuda", world.local_rank))
    if world.distributed:
        # The number of processes sets the global batch: resuming with another one is a new setting.
        config = {**config, "world_size": world.size}
    prec = info.best_precision()
    precision = precision or os.environ.get("COLABKIT_PRECISION")
    if precision:
        if precision not in {"bf16", "fp16", "fp32"}:
            raise SetupError(f"precision must be bf16, fp16 or fp32, not {precision!r}")
        prec = Precision(precision, info.device.type)

    root = _default_home(colab)
    store = open_store(root.rstrip("/") + "/" + name)
    work_root = _default_work(colab)
    work = work_root / name
    work.mkdir(parents=True, exist_ok=True)
    use_figure_folder(work / "figures")   # figures of a script (not a notebook) are saved there as PNGs
    data_dir = work_root / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    cache = Path(root) / "cache" if "://" not in root else work_root / "cache"
    cache.mkdir(parents=True, exist_ok=True)

    # Each process draws its own noise (rank 0 as a single process would); DDP copies rank 0's
    # initial weights to the others when a network is wrapped.
    seed_everything(seed if world.rank == 0 else derive_seed(seed, world.rank))
    if not world.main:   # one process prints; the others' output is kept in a file
        sys.stdout = open(work / f"rank-{world.rank}.log", "a", buffering=1)
    if deterministic:
        torch.backends.cudnn.benchmark = False
        if info.device.type == "cuda":
            # Matters for CUDA kernels only; it also imports the compiler stack (seconds), so skip on CPU,
            # whose kernels are deterministic for a fixed thread count (tests/test_resume.py checks it).
            torch.use_deterministic_algorithms(True, warn_only=True)
    elif info.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    run = Run(name=name, config=config, device=info.device, info=info, precision=prec, store=store,
              work=work, data_dir=data_dir, cache=cache, seed=seed, world=world)
    if verbose and world.main:
        print_summary(run, colab=colab, smoke=smoke)
    return run


def print_summary(run: Run, *, colab: bool, smoke: bool) -> None:
    info = run.info
    gpu = info.name
    rows = [("device", gpu)]
    if info.memory_gb is not None:
        rows.append(("GPU memory", f"{info.memory_gb:.1f} GiB"))
    if info.capability is not None:
        rows.append(("compute capability", f"{info.capability[0]}.{info.capability[1]}"))
    why = {"bf16": "bfloat16 autocast (compute capability >= 8.0)",
           "fp16": "float16 autocast + GradScaler (no fast bf16 on this GPU)",
           "fp32": "float32"}[run.precision.name]
    rows += [
        ("precision", why),
        ("environment", "Google Colab" if colab else "local"),
        *([("processes", f"{run.world.size} (torchrun, {run.world.backend}); each trains on its own slice "
                         "of every batch")] if run.world.distributed else []),
        ("smoke mode", "ON: tiny sizes and stand-in data" if smoke else "off"),
        ("checkpoints + logs", run.home),
        ("local scratch", str(run.work)),
        ("data sets", str(run.data_dir)),
        ("archive cache", str(run.cache) + (" (this machine's disk: the home is a bucket, archives are "
                                             "downloaded again on a new machine)" if "://" in run.home else "")),
        ("seed", str(run.seed)),
    ]
    saved = run.saved_steps()
    rows.append(("resuming", ", ".join(f"{k} from step {v:,}" for k, v in sorted(saved.items()))
                 if saved else "no: a new run"))
    width = max(len(k) for k, _ in rows)
    print(f"colabkit run '{run.name}'")
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
    if info.device.type == "cpu" and not smoke:
        print("  WARNING: " + NO_GPU_MESSAGE.split(" Training")[0] + " You asked for the CPU: it will be slow.")
