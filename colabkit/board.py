"""TensorBoard event files, mirrored to the run's store, and pictures: inline in a notebook, PNGs elsewhere.

Event files are written on the VM's local disk (Drive does not reliably sync a file that is
appended to for hours) and copied to the store with every checkpoint. On resume they are copied
back and the writer is reopened with purge_step, so TensorBoard drops whatever the interrupted
session logged after its last checkpoint and the curves continue without doubling back.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Callable

import torch

from . import flags
from .dist import current as current_world
from .flags import in_notebook
from .store import Store


def _summary_writer():
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception as exc:  # noqa: BLE001 - tensorboard missing or broken (setuptools >= 82 with tb 2.20)
        print(f"TensorBoard logging is off ({type(exc).__name__}: {exc}). Curves are still kept in the "
              "checkpoint (loop.history). Fix: pip install -U 'tensorboard>=2.21'.")
        return None
    return SummaryWriter


class EventLog:
    """A SummaryWriter on local disk whose files are mirrored to `mirror` (a Store)."""

    def __init__(self, local_dir: Path, mirror: Store, purge_step: int):
        self.local_dir = Path(local_dir)
        self.mirror = mirror
        self._synced: dict[str, int] = {}   # bytes of each event file the mirror is known to hold
        self._restore()
        writer_cls = _summary_writer()
        self.writer = writer_cls(str(self.local_dir), purge_step=purge_step) if writer_cls else None

    def _restore(self) -> None:
        """Bring back the mirrored files that the local disk lacks (a fresh VM has none)."""
        for name in self.mirror.list():
            dest = self.local_dir / name
            if not dest.exists():
                dest.parent.mkdir(parents=True, exist_ok=True)
                data = self.mirror.read_bytes(name)
                dest.write_bytes(data)
                self._synced[name] = len(data)

    def scalars(self, values: dict[str, float], step: int) -> None:
        if self.writer:
            for tag, v in values.items():
                self.writer.add_scalar(tag, v, step)

    def images(self, tag: str, grid: torch.Tensor, step: int) -> None:
        if self.writer:
            self.writer.add_image(tag, grid, step)

    def sync(self) -> None:
        """Flush and copy changed event files to the mirror."""
        if self.writer:
            self.writer.flush()
        if not self.local_dir.is_dir():
            return
        for path in sorted(self.local_dir.rglob("*")):
            if path.is_file():
                name = path.relative_to(self.local_dir).as_posix()
                if self._synced.get(name) == path.stat().st_size:
                    continue  # event files only grow: same length means same content
                data = path.read_bytes()
                self.mirror.write_bytes(name, data)
                self._synced[name] = len(data)

    def close(self) -> None:
        if self.writer:
            self.writer.close()


# --- in the notebook -----------------------------------------------------------------------------

def tensorboard(logdir, *, port: int = 6006, start: bool | None = None) -> str:
    """Show TensorBoard in the notebook (the %tensorboard magic); elsewhere print the command.

    `start=None` starts it only in a notebook outside smoke mode. Returns the CLI command.
    """
    logdir = str(logdir)
    command = f"tensorboard --logdir {logdir} --port {port}"
    if start is None:
        start = in_notebook() and not flags.smoke_mode()
    if not start:
        print(f"TensorBoard: run  {command}  and open http://localhost:{port}/")
        return command
    from IPython import get_ipython

    shell = get_ipython()
    try:
        shell.run_line_magic("load_ext", "tensorboard")
        shell.run_line_magic("tensorboard", f"--logdir {logdir} --port {port}")
    except Exception as exc:  # noqa: BLE001 - the magic fails in many ways; none should stop training
        print(f"TensorBoard did not start ({type(exc).__name__}: {exc}).\n"
              f"Common fixes: a stale instance — run `!rm -rf /tmp/.tensorboard-info` and this cell "
              f"again; another logdir already on port {port} — call ck.tensorboard(..., port={port + 1}); "
              "tensorboard 2.20 with setuptools >= 82 — `pip install -U 'tensorboard>=2.21'`.\n"
              "The curves are also drawn inline by ck.plot_history(loop.history).", file=sys.stderr)
    return command


# Where figures go outside a notebook: setup() points this at <run.work>/figures. Before any
# setup(), the folder _default_figure_folder() names: colabkit.env sets it to <work>/figures.
_figure_folder: Path | None = None
_default_figure_folder: Callable[[], Path] = lambda: Path.cwd() / "figures"
_figures_saved: dict[Path, int] = {}


def use_figure_folder(folder) -> None:
    """Save the figures of scripts (see :func:`show`) into ``folder`` from now on."""
    global _figure_folder
    _figure_folder = Path(folder)


def set_default_figure_folder(where: Callable[[], Path]) -> None:
    """Where figures go before any :func:`use_figure_folder`: ``where()``, asked at each save."""
    global _default_figure_folder
    _default_figure_folder = where


def _figure_name(fig) -> str:
    title = fig.get_suptitle() if hasattr(fig, "get_suptitle") else ""   # matplotlib >= 3.8
    for ax in fig.axes:   # else the first panel's title, else its y label
        if title:
            break
        title = ax.get_title()
    for ax in fig.axes[:1]:
        title = title or ax.get_ylabel()
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60].strip("-")
    return slug or "figure"


def _save_figure(fig) -> Path:
    folder = _default_figure_folder() if _figure_folder is None else Path(_figure_folder)
    folder.mkdir(parents=True, exist_ok=True)
    number = _figures_saved.get(folder, 0) + 1
    _figures_saved[folder] = number
    path = folder / f"{number:02d}-{_figure_name(fig)}.png"
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def show(fig=None) -> list[Path]:
    """Show a figure (``fig=None``: every open figure), then free it.

    In a notebook it is drawn inline (plt.show). Anywhere else, such as the main job that runs the
    notebooks' script twins, nothing can be shown: each figure is saved as a PNG in the run's local
    folder (``<run.work>/figures/NN-title.png``, numbered in drawing order), its path is printed,
    and it is closed. Returns the paths saved.
    """
    import matplotlib.pyplot as plt

    if not current_world().main:   # several processes (torchrun): process 0 alone draws
        plt.close("all") if fig is None else plt.close(fig)
        return []
    if in_notebook():
        plt.show()
        if fig is not None:
            plt.close(fig)
        return []
    figures = [fig] if fig is not None else [plt.figure(n) for n in plt.get_fignums()]
    paths = []
    for f in figures:
        path = _save_figure(f)
        plt.close(f)
        print(f"figure: {path}")
        paths.append(path)
    return paths


def image_grid(images: torch.Tensor, nrow: int = 8) -> torch.Tensor:
    """A 3×H×W grid in [0, 1] from a batch in [-1, 1]."""
    from torchvision.utils import make_grid

    x = images.detach().float().cpu().clamp(-1, 1).add(1).div(2)
    return make_grid(x, nrow=nrow, padding=2, pad_value=1.0)


def show_images(images: torch.Tensor, nrow: int = 8, title: str | None = None, ax=None, size: float = 6.0):
    """Draw a batch in [-1, 1] as one grid with matplotlib and show it (see :func:`show`).

    With ``ax`` given, it draws into that panel of the caller's figure and leaves showing it to the caller.
    """
    import matplotlib.pyplot as plt

    grid = image_grid(images, nrow)
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(size, size * grid.shape[1] / grid.shape[2]))
    ax.imshow(grid.permute(1, 2, 0).numpy())
    ax.axis("off")
    if title:
        ax.set_title(title)
    if own:
        show(fig)
    return ax


def plot_history(history: dict, tags=None, title: str | None = None, logy: bool = False):
    """Curves from loop.history: one panel per tag, shown (see :func:`show`)."""
    import matplotlib.pyplot as plt

    tags = [t for t in (tags or sorted(history)) if history.get(t)]
    if not tags:
        print("Nothing logged yet.")
        return None
    fig, axes = plt.subplots(1, len(tags), figsize=(3.2 * len(tags), 2.6), squeeze=False)
    for ax, tag in zip(axes[0], tags):
        steps, values = zip(*history[tag])
        ax.plot(steps, values)
        ax.set_title(tag)
        ax.set_xlabel("step")
        if logy:
            ax.set_yscale("log")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    show(fig)
    return fig

