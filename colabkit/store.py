"""Where a run's files persist: a local folder (Google Drive is one, once mounted) or an fsspec URL.

Every write to a folder goes to a temporary name in the destination folder and is renamed into
place, so a reader never sees half a file under the real name. On Drive that matters twice: the VM
can die mid-write, and Drive syncs a file some time after it is closed.

Object stores (an S3 or Google Cloud Storage bucket) have no rename: "moving" an object copies it
and deletes the original, which doubles the upload and is not atomic. There a single PUT (or a
multipart upload, which becomes visible only when it completes) is already all-or-nothing, so a
write goes straight to the final name. The checkpoint layer reads every checkpoint back and checks
its SHA-256 either way, and prunes only after that.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from pathlib import Path
from typing import Callable, Iterable, Iterator

TMP_PREFIX = ".tmp-"
_open = open   # the tests swap in a file that fills the disk part-way
_CHUNK = 1 << 20   # bytes per read when put_file streams a file in


class StoreError(OSError):
    """A write to the store failed; the message says what to do about it."""


def _explain(exc: OSError, where: str) -> StoreError:
    if exc.errno == errno.ENOSPC:
        msg = (f"No space left while writing {where}. Earlier checkpoints are untouched. "
               "Free space (delete old runs, empty the Drive trash) or lower keep=, then run again.")
    elif exc.errno == errno.ENOTCONN:
        msg = (f"The folder behind {where} is not connected (Google Drive dropped: 'Transport endpoint "
               "is not connected'). Mount Drive again (drive.mount(..., force_remount=True), or re-run the "
               "setup cell).")
    elif exc.errno == errno.EIO:
        msg = (f"Input/output error while writing {where} (Google Drive dropped or is overloaded). "
               "Mount Drive again (drive.mount(..., force_remount=True), or re-run the setup cell).")
    else:
        msg = f"Could not write {where}: {exc}"
    err = StoreError(exc.errno, msg)
    err.__cause__ = exc
    return err


class Store:
    """A flat namespace of files under one root; names may contain '/'."""

    url: str

    def write_bytes(self, name: str, data: bytes) -> None:
        raise NotImplementedError

    def put_file(self, name: str, src: str | os.PathLike, on_chunk: Callable[[int], object] | None = None) -> None:
        """Copy the local file ``src`` in as ``name``, streamed (constant memory), atomic like write_bytes.

        ``on_chunk(n)`` is called after each n bytes written (a progress bar's update).
        """
        raise NotImplementedError

    def read_bytes(self, name: str) -> bytes:
        raise NotImplementedError

    def list(self, prefix: str = "") -> list[str]:
        raise NotImplementedError

    def delete(self, name: str) -> None:
        raise NotImplementedError

    def exists(self, name: str) -> bool:
        return name in self.list(os.path.dirname(name))

    def sub(self, folder: str) -> Store:
        raise NotImplementedError

    def clean_temp(self) -> list[str]:
        """Delete temporary files left by writes that never finished (the VM died mid-write)."""
        raise NotImplementedError

    def free_bytes(self) -> int | None:
        """Free space where this store writes, as the file system reports it; None if unknown."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


def _chunks_of(src: str | os.PathLike, on_chunk: Callable[[int], object] | None) -> Iterator[bytes]:
    with open(src, "rb") as f:
        while chunk := f.read(_CHUNK):
            yield chunk
            if on_chunk is not None:
                on_chunk(len(chunk))


def _sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable where the file system allows it (Drive's FUSE may not)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _existing_ancestor(path: Path) -> Path:
    path = path.absolute()
    while not path.is_dir() and path != path.parent:
        path = path.parent
    return path


class LocalStore(Store):
    def __init__(self, root: str | os.PathLike, *, _anchor: Path | None = None):
        self.root = Path(root)
        self.url = str(self.root)
        # The nearest folder that existed when the store was opened (on Colab: inside the Drive mount).
        # Writes never create it again: if it vanished, Drive was unmounted, and recreating the path
        # would put checkpoints on the VM's disk under the empty mount point, hidden by the next mount.
        self.anchor = _anchor if _anchor is not None else _existing_ancestor(self.root)

    def _path(self, name: str) -> Path:
        return self.root / name

    def _check_anchor(self, where: Path, doing: str = "write") -> None:
        if not self.anchor.is_dir():
            raise StoreError(errno.ENOENT, (
                f"Could not {doing} {where}: the folder {self.anchor} has vanished (Google Drive was "
                "unmounted or dropped). Mount Drive again (drive.mount(..., force_remount=True), or re-run "
                "the setup cell)."))

    def write_bytes(self, name: str, data: bytes) -> None:
        view = memoryview(data)
        # Chunked so a full disk surfaces part-way, as it does for a real large file.
        self._write(name, (view[start:start + (1 << 24)] for start in range(0, len(view), 1 << 24)))

    def put_file(self, name: str, src: str | os.PathLike, on_chunk: Callable[[int], object] | None = None) -> None:
        # Large files copied once (archives): the rename is made durable too, where the folder allows it.
        self._write(name, _chunks_of(src, on_chunk), sync_folder=True)

    def _write(self, name: str, chunks: Iterable, *, sync_folder: bool = False) -> None:
        """The one way files are written here: a temporary name beside the target, fsync, rename."""
        path = self._path(name)
        tmp = path.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex[:8]}-{path.name}")
        self._check_anchor(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with _open(tmp, "wb") as f:
                for chunk in chunks:
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException as exc:   # an Interrupt mid-copy too: no half-written file stays behind
            try:
                tmp.unlink()
            except OSError:
                pass
            if isinstance(exc, OSError):
                raise _explain(exc, str(path)) from exc
            raise
        if sync_folder:
            _sync_folder(path.parent)

    def read_bytes(self, name: str) -> bytes:
        return self._path(name).read_bytes()

    def list(self, prefix: str = "") -> list[str]:
        base = self._path(prefix)
        if not base.is_dir():
            self._check_anchor(base, "list")   # a vanished mount is not an empty folder
            return []
        out = []
        for p in base.rglob("*"):
            if p.is_file() and not p.name.startswith(TMP_PREFIX):
                out.append(p.relative_to(self.root).as_posix())
        return sorted(out)

    def delete(self, name: str) -> None:
        try:
            self._path(name).unlink()
        except FileNotFoundError:
            pass

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()

    def sub(self, folder: str) -> LocalStore:
        return LocalStore(self.root / folder, _anchor=self.anchor)

    def free_bytes(self) -> int | None:
        try:
            return shutil.disk_usage(_existing_ancestor(self.root)).free
        except OSError:
            return None

    def clean_temp(self) -> list[str]:
        gone = []
        if self.root.is_dir():
            for p in self.root.rglob(f"{TMP_PREFIX}*"):
                p.unlink(missing_ok=True)
                gone.append(p.name)
        return gone


# fsspec protocols whose writes are whole-object PUTs with no rename (see the module docstring).
OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "abfs", "abfss", "az", "adl"})


class FsspecStore(Store):
    """Any fsspec file system: memory:// for tests, gs:// or s3:// when a learner outgrows Drive.

    A bucket's credentials and endpoint come from the usual places of its fsspec back end (for
    s3fs: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_ENDPOINT_URL or ~/.aws; for gcsfs:
    Application Default Credentials), nothing of colabkit's own.
    """

    def __init__(self, url: str):
        import fsspec

        try:
            self.fs, root = fsspec.core.url_to_fs(url)
        except ImportError as exc:   # s3fs / gcsfs not installed
            scheme = url.split("://", 1)[0]
            raise ImportError(f"{url}: the {scheme}:// file system needs its fsspec back end ({exc}). Install it "
                              "with pip install s3fs (for s3://) or pip install gcsfs (for gs://).") from exc
        self.root = root.rstrip("/")
        self.url = url.rstrip("/")
        protocols = self.fs.protocol if isinstance(self.fs.protocol, (tuple, list)) else (self.fs.protocol,)
        self.direct_put = bool(OBJECT_STORES.intersection(protocols))

    def _path(self, name: str) -> str:
        return f"{self.root}/{name}"

    def _fresh(self) -> None:
        # Another session (a VM, a rank) writes here too: listings must not come from this
        # process's cache of an earlier listing.
        self.fs.invalidate_cache()

    def write_bytes(self, name: str, data: bytes) -> None:
        self._write(name, lambda tmp: self.fs.pipe_file(tmp, bytes(data)))

    def put_file(self, name: str, src: str | os.PathLike, on_chunk: Callable[[int], object] | None = None) -> None:
        def fill(tmp):
            with self.fs.open(tmp, "wb") as f:
                for chunk in _chunks_of(src, on_chunk):
                    f.write(chunk)

        self._write(name, fill)

    def _write(self, name: str, fill: Callable[[str], object]) -> None:
        """The one way files are written here: ``fill`` a temporary name beside the target, then move it
        (in a bucket: ``fill`` the target itself, see the module docstring)."""
        path = self._path(name)
        if self.direct_put:   # all-or-nothing already; a rename would be a second, non-atomic copy
            try:
                fill(path)
            except BaseException as exc:
                # A streamed upload that failed part-way may still have been completed by its file's
                # close: remove what is there rather than leave a short object under the real name.
                try:
                    self.fs.rm_file(path)
                except Exception:
                    pass
                if isinstance(exc, OSError):
                    raise _explain(exc, path) from exc
                if isinstance(exc, Exception):   # botocore / google errors that are not OSErrors
                    raise StoreError(errno.EIO, f"Could not write {path}: {type(exc).__name__}: {exc}") from exc
                raise
            return
        folder, base = path.rsplit("/", 1)
        tmp = f"{folder}/{TMP_PREFIX}{uuid.uuid4().hex[:8]}-{base}"
        try:
            self.fs.makedirs(folder, exist_ok=True)
            fill(tmp)
            self.fs.mv(tmp, path)
        except BaseException as exc:   # an Interrupt mid-copy too: no half-written file stays behind
            try:
                self.fs.rm_file(tmp)
            except (OSError, FileNotFoundError):
                pass
            if isinstance(exc, OSError):
                raise _explain(exc, path) from exc
            raise

    def read_bytes(self, name: str) -> bytes:
        return self.fs.cat_file(self._path(name))

    def list(self, prefix: str = "") -> list[str]:
        self._fresh()
        base = self._path(prefix).rstrip("/")
        if not self.fs.exists(base):
            return []
        root = self.root.strip("/")
        out = []
        for p in self.fs.find(base):
            rel = p.strip("/")[len(root):].lstrip("/")
            if not rel.rsplit("/", 1)[-1].startswith(TMP_PREFIX):
                out.append(rel)
        return sorted(out)

    def delete(self, name: str) -> None:
        try:
            self.fs.rm_file(self._path(name))
        except FileNotFoundError:
            pass

    def exists(self, name: str) -> bool:
        self._fresh()
        return self.fs.isfile(self._path(name))

    def sub(self, folder: str) -> FsspecStore:
        return FsspecStore(f"{self.url}/{folder}")

    def clean_temp(self) -> list[str]:
        gone = []
        self._fresh()
        if self.fs.exists(self.root):
            for p in self.fs.find(self.root):
                if p.rsplit("/", 1)[-1].startswith(TMP_PREFIX):
                    self.fs.rm_file(p)
                    gone.append(p.rsplit("/", 1)[-1])
        return gone


def open_store(location: str | os.PathLike) -> Store:
    """A LocalStore for a path or file:// URL, an FsspecStore for any other URL."""
    loc = str(location)
    if loc.startswith("file://"):
        return LocalStore(loc[len("file://"):])
    if "://" in loc:
        return FsspecStore(loc)
    return LocalStore(loc)
