"""The persistent archive cache of :func:`colabkit.data.fetch` (Google Drive in Colab).

A new Colab session copies an archive from here instead of downloading it again. Files are
written through colabkit's store (:mod:`colabkit.store`, the one atomic-write path): under a
temporary name inside the cache folder, renamed into place when complete, so a VM that dies
mid-copy leaves no half-written archive under the real name. :func:`place_in_cache` puts a file
you already have there (a stand-in archive, a copy downloaded by hand) for fetch to find.
"""

from __future__ import annotations

import glob
import os
import urllib.parse
import urllib.request
from pathlib import Path

from ..store import TMP_PREFIX, FsspecStore, LocalStore
from ._io import _bar, _unlink


class _Cache:
    """The persistent archive cache: a local folder (Drive is mounted as one) or an fsspec URL."""

    def __init__(self, cache_dir, filename: str):
        self.filename = filename
        self.fs = None
        text = os.fspath(cache_dir)
        if "://" in text and not text.startswith("file://"):
            self.store = FsspecStore(text)    # memory://, gs://, ...
            self.fs, self.root = self.store.fs, self.store.root
            self.path = f"{self.root}/{filename}"
            self.display = f"{text.rstrip('/')}/{filename}"
        else:
            if text.startswith("file://"):
                text = urllib.request.url2pathname(urllib.parse.urlsplit(text).path)
            self.root = Path(text).expanduser()
            self.store = LocalStore(self.root)
            self.path = self.root / filename
            self.display = str(self.path)

    def exists(self) -> bool:
        if self.fs is not None:
            return self.fs.exists(self.path)
        return self.path.is_file()

    def size(self):
        if self.fs is not None:
            return self.fs.size(self.path)
        return self.path.stat().st_size

    def open_read(self):
        if self.fs is not None:
            return self.fs.open(self.path, "rb")
        return open(self.path, "rb")

    def delete(self) -> None:
        self.store.delete(self.filename)

    def store_file(self, src: Path, progress: bool) -> None:
        """Copy ``src`` in: streamed into a temporary name in the cache folder, flushed, renamed.

        Drive is mounted with FUSE: no symlinks, and a rename from /content into it crosses
        devices, so the bytes are written inside the cache folder itself and only then renamed.
        A failure raises an OSError (:class:`colabkit.store.StoreError`) and leaves nothing behind.
        """
        if self.fs is None and self.root.is_dir():
            # Leftovers of a VM that died while caching this file (and the names older versions used).
            for pattern in (f"{TMP_PREFIX}*-{glob.escape(self.filename)}", f".{glob.escape(self.filename)}.*.partial"):
                for stale in self.root.glob(pattern):
                    _unlink(stale)
        with _bar(Path(src).stat().st_size, f"caching {self.filename}", progress) as bar:
            self.store.put_file(self.filename, src, on_chunk=bar.update)


def place_in_cache(src, cache_dir, name: str | None = None, *, progress: bool = False) -> str:
    """Put the local file ``src`` into the archive cache ``cache_dir`` as ``name`` (default: its own name).

    :func:`fetch` then finds it there instead of downloading: how smoke mode puts a stand-in archive
    where the real one is cached, and how a learner who downloaded a file by hand hands it over.
    The copy is streamed and atomic: the cache holds the whole file or none of it. Returns where
    it went (a path or URL, for printing).
    """
    src = Path(src)
    name = name or src.name
    if name in (".", "..") or "/" in name or "\\" in name:
        raise ValueError(f"name must be a plain file name, got {name!r}")
    if not src.is_file():
        raise FileNotFoundError(f"place_in_cache: {src} is not a file; give the path of the archive to cache.")
    cache = _Cache(cache_dir, name)
    cache.store_file(src, progress)
    return cache.display
