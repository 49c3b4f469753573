"""Statistics of a real data set, computed once and kept in a Drive folder (or any store)."""

from __future__ import annotations

import io
import os
import re
import warnings

import numpy as np
import torch

from ..store import open_store
from .samples import Extractor, Samples, Stats
from .scores import _moments, feature_stats


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "_"


def stats_filename(name: str, extractor: Extractor) -> str:
    """The file cached_stats uses for data set `name` under `extractor`."""
    return f"fid-stats-{_safe(name)}-{_safe(_extractor_name(extractor))}.npz"


def _extractor_name(extractor: Extractor) -> str:
    name = getattr(extractor, "name", None)
    if not isinstance(name, str) or not name:
        raise ValueError("The extractor needs a `name` attribute (a non-empty str) to key cached statistics.")
    return name


def cached_stats(
    name: str,
    samples: Samples,
    extractor: Extractor,
    cache_dir: str | os.PathLike | None,
    batch_size: int = 100,
    device: str | torch.device | None = None,
    progress: bool = True,
    *,
    n: int | None = None,
) -> Stats:
    """feature_stats of a fixed data set, stored in cache_dir and reused in later sessions.

    The file is keyed by `name` and the extractor's `name`, so give the data set a name that
    says what it is (e.g. "cifar10-train-50000"); change the name when the data change. In
    Colab use a Drive folder (run.cache). cache_dir may be a local folder or an fsspec URL;
    None computes without caching. An unreadable cached file is recomputed and replaced.
    """
    ext_name = _extractor_name(extractor)
    if cache_dir is None:
        return feature_stats(samples, extractor, batch_size, device, progress, n=n)
    filename = stats_filename(name, extractor)
    cache = open_store(cache_dir)   # a folder or an fsspec URL; writes are temp-file-then-rename
    data = cache.read_bytes(filename) if cache.exists(filename) else None
    if data is not None:
        try:
            with np.load(io.BytesIO(data)) as f:
                if str(f["name"]) != name or str(f["extractor"]) != ext_name:
                    raise ValueError(f"it holds {f['name']!s} / {f['extractor']!s}")
                mu, sigma = np.asarray(f["mu"], np.float64), np.asarray(f["sigma"], np.float64)
            if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)) or not np.isfinite(sigma).all():
                raise ValueError("bad shapes or values")
            return mu, sigma
        except Exception as exc:
            warnings.warn(f"Cached FID statistics {filename} in {cache_dir} are unusable ({exc}); recomputing.",
                          RuntimeWarning, stacklevel=2)
    mu, sigma, count = _moments(samples, extractor, n=n, batch_size=batch_size, device=device,
                                progress=progress, desc=f"FID features ({name})")
    buf = io.BytesIO()
    np.savez(buf, mu=mu, sigma=sigma, name=np.array(name), extractor=np.array(ext_name), count=np.array(count))
    cache.write_bytes(filename, buf.getvalue())
    return mu, sigma

