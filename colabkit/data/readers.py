"""Reading the data sets' own file formats: Python 2 pickles (StackGAN, CIFAR) and CIFAR-10 batches."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np

from .archive import check_layout
from .errors import CorruptFileError
from .sources import CIFAR10_DIRNAME


def load_py2_pickle(path):
    """``pickle.load`` for Python 2 pickles (the StackGAN and CIFAR files): encoding="latin1".

    Only for files from trusted sources: unpickling can run code. A truncated or corrupt
    file raises :class:`CorruptFileError`.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="latin1")
    except (EOFError, pickle.UnpicklingError, ValueError, TypeError, IndexError, KeyError,
            AttributeError, ImportError, struct.error, UnicodeDecodeError) as e:
        size = path.stat().st_size
        raise CorruptFileError(
            f"{path} ({size} bytes) could not be read as a pickle: {type(e).__name__}: {e}. "
            "The file is truncated or corrupt (an interrupted download or extraction, or a Drive copy "
            "that had not finished syncing). Delete it and extract or download it again."
        ) from e


def _entry(d: dict, key: str, path: Path):
    if key in d:
        return d[key]
    if key.encode() in d:
        return d[key.encode()]
    raise CorruptFileError(f"{path} has no {key!r} entry (keys: {sorted(map(str, d))}): "
                           "not a CIFAR-10 batch file.")


def read_cifar10(root, train: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Read the ``cifar-10-batches-py`` pickles (no md5 check, so stand-ins work too).

    ``root`` is the folder that holds ``cifar-10-batches-py`` or that folder itself. Returns
    ``(images, labels)``: uint8 ``(N, 32, 32, 3)`` and int64 ``(N,)``.
    """
    root = Path(root)
    folder = root if (root / "test_batch").exists() or (root / "data_batch_1").exists() \
        else root / CIFAR10_DIRNAME
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    check_layout(folder, names)
    images, labels = [], []
    for name in names:
        path = folder / name
        d = load_py2_pickle(path)
        if not isinstance(d, dict):
            raise CorruptFileError(f"{path} holds a {type(d).__name__}, not a CIFAR-10 batch dict.")
        data = np.asarray(_entry(d, "data", path), dtype=np.uint8)
        y = np.asarray(_entry(d, "labels", path), dtype=np.int64)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(y) != len(data):
            raise CorruptFileError(f"{path}: data has shape {data.shape} and {len(y)} labels; expected "
                                   "(N, 3072) and N labels.")
        images.append(data)
        labels.append(y)
    x = np.concatenate(images).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x), np.concatenate(labels)
