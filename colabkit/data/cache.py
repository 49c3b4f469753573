"""The persistent archive cache of :func:`colabkit.data.fetch` (Google Drive in Colab).

A new Colab session copies an archive from here instead of downloading it again. Files arrive
under a temporary name inside the cache folder and are renamed into place when complete, so a
VM that dies mid-copy leaves no half-written archive under the real name.
"""

from __future__ import annotations

import glob
import os
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

from ._io import _CHUNK, _bar, _unlink


class _Cache:
    """The persistent archive cache: a local folder (Drive is mounted as one) or an fsspec URL."""

    def __init__(self, cache_dir, filename: str):
        self.filename = filename
        self.fs = None
        text = os.fspath(cache_dir)
        if "://" in text and not text.startswith("file://"):
            import fsspec  # only needed for URL caches (memory://, gs://, ...)

            self.fs, root = fsspec.core.url_to_fs(text)
            self.root = root.rstrip("/")
            self.path = f"{self.root}/{filename}"
            self.display = f"{text.rstrip('/')}/{filename}"
        else:
            if text.startswith("file://"):
                text = urllib.request.url2pathname(urllib.parse.urlsplit(text).path)
            self.root = Path(text).expanduser()
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
        if self.fs is not None:
            if self.fs.exists(self.path):
                self.fs.rm(self.path)
        else:
            _unlink(self.path)

    def store(self, src: Path, progress: bool) -> None:
        """Copy ``src`` in under a temporary name, flush and fsync, then rename into place.

        Drive is mounted with FUSE: no symlinks, and a rename from /content into it crosses
        devices, so the bytes are written inside the cache folder itself and only then renamed.
        """
        tmp_name = f".{self.filename}.{uuid.uuid4().hex[:8]}.partial"
        size = src.stat().st_size
        if self.fs is not None:
            self.fs.makedirs(self.root, exist_ok=True)
            tmp = f"{self.root}/{tmp_name}"
            try:
                with open(src, "rb") as fin, self.fs.open(tmp, "wb") as fout, \
                        _bar(size, f"caching {self.filename}", progress) as bar:
                    while chunk := fin.read(_CHUNK):
                        fout.write(chunk)
                        bar.update(len(chunk))
                self.fs.mv(tmp, self.path)
            except BaseException:
                if self.fs.exists(tmp):
                    self.fs.rm(tmp)
                raise
            return
        self.root.mkdir(parents=True, exist_ok=True)
        # Leftovers of a VM that died while caching this file.
        for stale in self.root.glob(f".{glob.escape(self.filename)}.*.partial"):
            _unlink(stale)
        tmp = self.root / tmp_name
        try:
            with open(src, "rb") as fin, open(tmp, "wb") as fout, \
                    _bar(size, f"caching {self.filename}", progress) as bar:
                while chunk := fin.read(_CHUNK):
                    fout.write(chunk)
                    bar.update(len(chunk))
                fout.flush()
                os.fsync(fout.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            _unlink(tmp)
            raise
        try:  # make the rename durable where the file system allows it (Drive's FUSE may not)
            fd = os.open(self.root, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            pass
