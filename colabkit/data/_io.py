"""Small file helpers shared by the download, the cache and the archive code: progress bars, removal."""

from __future__ import annotations

import shutil
from pathlib import Path

from tqdm.auto import tqdm

_CHUNK = 1 << 20   # bytes per read and write when copying, hashing or extracting


def _bar(total, desc: str, enabled: bool):
    """A byte progress bar (tqdm.auto: a widget in notebooks, text elsewhere)."""
    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                disable=not enabled, leave=True)


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _remove_tree_or_file(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        _unlink(path)
