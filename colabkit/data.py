"""Downloads, archives and stand-in data sets for the course notebooks.

The pieces, in the order a notebook uses them:

* :func:`fetch` brings one file (an archive) to the VM's fast local disk. It first looks in a
  persistent cache folder (Google Drive in Colab), so a new Colab session copies the archive
  instead of downloading it again, verifies a checksum, and turns every way a download can go
  wrong (HTTP errors, Google Drive's quota and sign-in pages, an HTML page instead of the file,
  a wrong checksum) into a :class:`DataError` whose message says what the learner can do.
  Nothing half-written is ever left at the destination or in the cache.
* :func:`extract` unpacks a zip or tar archive, refuses members that would escape the
  destination, and writes a completion marker so that a folder left half-extracted by a dead
  VM is redone while a complete one is skipped. :func:`check_layout` checks the result.
* :func:`load_py2_pickle` and :func:`read_cifar10` read the data sets' own file formats.
* ``standin_*`` write small, deterministic stand-ins for CIFAR-10, CelebA, the CycleGAN
  unpaired sets and CUB-200-2011 (with the StackGAN authors' preprocessed files) in the real
  on-disk formats, with structured images (shapes, stripes, gradients) that a GAN can visibly
  learn. Smoke mode and the tests run the real loading code on them.
"""

from __future__ import annotations

import glob
import hashlib
import html
import inspect
import io
import json
import os
import pickle
import re
import shutil
import struct
import sys
import tarfile
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from . import imagecheck

__all__ = [
    "ArchiveError",
    "CELEBA_DRIVE_ID",
    "CELEBA_FILENAME",
    "CELEBA_MD5",
    "CIFAR10_CLASSES",
    "CIFAR10_DIRNAME",
    "CIFAR10_FILENAME",
    "CIFAR10_MD5",
    "CIFAR10_URL",
    "CYCLEGAN_URL",
    "ChecksumError",
    "CorruptFileError",
    "DRIVE_URL",
    "DataError",
    "DownloadError",
    "DriveError",
    "DrivePermissionError",
    "DriveQuotaError",
    "HTMLPageError",
    "HTTPStatusError",
    "LayoutError",
    "STACKGAN_BIRDS_DRIVE_ID",
    "UnsafeArchiveError",
    "check_layout",
    "extract",
    "fetch",
    "load_py2_pickle",
    "read_cifar10",
    "standin_celeba",
    "standin_cifar10",
    "standin_cub",
    "standin_unpaired",
]

# ----------------------------------------------------------------------------- constants

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_FILENAME = "cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_DIRNAME = "cifar-10-batches-py"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")

# Aligned CelebA as torchvision's CelebA loader downloads it (Google Drive, through gdown).
CELEBA_DRIVE_ID = "0B7EVK8r0v71pZjFTYXZWM3FlRnM"
CELEBA_FILENAME = "img_align_celeba.zip"
CELEBA_MD5 = "00d2c5bc6d35e252742224ab0c1e8fcb"

# The CycleGAN data sets: NAME in horse2zebra, apple2orange, monet2photo, ...
CYCLEGAN_URL = "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/{name}.zip"

# The StackGAN authors' preprocessed birds archive (char-CNN-RNN embeddings). The link has
# been reported down or access-restricted at times: notebooks need a fallback.
STACKGAN_BIRDS_DRIVE_ID = "0B3y_msrWZaXLT1BZdVdycDY5TEE"

# How a "gdrive:<id>" source becomes a URL for gdown. Module-level so that tests can point
# it at a loopback server (gdown then downloads it like any other URL).
DRIVE_URL = "https://drive.google.com/uc?id={id}&export=download"
DRIVE_VIEW_URL = "https://drive.google.com/file/d/{id}/view"

_CHUNK = 1 << 20
_USER_AGENT = "colabkit-data/0.1 (+python urllib)"

# Phrases of Google Drive's error pages (and of gdown's messages about them).
_QUOTA_MARKERS = (
    "too many users have viewed or downloaded this file recently",
    "quota exceeded",
    "download quota",
    "downloadquotaexceeded",
)
_PERMISSION_MARKERS = (
    "accounts.google.com/servicelogin",
    "accounts.google.com/v3/signin",
    "servicelogin",
    "sign in - google accounts",
    "you need access",
    "you need permission",
    "request access",
    "access denied",
    "cannot retrieve the public link of the file",
    "change the permission to 'anyone with the link'",
)


# ----------------------------------------------------------------------------- exceptions

class DataError(Exception):
    """Base class of every error raised by :mod:`colabkit.data`."""


class DownloadError(DataError):
    """The file could not be downloaded (network failure, incomplete transfer)."""


class HTTPStatusError(DownloadError):
    """The server answered with an HTTP error status (``status``, ``url``)."""

    def __init__(self, message: str, *, url: str, status: int):
        super().__init__(message)
        self.url = url
        self.status = status


class HTMLPageError(DownloadError):
    """An HTML page arrived where a binary file was expected."""


class DriveError(DownloadError):
    """Google Drive refused to hand out the file."""


class DriveQuotaError(DriveError):
    """Google Drive's download quota for the file is used up ("Too many users ...")."""


class DrivePermissionError(DriveError):
    """Google Drive asked to sign in or denied access: the file is not (or no longer) public."""


class ChecksumError(DataError):
    """A file's checksum differs from the expected one; the bad file has been deleted."""

    def __init__(self, message: str, *, algorithm: str, expected: str, actual: str):
        super().__init__(message)
        self.algorithm = algorithm
        self.expected = expected
        self.actual = actual


class ArchiveError(DataError):
    """An archive is damaged, truncated or of an unknown kind."""


class UnsafeArchiveError(ArchiveError):
    """An archive member would be written outside the destination folder."""


class LayoutError(DataError):
    """Expected files or folders are missing (``missing``; ``found`` lists the top level)."""

    def __init__(self, message: str, *, missing: list[str], found: list[str]):
        super().__init__(message)
        self.missing = missing
        self.found = found


class CorruptFileError(DataError):
    """A data file is truncated or corrupt."""


# ----------------------------------------------------------------------------- small helpers

def _bar(total, desc: str, enabled: bool):
    """A byte progress bar (tqdm.auto: a widget in notebooks, text elsewhere)."""
    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                disable=not enabled, leave=True)


class _Hashes:
    """Feeds the same bytes to several hash objects; quacks like one hashlib object."""

    def __init__(self, algorithms):
        self._h = {a: hashlib.new(a) for a in algorithms}

    def update(self, data: bytes) -> None:
        for h in self._h.values():
            h.update(data)

    def hexdigests(self) -> dict[str, str]:
        return {a: h.hexdigest() for a, h in self._h.items()}


def _expected_digests(sha256, md5) -> dict[str, str]:
    expected = {}
    for name, value in (("sha256", sha256), ("md5", md5)):
        if value is not None:
            value = str(value).strip().lower()
            if not re.fullmatch(r"[0-9a-f]+", value) or len(value) != hashlib.new(name).digest_size * 2:
                raise ValueError(f"{name}={value!r} is not a valid {name} hex digest")
            expected[name] = value
    return expected


def _mismatch(expected: dict[str, str], actual: dict[str, str]):
    for name, value in expected.items():
        if actual.get(name) != value:
            return name, value, actual.get(name)
    return None


def _hash_file(path: Path, algorithms, desc: str, progress: bool) -> dict[str, str]:
    hashes = _Hashes(algorithms)
    with open(path, "rb") as f, _bar(path.stat().st_size, desc, progress) as bar:
        while chunk := f.read(_CHUNK):
            hashes.update(chunk)
            bar.update(len(chunk))
    return hashes.hexdigests()


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


def _looks_like_html(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return text.startswith((b"<!doctype html", b"<html", b"<head", b"<!--"))


def _is_html_file(path: Path, filename: str) -> bool:
    """True when ``path`` holds an HTML page although ``filename`` is not an HTML file."""
    if filename.lower().endswith((".html", ".htm")):
        return False
    with open(path, "rb") as f:
        return _looks_like_html(f.read(4096))


def _page_title(text: str) -> str:
    m = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    return " ".join(html.unescape(m.group(1)).split()) if m else ""


def _classify_page(text: str) -> str | None:
    low = text.lower()
    if any(m in low for m in _QUOTA_MARKERS):
        return "quota"
    if any(m in low for m in _PERMISSION_MARKERS):
        return "permission"
    return None


# ----------------------------------------------------------------------------- the cache

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


# ----------------------------------------------------------------------------- fetch

class _Job:
    """What one fetch call is about; used to write helpful error messages."""

    def __init__(self, source: str, filename: str, dest: Path, cache: _Cache | None):
        self.source = source
        self.filename = filename
        self.dest = dest
        self.cache = cache
        self.drive_id = source[len("gdrive:"):] if source.startswith("gdrive:") else None

    def place_it(self) -> str:
        """Advice on where a manually obtained copy of the file must go."""
        if self.cache is not None:
            return (f"put your copy, named exactly '{self.filename}', at {self.cache.display} (the cache "
                    f"folder: it survives Colab sessions) or at {self.dest} (this session only), then run "
                    "the cell again")
        return (f"put your copy, named exactly '{self.filename}', at {self.dest} and run the cell again "
                "(with cache_dir= set, fetch also keeps a copy on Drive for the next session)")


def _drive_quota_error(job: _Job, detail: str) -> DriveQuotaError:
    view = DRIVE_VIEW_URL.format(id=job.drive_id) if job.drive_id else job.source
    return DriveQuotaError(
        f"Google Drive refused to serve '{job.filename}' ({job.source}): {detail}\n"
        "The file's download quota is used up for now (Drive: \"Too many users have viewed or "
        "downloaded this file recently\").\nWhat you can do:\n"
        "  1. wait: the quota resets within about 24 hours, then run the cell again;\n"
        f"  2. open {view} in a browser signed in to your Google account, add the file to your own "
        f"Drive (\"Make a copy\") or download it, and {job.place_it()};\n"
        "  3. or use the notebook's fallback (the stand-in / alternative data set cell)."
    )


def _drive_permission_error(job: _Job, detail: str) -> DrivePermissionError:
    view = DRIVE_VIEW_URL.format(id=job.drive_id) if job.drive_id else job.source
    return DrivePermissionError(
        f"Google Drive did not hand out '{job.filename}' ({job.source}): {detail}\n"
        "Drive answered with a sign-in or access-denied page: the file is not shared as "
        "'Anyone with the link' (any more), or it was removed.\nWhat you can do:\n"
        f"  1. open {view} in a browser; if you can see it there, add it to your own Drive or "
        f"download it, and {job.place_it()};\n"
        "  2. if access is restricted or the file is gone, use the notebook's fallback "
        "(the stand-in / alternative data set cell)."
    )


def _error_for_page(job: _Job, text: str, *, status: int | None = None) -> DataError:
    """The exception for an HTML page that arrived instead of the file."""
    kind = _classify_page(text)
    title = _page_title(text)
    detail = f"HTTP {status}, " if status else ""
    detail += f"page titled {title!r}" if title else "an HTML page"
    if kind == "quota":
        return _drive_quota_error(job, detail)
    if kind == "permission":
        return _drive_permission_error(job, detail)
    url = DRIVE_URL.format(id=job.drive_id) if job.drive_id else job.source
    if status is not None:
        return _http_error(job, url, status, title or "error page")
    return HTMLPageError(
        f"Expected the file '{job.filename}' from {url} but received an HTML page "
        f"({detail}) -- the link probably moved, needs a login, or shows a warning page.\n"
        f"What you can do: open the link in a browser to see what it shows; if you can get the "
        f"file there, {job.place_it()}; otherwise use the notebook's fallback."
    )


def _http_error(job: _Job, url: str, status: int, reason: str) -> HTTPStatusError:
    if job.drive_id is not None and status in (403, 429):
        hint = ("Google Drive refused the file: it may not be shared publicly, or its download quota "
                "may be used up (then wait about 24 hours), or use the notebook's fallback")
    elif status == 404 or status == 410:
        hint = "the file is not at this address (it may have moved): check the URL"
    elif status in (401, 403):
        hint = "the server refuses access: the file may need a login or may have been restricted"
    elif status == 429 or status >= 500:
        hint = "the server is busy or failing: wait a few minutes and run the cell again"
    else:
        hint = "check the URL and try again later"
    return HTTPStatusError(
        f"Download of '{job.filename}' failed: HTTP {status} {reason} from {url}.\n"
        f"What you can do: {hint}; or, if you have the file, {job.place_it()}.",
        url=url, status=status,
    )


def _network_error(job: _Job, url: str, exc: BaseException) -> DownloadError:
    return DownloadError(
        f"Download of '{job.filename}' from {url} failed: {type(exc).__name__}: {exc}.\n"
        "What you can do: check the VM's internet connection and run the cell again (nothing "
        f"half-downloaded was kept); or, if you have the file, {job.place_it()}."
    )


def _download_url(job: _Job, url: str, out: Path, hashes: _Hashes, timeout, progress: bool) -> None:
    """Plain http(s)/file download with urllib into ``out``."""
    import http.client

    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        try:
            body = e.read(256 * 1024)
        except Exception:
            body = b""
        finally:
            e.close()
        if _looks_like_html(body[:4096]) and _classify_page(body.decode("utf-8", "replace")):
            raise _error_for_page(job, body.decode("utf-8", "replace"), status=e.code) from None
        raise _http_error(job, url, e.code, str(e.reason)) from None
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as e:
        raise _network_error(job, url, getattr(e, "reason", e)) from e
    with response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        received = 0
        try:
            with open(out, "wb") as f, _bar(total, job.filename, progress) as bar:
                while chunk := response.read(_CHUNK):
                    f.write(chunk)
                    hashes.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        except (OSError, http.client.HTTPException) as e:
            if isinstance(e, OSError) and not isinstance(e, (TimeoutError, ConnectionError)) \
                    and e.errno is not None:
                raise  # a local disk problem (disk full, ...): let it speak for itself
            raise _network_error(job, url, e) from e
    if total is not None and received != total:
        raise DownloadError(
            f"Download of '{job.filename}' from {url} is incomplete: got {received} of {total} bytes "
            "(the connection broke). Nothing was kept; run the cell again."
        )


def _gdown_takes_callbacks(download) -> bool:
    """True for gdown >= 6.3, whose download() streams into progress=, hasher= and timeout=.

    Colab ships gdown 5.2.2, which has none of them (progress= came in 6.0, hasher= and
    timeout= in 6.3); colabkit then does that work itself (see :func:`_gdown_download_legacy`).
    """
    try:
        params = inspect.signature(download).parameters
    except (TypeError, ValueError):
        return False
    return {"progress", "hasher", "timeout"} <= set(params)


class _Sink:
    """The file object that old gdown writes into: it writes, hashes and reports progress."""

    def __init__(self, f, hashes: _Hashes, on_chunk):
        self._f = f
        self._hashes = hashes
        self._on_chunk = on_chunk
        self.written = 0

    def write(self, chunk: bytes) -> int:
        self._f.write(chunk)
        self._hashes.update(chunk)
        self.written += len(chunk)
        self._on_chunk(self.written)
        return len(chunk)

    def flush(self) -> None:
        self._f.flush()


# Old gdown's session is patched for the length of one download (see below); one at a time.
_LEGACY_GDOWN_LOCK = threading.Lock()


def _gdown_download_legacy(gdown_module, url: str, out: Path, hashes: _Hashes, timeout, on_progress):
    """gdown.download for gdown < 6.3 (Colab's 5.2.2): progress, hashing and timeouts done here.

    gdown writes into a file object of ours, which hashes the bytes and moves the progress bar.
    Its download() takes no timeout and never looks at the HTTP status of what it saves, so for
    this one call the requests session that gdown makes (``gdown.download._get_session``, a fixed
    function of a released version) gets a default timeout between bytes, like timeout= in
    gdown 6.3, and a hook that keeps every response: the last one gives the file's length for
    the progress bar and its status, checked afterwards.

    Returns the last response (or None), the length it announced (or None) and the bytes written.
    """
    import requests

    responses = []
    default_timeout = timeout

    class _TimeoutAdapter(requests.adapters.HTTPAdapter):
        def send(self, request, timeout=None, **kwargs):
            return super().send(request, timeout=default_timeout if timeout is None else timeout, **kwargs)

    def keep(response, *args, **kwargs):
        responses.append(response)

    def total():
        if not responses:
            return None
        headers = responses[-1].headers
        length = headers.get("Content-Length", "")
        encoded = any(headers.get(h, "identity").strip().lower() not in ("", "identity")
                      for h in ("Content-Encoding", "Transfer-Encoding"))
        return int(length) if length.isdigit() and not encoded else None

    module = sys.modules.get("gdown.download")
    original = getattr(module, "_get_session", None)

    def get_session(*args, **kwargs):
        made = original(*args, **kwargs)
        session = made[0] if isinstance(made, tuple) else made
        if timeout is not None:
            adapter = _TimeoutAdapter()
            session.mount("https://", adapter)
            session.mount("http://", adapter)
        session.hooks["response"].append(keep)
        return made

    with _LEGACY_GDOWN_LOCK, open(out, "wb") as f:
        sink = _Sink(f, hashes, lambda done: on_progress(done, total()))
        if original is not None:
            module._get_session = get_session
        try:
            gdown_module.download(url=url, output=sink, quiet=True, use_cookies=False)
        finally:
            if original is not None:
                module._get_session = original
    return (responses[-1] if responses else None), total(), sink.written


def _drive_http_error(job: _Job, url: str, status: int, reason: str, text: str) -> DataError:
    """What an HTTP error status from Drive (or from a URL that gdown fetched) means."""
    if text and _classify_page(text):
        return _error_for_page(job, text, status=status)
    return _http_error(job, url, status, reason)


def _download_drive(job: _Job, url: str, out: Path, hashes: _Hashes, timeout, progress: bool) -> None:
    """Google Drive download through gdown, which handles Drive's confirmation pages.

    Works with gdown 5.2.2 (Colab's) and the newest (6.x): see :func:`_gdown_takes_callbacks`.
    """
    import gdown
    import requests
    from gdown.exceptions import FileURLRetrievalError

    # gdown 6 raises its DownloadError for an incomplete transfer; 5.2.2 has no such class.
    network_errors = (requests.RequestException, OSError) + tuple(
        e for e in (getattr(gdown.exceptions, "DownloadError", None),) if e is not None)

    with _bar(None, job.filename, progress) as bar:
        def on_progress(done, total):
            if total is not None and bar.total != total:
                bar.total = total
                bar.refresh()
            bar.update(done - bar.n)

        try:
            if _gdown_takes_callbacks(gdown.download):
                # Cookies off: public files need none, and gdown would write ~/.cache/gdown/cookies.txt.
                gdown.download(url=url, output=str(out), quiet=True, use_cookies=False, progress=on_progress,
                               hasher=hashes, timeout=timeout)
            else:
                last, total, received = _gdown_download_legacy(gdown, url, out, hashes, timeout, on_progress)
                if last is not None and last.status_code >= 400:   # 5.2.2 saved an error page as the file
                    with open(out, "rb") as f:
                        text = f.read(256 * 1024).decode("utf-8", "replace")
                    raise _drive_http_error(job, url, last.status_code, last.reason or "error", text)
                if total is not None and received != total:
                    raise DownloadError(
                        f"Download of '{job.filename}' from {url} is incomplete: got {received} of {total} "
                        "bytes (the connection broke). Nothing was kept; run the cell again.")
        except FileURLRetrievalError as e:
            # gdown recognised a Drive page itself; its message carries Drive's own words.
            message = " ".join(str(e).split())
            kind = _classify_page(message)
            if kind == "quota":
                raise _drive_quota_error(job, f"gdown: {message}") from None
            raise _drive_permission_error(job, f"gdown: {message}") from None
        except requests.HTTPError as e:
            response = e.response
            status = response.status_code if response is not None else 0
            text = ""
            if response is not None:
                try:  # gdown usually has closed the response by now; use the body when it can be read
                    text = response.text[:256 * 1024]
                except Exception:
                    text = ""
            reason = response.reason if response is not None else str(e)
            raise _drive_http_error(job, url, status, reason, text) from None
        except network_errors as e:
            if isinstance(e, OSError) and not isinstance(e, requests.RequestException) and e.errno:
                raise
            raise _network_error(job, url, e) from e


def _is_drive_url(source: str) -> bool:
    host = urllib.parse.urlsplit(source).hostname or ""
    return host in ("drive.google.com", "docs.google.com")


def _copy_in(src_file, size, out: Path, hashes: _Hashes, desc: str, progress: bool) -> None:
    with open(out, "wb") as f, _bar(size, desc, progress) as bar:
        while chunk := src_file.read(_CHUNK):
            f.write(chunk)
            hashes.update(chunk)
            bar.update(len(chunk))


def fetch(source: str, filename: str, *, cache_dir=None, dest_dir, sha256: str | None = None,
          md5: str | None = None, progress: bool = True, timeout: float = 60) -> Path:
    """Bring the file ``filename`` to ``dest_dir`` and return its path.

    ``source`` is an http(s) (or file://) URL, or ``"gdrive:<file id>"`` for a Google Drive
    file (downloaded with gdown). The order of attempts:

    1. ``dest_dir/filename`` already there (and matching the checksum): nothing to do.
    2. ``cache_dir/filename`` (a persistent folder, Drive in Colab; may be None or an fsspec
       URL) matching the checksum: copied to ``dest_dir`` with a progress bar, no network.
       A cached copy with the wrong checksum is deleted.
    3. Download into a temporary folder inside ``dest_dir`` with a progress bar, verify the
       checksum (``sha256`` and/or ``md5``), rename into place, then copy into the cache
       (temporary name in the cache folder, fsync, rename) for the next session.

    Raises a :class:`DataError` subclass with advice: :class:`HTTPStatusError`,
    :class:`DriveQuotaError`, :class:`DrivePermissionError`, :class:`HTMLPageError`,
    :class:`ChecksumError`, :class:`DownloadError`. After a failure nothing half-written
    remains in ``dest_dir`` or the cache. Failing to write the cache only warns.
    """
    if not filename or filename in (".", "..") or "/" in filename or "\\" in filename:
        raise ValueError(f"filename must be a plain file name, got {filename!r}")
    expected = _expected_digests(sha256, md5)
    dest_dir = Path(dest_dir).expanduser()
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / filename
    cache = _Cache(cache_dir, filename) if cache_dir is not None else None
    job = _Job(source, filename, dest, cache)

    # Leftovers of an earlier call that was killed mid-way (never a complete file).
    for stale in dest_dir.glob(f".{glob.escape(filename)}.fetch-*"):
        _remove_tree_or_file(stale)

    def save_to_cache():
        if cache is None:
            return
        try:
            if cache.exists() and cache.size() == dest.stat().st_size:
                return
            cache.store(dest, progress)
        except OSError as e:
            warnings.warn(f"Could not copy {filename} into the cache {cache.display}: {e}. "
                          "The download is fine; the next session will download it again.",
                          stacklevel=3)

    # 1. Already at the destination?
    if dest.is_file():
        if not expected:
            save_to_cache()
            return dest
        actual = _hash_file(dest, expected, f"checking {filename}", progress)
        if _mismatch(expected, actual) is None:
            save_to_cache()
            return dest
        print(f"{dest} does not match its checksum; deleting it and fetching it again.")
        _unlink(dest)

    work = Path(tempfile.mkdtemp(prefix=f".{filename}.fetch-", dir=dest_dir))
    try:
        tmp = work / filename

        # 2. The persistent cache.
        if cache is not None and cache.exists():
            hashes = _Hashes(expected)
            with cache.open_read() as f:
                _copy_in(f, cache.size(), tmp, hashes, f"{filename} from cache", progress)
            bad = _mismatch(expected, hashes.hexdigests())
            if bad is not None:
                problem = f"expected {bad[0]} {bad[1]}, got {bad[2]}"
            elif _is_html_file(tmp, filename):
                problem = "it is an HTML page, not the file"
            else:
                os.replace(tmp, dest)
                return dest
            print(f"The cached copy {cache.display} is bad ({problem}); "
                  "deleting it and downloading the file again.")
            _unlink(tmp)
            cache.delete()

        # 3. Download.
        hashes = _Hashes(expected)
        if job.drive_id is not None:
            if not job.drive_id:
                raise ValueError("source 'gdrive:' needs a file id: 'gdrive:<file id>'")
            _download_drive(job, DRIVE_URL.format(id=job.drive_id), tmp, hashes, timeout, progress)
        elif _is_drive_url(source):
            _download_drive(job, source, tmp, hashes, timeout, progress)
        else:
            _download_url(job, source, tmp, hashes, timeout, progress)

        if _is_html_file(tmp, filename):
            with open(tmp, "rb") as f:
                text = f.read(512 * 1024).decode("utf-8", "replace")
            raise _error_for_page(job, text)

        bad = _mismatch(expected, hashes.hexdigests())
        if bad is not None:
            algorithm, want, got = bad
            raise ChecksumError(
                f"Checksum mismatch for '{filename}' downloaded from {source}: expected {algorithm} "
                f"{want}, got {got}. The bad file was deleted (nothing was cached).\n"
                "What you can do: run the cell again (the download may have been corrupted); if it "
                "keeps failing, the server now hands out a different file -- check the source, or "
                f"if you have the right file, {job.place_it()}.",
                algorithm=algorithm, expected=want, actual=got,
            )
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    save_to_cache()
    return dest


# ----------------------------------------------------------------------------- archives

def _safe_member_path(name: str, archive: Path) -> str:
    """The member name as a relative path, or UnsafeArchiveError if it would escape."""
    norm = name.replace("\\", "/")
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm) or ".." in parts:
        raise UnsafeArchiveError(
            f"Refusing to extract {archive}: the member {name!r} would be written outside the "
            "destination folder (absolute path or '..'). This is not a normal data set archive: "
            "delete it and download it from the official source."
        )
    return "/".join(parts)


def _check_tar_link(member: tarfile.TarInfo, rel: str, archive: Path) -> None:
    target = member.linkname.replace("\\", "/")
    if member.issym():
        base = rel.rsplit("/", 1)[0] if "/" in rel else ""
        joined = f"{base}/{target}" if base else target
    else:
        joined = target
    depth = 0
    escapes = target.startswith("/")
    for part in joined.split("/"):
        if part in ("", "."):
            continue
        depth += -1 if part == ".." else 1
        if depth < 0:
            escapes = True
    if escapes:
        raise UnsafeArchiveError(
            f"Refusing to extract {archive}: the link {member.name!r} -> {member.linkname!r} points "
            "outside the destination folder. Delete the archive and download it from the official source."
        )


class _CountingReader:
    """A read-only file wrapper that advances a progress bar by the bytes read."""

    def __init__(self, raw, bar):
        self._raw = raw
        self._bar = bar

    def read(self, n=-1):
        data = self._raw.read(n)
        self._bar.update(len(data))
        return data


def _extract_tar(archive: Path, staging: Path, progress: bool) -> None:
    use_filter = hasattr(tarfile, "data_filter")
    with open(archive, "rb") as raw, _bar(archive.stat().st_size, f"extracting {archive.name}",
                                          progress) as bar:
        # Stream mode: one pass over the compressed bytes, progress counted on them.
        with tarfile.open(fileobj=_CountingReader(raw, bar), mode="r|*") as tf:
            for member in tf:
                rel = _safe_member_path(member.name, archive)
                if not rel:
                    continue
                if member.issym() or member.islnk():
                    _check_tar_link(member, rel, archive)
                elif not (member.isfile() or member.isdir()):
                    continue  # devices, fifos: never part of a data set
                member.name = rel
                if use_filter:
                    try:
                        tf.extract(member, staging, filter="data")
                    except tarfile.FilterError as e:
                        raise UnsafeArchiveError(f"Refusing to extract {archive}: {e}") from e
                else:
                    tf.extract(member, staging)


def _extract_zip(archive: Path, staging: Path, progress: bool) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        plan = []
        for info in infos:
            rel = _safe_member_path(info.filename, archive)  # check all before writing any
            if rel and not rel.startswith("__MACOSX"):
                plan.append((info, rel))
        total = sum(info.file_size for info, _ in plan)
        with _bar(total, f"extracting {archive.name}", progress) as bar:
            for info, rel in plan:
                target = staging / rel
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as dst:
                    while chunk := src.read(_CHUNK):
                        dst.write(chunk)
                        bar.update(len(chunk))


def _marker_path(archive: Path, dest: Path) -> Path:
    return dest / f".{archive.name}.extracted.json"


def check_layout(root, expect) -> Path:
    """Check that every relative path in ``expect`` exists under ``root``; return ``root``.

    Raises :class:`LayoutError` listing what is missing and which top-level entries were found.
    """
    root = Path(root)
    expect = [expect] if isinstance(expect, (str, os.PathLike)) else list(expect)
    missing = [os.fspath(e) for e in expect if not (root / e).exists()]
    if not missing:
        return root
    found = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir()
                   if not p.name.startswith(".")) if root.is_dir() else []
    shown = ", ".join(found[:20]) + (f", ... ({len(found)} entries)" if len(found) > 20 else "")
    lines = [f"The data in {root} does not have the expected layout.",
             f"Missing: {', '.join(missing)}.",
             f"Found at the top level: {shown}." if found else
             ("The folder is empty." if root.is_dir() else "The folder does not exist.")]
    nested = [d for d in found if d.endswith("/") and all((root / d / e).exists() for e in expect)]
    if nested:
        lines.append(f"The expected files are one level down, in {root / nested[0]}: "
                     "point the notebook there.")
    else:
        lines.append("Did you download or point at the right archive/folder? Delete what is there and "
                     "fetch the data set again, or use the notebook's fallback.")
    raise LayoutError("\n".join(lines), missing=missing, found=found)


def extract(archive, dest_dir, *, expect=(), progress: bool = True, bad_images: str = "stop") -> Path:
    """Extract a zip or tar(.gz/.bz2/.xz) archive into ``dest_dir``; return ``dest_dir``.

    Members are unpacked into a temporary folder inside ``dest_dir`` and moved into place
    when all of them are out; then a completion marker ``.<archive>.extracted.json`` is
    written. A complete extraction (marker present, entries there) is skipped; anything else
    (a VM that died mid-way) is redone, replacing the archive's top-level entries. Members
    that would land outside ``dest_dir`` raise :class:`UnsafeArchiveError`; a damaged archive
    raises :class:`ArchiveError`. ``expect`` lists relative paths that must exist afterwards
    (:class:`LayoutError` otherwise).

    Every image it brought is checked once, cheaply (colabkit.imagecheck), and the result kept in
    the marker: with ``bad_images="stop"`` a truncated or damaged image raises
    :class:`CorruptFileError` naming it; with ``"skip"`` it is moved to ``dest_dir/.bad-images/``
    and listed in the marker (a data set that indexes its files in a list, as CUB's images.txt
    does, must then leave them out itself).
    """
    archive = Path(archive)
    dest = Path(dest_dir).expanduser()
    if not archive.is_file():
        raise ArchiveError(f"The archive {archive} does not exist: fetch it first.")
    dest.mkdir(parents=True, exist_ok=True)
    marker = _marker_path(archive, dest)
    size = archive.stat().st_size
    if bad_images not in ("stop", "skip"):
        raise ValueError(f"bad_images must be 'stop' or 'skip', not {bad_images!r}")

    if marker.is_file():
        try:
            info = json.loads(marker.read_text())
            complete = (info.get("size") == size
                        and all((dest / e).exists() for e in info.get("entries", [])))
        except (OSError, ValueError, AttributeError):
            complete = False
        if complete and all((dest / e).exists() for e in expect):
            if "images" not in info:   # extracted before images were checked: check them once now
                info["images"] = dict(zip(("checked", "bad"), imagecheck.scan(dest, info["entries"])), skipped=[])
                marker.write_text(json.dumps(info))
            imagecheck.settle(dest, marker, info, archive.name, bad_images)
            return dest
        print(f"{dest}: the earlier extraction of {archive.name} is incomplete or outdated; redoing it.")
    _unlink(marker)
    for stale in dest.glob(f".{glob.escape(archive.name)}.extracting-*"):
        _remove_tree_or_file(stale)

    if zipfile.is_zipfile(archive):
        kind = "zip"
    elif tarfile.is_tarfile(archive):
        kind = "tar"
    else:
        raise ArchiveError(
            f"{archive} is neither a zip nor a tar archive (or it is damaged): delete it and fetch it "
            "again; if it came from a Drive link, it may be an HTML error page saved under the archive's name."
        )

    staging = Path(tempfile.mkdtemp(prefix=f".{archive.name}.extracting-", dir=dest))
    try:
        try:
            if kind == "zip":
                _extract_zip(archive, staging, progress)
            else:
                _extract_tar(archive, staging, progress)
        except UnsafeArchiveError:
            raise
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, OSError) as e:
            if isinstance(e, OSError) and e.errno is not None:
                raise  # disk full and the like: not the archive's fault
            raise ArchiveError(
                f"{archive} is damaged or truncated ({type(e).__name__}: {e}). Delete it (and its copy in "
                "the cache folder, if any) and fetch it again."
            ) from e
        entries = sorted(p.name for p in staging.iterdir())
        for name in entries:
            target = dest / name
            if target.exists() or target.is_symlink():
                _remove_tree_or_file(target)
            os.replace(staging / name, target)
        checked, bad = imagecheck.scan(dest, entries)
        info = {"archive": archive.name, "size": size, "entries": entries,
                "images": {"checked": checked, "bad": bad, "skipped": []}}
        tmp_marker = marker.with_name(marker.name + ".tmp")
        with open(tmp_marker, "w") as f:
            json.dump(info, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_marker, marker)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    imagecheck.settle(dest, marker, info, archive.name, bad_images)
    check_layout(dest, expect)
    return dest


# ----------------------------------------------------------------------------- file formats

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


# ----------------------------------------------------------------------------- Python 2 style pickles

class _Py2Str(str):
    """A str that :class:`_Py2Pickler` writes as a Python 2 byte string (BINSTRING opcode).

    Python 2 pickles store ``str`` that way: Python 3 reads it back as ``str`` with
    encoding="latin1" or "ASCII" and as ``bytes`` with encoding="bytes", like the real files.
    """


class _Py2Pickler(pickle._Pickler):  # the pure-Python pickler: its dispatch table can be extended
    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2str(self, obj):
        data = obj.encode("latin1")
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[_Py2Str] = _save_py2str


def _py2ify(obj):
    """Turn the str objects of plain containers into :class:`_Py2Str`."""
    if isinstance(obj, str):
        return _Py2Str(obj)
    if isinstance(obj, dict):
        return {_py2ify(k): _py2ify(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_py2ify(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_py2ify(v) for v in obj)
    return obj


def _dump_py2(obj, path: Path) -> None:
    """Write ``obj`` as Python 2 would have (protocol 2, str as byte strings)."""
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(_py2ify(obj))
    path.write_bytes(buf.getvalue())


# ----------------------------------------------------------------------------- archive writers

_FIXED_DATE = (2017, 3, 30, 12, 0, 0)  # fixed timestamps: the archives are byte-for-byte deterministic


def _write_zip(out: Path, root: Path, top: str) -> None:
    """Zip ``root/top`` with ``top/`` as the single top-level folder (deterministic bytes)."""
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w") as zf:
        base = root / top
        for path in [base, *sorted(base.rglob("*"))]:
            arc = path.relative_to(root).as_posix()
            if path.is_dir():
                info = zipfile.ZipInfo(arc + "/", _FIXED_DATE)
                info.external_attr = (0o40755 << 16) | 0x10
                zf.writestr(info, b"")
            else:
                info = zipfile.ZipInfo(arc, _FIXED_DATE)
                info.external_attr = 0o100644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, path.read_bytes(), compresslevel=1)
    os.replace(tmp, out)


def _write_targz(out: Path, root: Path, names) -> None:
    """tar.gz of ``root/name`` for each name, deterministic bytes."""
    import gzip

    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                                               compresslevel=6) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for name in names:
            top = root / name
            for path in [top, *sorted(top.rglob("*"))] if top.is_dir() else [top]:
                info = tarfile.TarInfo(path.relative_to(root).as_posix())
                info.mtime = 1490875200
                info.uname = info.gname = "colabkit"
                if path.is_dir():
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    tf.addfile(info)
                else:
                    data = path.read_bytes()
                    info.size = len(data)
                    info.mode = 0o644
                    tf.addfile(info, io.BytesIO(data))
    os.replace(tmp, out)


def _save_jpeg(img: np.ndarray, path: Path, quality: int = 90) -> None:
    from PIL import Image

    Image.fromarray(img, "RGB").save(path, format="JPEG", quality=quality)


# ----------------------------------------------------------------------------- image painters

def _hsv(h: float, s: float, v: float) -> np.ndarray:
    """HSV in [0, 1] to an RGB float array in [0, 255]."""
    i = int(h * 6.0) % 6
    f = h * 6.0 - int(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    r, g, b = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return np.array([r, g, b]) * 255.0


def _gradient(h: int, w: int, c0, c1, angle: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = np.cos(angle) * xx / max(w - 1, 1) + np.sin(angle) * yy / max(h - 1, 1)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    return (1 - t)[..., None] * np.asarray(c0, np.float32) + t[..., None] * np.asarray(c1, np.float32)


def _finish(img: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    if noise:
        img = img + rng.normal(0.0, noise, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _cifar_image(rng: np.random.Generator, label: int) -> np.ndarray:
    """32x32: a class-specific shape in a class-specific hue over a dull gradient."""
    n = 32
    bg = _gradient(n, n, rng.uniform(20, 110, 3), rng.uniform(60, 160, 3), rng.uniform(0, 2 * np.pi))
    fg = _hsv((label / 10.0 + rng.normal(0, 0.015)) % 1.0, rng.uniform(0.7, 1.0), rng.uniform(0.8, 1.0))
    yy, xx = np.mgrid[0:n, 0:n] / (n - 1.0)
    cx, cy = rng.uniform(0.35, 0.65, 2)
    r = rng.uniform(0.2, 0.32)
    dx, dy = xx - cx, yy - cy
    ax, ay = np.abs(dx), np.abs(dy)
    masks = {
        0: ((ax < r) & (ay < r / 4)) | ((ay < r) & (ax < r / 4)),                 # plus sign
        1: (ax < r) & (ay < r / 2),                                               # wide box
        2: (dy > -r) & (dy < r) & (ax < (dy + r) / 2),                            # triangle
        3: dx ** 2 + dy ** 2 < r ** 2,                                            # disc
        4: (dx ** 2 + dy ** 2 < r ** 2) & (dx ** 2 + dy ** 2 > (r / 2) ** 2),     # ring
        5: (ax < 0.8 * r) & (ay < 0.8 * r),                                       # square
        6: (np.sin(yy * 2 * np.pi * 4 + cx * 10) > 0) & (ax < r * 1.3),           # horizontal stripes
        7: (np.sin(xx * 2 * np.pi * 4 + cy * 10) > 0) & (ay < r * 1.3),           # vertical stripes
        8: ax + ay < r * 1.2,                                                     # diamond
        9: ((np.floor(xx * 8) + np.floor(yy * 8)) % 2 == 0) & (ax < r) & (ay < r),  # checkers
    }
    img = np.where(masks[label][..., None], fg, bg)
    return _finish(img, rng, 6.0)


_SKIN = [(255, 224, 196), (241, 194, 160), (224, 172, 130), (198, 134, 92), (141, 85, 54)]
_HAIR = [(30, 24, 20), (90, 56, 30), (160, 110, 60), (220, 190, 120), (120, 30, 20), (200, 200, 200)]


def _face_image(rng: np.random.Generator, w: int = 178, h: int = 218) -> np.ndarray:
    """An aligned 'face': hair, skin ellipse, eyes, brows, nose and mouth at CelebA-like places."""
    from PIL import Image, ImageDraw

    bg = _gradient(h, w, rng.uniform(40, 220, 3), rng.uniform(40, 220, 3), rng.uniform(0, 2 * np.pi))
    im = Image.fromarray(_finish(bg, rng, 0), "RGB")
    d = ImageDraw.Draw(im)
    skin = tuple(int(c + rng.normal(0, 8)) for c in _SKIN[rng.integers(len(_SKIN))])
    hair = tuple(int(c) for c in _HAIR[rng.integers(len(_HAIR))])
    cx = w / 2 + rng.normal(0, 3)
    cy = h * 0.55 + rng.normal(0, 3)
    fw, fh = rng.uniform(0.30, 0.36) * w, rng.uniform(0.30, 0.36) * h
    long_hair = rng.random() < 0.5
    if long_hair:
        d.rectangle([cx - fw * 1.15, cy - fh * 0.3, cx + fw * 1.15, cy + fh * 1.3], fill=hair)
    d.ellipse([cx - fw * 1.12, cy - fh * 1.2, cx + fw * 1.12, cy + fh * 0.6], fill=hair)
    d.ellipse([cx - fw, cy - fh, cx + fw, cy + fh], fill=skin)
    # eyes at the aligned positions, with brows
    ey = cy - fh * 0.18
    for side in (-1, 1):
        ex = cx + side * fw * 0.42
        d.ellipse([ex - fw * 0.16, ey - fh * 0.07, ex + fw * 0.16, ey + fh * 0.07], fill=(250, 250, 250))
        iris = tuple(int(c) for c in rng.choice([(60, 40, 20), (40, 90, 160), (60, 120, 60)]))
        d.ellipse([ex - fw * 0.07, ey - fh * 0.06, ex + fw * 0.07, ey + fh * 0.06], fill=iris)
        d.line([ex - fw * 0.2, ey - fh * 0.2, ex + fw * 0.2, ey - fh * 0.22 - side * 2], fill=hair,
               width=max(2, int(fh * 0.04)))
    nose = tuple(int(c * 0.8) for c in skin)
    d.polygon([(cx, ey + fh * 0.05), (cx - fw * 0.1, cy + fh * 0.25), (cx + fw * 0.1, cy + fh * 0.25)],
              fill=nose)
    smile = rng.uniform(0.05, 0.2)
    my = cy + fh * 0.5
    d.chord([cx - fw * 0.35, my - fh * smile, cx + fw * 0.35, my + fh * smile], 0, 180,
            fill=(170 + int(rng.integers(0, 60)), 50, 60))
    return _finish(np.asarray(im, np.float32), rng, 3.0)


def _unpaired_image(rng: np.random.Generator, domain: str, size: int) -> np.ndarray:
    """Domain A: warm horizontal stripes and a brown blob; B: cool vertical stripes, striped blob."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    period = rng.uniform(0.06, 0.1)
    phase = rng.uniform(0, 1)
    cx, cy = rng.uniform(0.3, 0.7, 2)
    rx, ry = rng.uniform(0.18, 0.3), rng.uniform(0.12, 0.22)
    blob = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1.0
    if domain == "A":
        stripes = np.sin(2 * np.pi * (yy / period + phase)) > 0
        c0, c1 = rng.uniform([200, 120, 40], [240, 170, 80]), rng.uniform([120, 60, 20], [160, 90, 40])
        body = rng.uniform([90, 50, 20], [130, 75, 40])
        img = np.where(stripes[..., None], c0, c1)
        img = np.where(blob[..., None], body, img)
    else:
        stripes = np.sin(2 * np.pi * (xx / period + phase)) > 0
        c0, c1 = rng.uniform([40, 110, 190], [80, 150, 230]), rng.uniform([200, 220, 230], [240, 250, 255])
        img = np.where(stripes[..., None], c0, c1)
        body_stripes = np.sin(2 * np.pi * (xx / (period / 2))) > 0
        img = np.where((blob & body_stripes)[..., None], np.array([20.0, 20, 20]), img)
        img = np.where((blob & ~body_stripes)[..., None], np.array([245.0, 245, 245]), img)
    return _finish(img, rng, 4.0)


_BIRD_COLOURS = {
    "red": (200, 40, 40), "blue": (40, 80, 200), "yellow": (235, 210, 40), "green": (40, 150, 60),
    "black": (25, 25, 25), "white": (240, 240, 240), "orange": (240, 130, 30), "brown": (120, 70, 35),
    "grey": (128, 128, 128), "purple": (120, 50, 150),
}
_BIRD_BACKGROUNDS = (  # (top, bottom) colours of the vertical gradient
    ((130, 180, 235), (210, 230, 250)),   # sky
    ((170, 205, 170), (70, 130, 60)),     # grass
    ((225, 205, 165), (195, 170, 130)),   # sand
    ((55, 75, 60), (30, 45, 35)),         # forest shade
)
_BIRD_SPECIES = ("Albatross", "Warbler", "Sparrow", "Finch", "Tern", "Wren", "Jay", "Gull",
                 "Oriole", "Vireo", "Flycatcher", "Grosbeak")
_CAPTIONS = (
    "this bird has a {body} body, {wing} wings and a {head} head.",
    "a {size} bird with a {head} crown and {wing} wings.",
    "the bird is mostly {body} with {wing} wings and a {beak} beak.",
    "this {size} bird has a {head} head and a {body} belly.",
    "a {body} bird with {wing} wing feathers and a short {beak} beak.",
    "this is a {body} bird with a {head} head and {wing} wings.",
    "the {size} bird has a {body} breast, a {head} crown and a pointed {beak} beak.",
    "a bird with a {head} head, a {body} body and {wing} secondaries.",
    "this bird is {body} and {wing} with a {head} head.",
    "a {size} {body} bird with {wing} wings and a {beak} bill.",
)


def _bird_image(rng, colours: dict, w: int, h: int):
    """A bird blob (body, wing, head, beak, tail) over a smooth sky or grass gradient.

    Returns the image and its tight bounding box (x, y, width, height), CUB-style.
    """
    from PIL import Image, ImageDraw

    # sky, grass, sand or forest: whichever contrasts most with every part of the bird over the
    # whole gradient, so that the bird always stands out from its background
    bird = np.array([colours["body"], colours["wing"], colours["head"]], np.float32)

    def contrast(bg):
        top, bottom = np.array(bg, np.float32)
        shades = np.stack([top + (bottom - top) * t for t in np.linspace(0, 1, 5)])
        return np.abs(bird[:, None, :] - shades[None]).sum(-1).min()

    top, bottom = np.array(max(_BIRD_BACKGROUNDS, key=contrast), np.float32)
    bg = _gradient(h, w, top + rng.uniform(-12, 12, 3), bottom + rng.uniform(-12, 12, 3), np.pi / 2)
    im = Image.fromarray(_finish(bg, rng, 0), "RGB")
    d = ImageDraw.Draw(im)
    scale = rng.uniform(0.45, 0.8)
    bw, bh = scale * w * 0.35, scale * h * 0.32          # body half-axes
    cx = rng.uniform(bw * 1.6, w - bw * 1.6)
    cy = rng.uniform(bh * 1.8, h - bh * 1.3)
    face = 1 if rng.random() < 0.5 else -1                # facing right or left
    hr = bh * 0.6                                         # head radius
    hx, hy = cx + face * bw * 0.85, cy - bh * 0.9
    shapes = []
    tail = [(cx - face * bw * 0.8, cy - bh * 0.2), (cx - face * bw * 1.5, cy + bh * 0.1),
            (cx - face * bw * 0.8, cy + bh * 0.4)]
    d.polygon(tail, fill=colours["wing"])
    shapes += tail
    d.ellipse([cx - bw, cy - bh, cx + bw, cy + bh], fill=colours["body"])
    shapes += [(cx - bw, cy - bh), (cx + bw, cy + bh)]
    d.ellipse([cx - bw * 0.55 - face * bw * 0.15, cy - bh * 0.55, cx + bw * 0.55 - face * bw * 0.15,
               cy + bh * 0.35], fill=colours["wing"])
    d.ellipse([hx - hr, hy - hr, hx + hr, hy + hr], fill=colours["head"])
    shapes += [(hx - hr, hy - hr), (hx + hr, hy + hr)]
    beak = [(hx + face * hr * 0.8, hy - hr * 0.3), (hx + face * hr * 1.8, hy),
            (hx + face * hr * 0.8, hy + hr * 0.3)]
    d.polygon(beak, fill=colours["beak"])
    shapes += beak
    d.ellipse([hx + face * hr * 0.3 - hr * 0.15, hy - hr * 0.35, hx + face * hr * 0.3 + hr * 0.15,
               hy - hr * 0.05], fill=(10, 10, 10))
    xs = [p[0] for p in shapes]
    ys = [p[1] for p in shapes]
    x0, y0 = max(0.0, min(xs)), max(0.0, min(ys))
    x1, y1 = min(w - 1.0, max(xs)), min(h - 1.0, max(ys))
    box = (float(np.floor(x0)), float(np.floor(y0)), float(np.ceil(x1 - np.floor(x0))),
           float(np.ceil(y1 - np.floor(y0))))
    return _finish(np.asarray(im, np.float32), rng, 2.0), box, scale


def _word_vector(word: str, dim: int, cache: dict) -> np.ndarray:
    if word not in cache:
        seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")
        cache[word] = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return cache[word]


def _embed_caption(caption: str, dim: int, cache: dict) -> np.ndarray:
    """A fixed bag-of-words projection: the stand-in for the char-CNN-RNN text encoder."""
    words = re.findall(r"[a-z]+", caption.lower())
    v = np.sum([_word_vector(wd, dim, cache) for wd in words], axis=0)
    return (v / np.sqrt(len(words)) * 0.1).astype(np.float32)


# ----------------------------------------------------------------------------- stand-in data sets

def standin_cifar10(root, n_per_batch: int = 100, seed: int = 0, archive: bool = True) -> dict:
    """Write a CIFAR-10 stand-in in the real ``cifar-10-batches-py`` format.

    ``data_batch_1..5`` and ``test_batch`` (dicts with "data" uint8 (n, 3072), "labels",
    "batch_label", "filenames", pickled as Python 2 did) and ``batches.meta``; with ``archive``
    also ``cifar-10-python.tar.gz`` with the official internal layout. Ten classes, each a
    shape in its own hue over a gradient. Deterministic from ``seed`` (byte-identical files).
    Returns ``{"root", "dir", "archive"}`` (archive None when not written).
    """
    root = Path(root)
    folder = root / CIFAR10_DIRNAME
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 10])
    batches = [(f"data_batch_{i}", f"training batch {i} of 5") for i in range(1, 6)]
    batches.append(("test_batch", "testing batch 1 of 1"))
    count = 0
    for name, label in batches:
        labels = [int(v) for v in rng.permutation(np.arange(n_per_batch) % 10)]
        data = np.stack([_cifar_image(rng, y).transpose(2, 0, 1).reshape(-1) for y in labels])
        filenames = [f"standin_{CIFAR10_CLASSES[y]}_s_{count + i:06d}.png" for i, y in enumerate(labels)]
        count += n_per_batch
        _dump_py2({"batch_label": label, "labels": labels, "data": data, "filenames": filenames},
                  folder / name)
    _dump_py2({"num_cases_per_batch": n_per_batch, "label_names": list(CIFAR10_CLASSES),
               "num_vis": 3072}, folder / "batches.meta")
    (folder / "readme.html").write_text(
        "<html><body><p>colabkit stand-in for CIFAR-10 (generated shapes, not the real data).</p>"
        "</body></html>\n")
    out = None
    if archive:
        out = root / CIFAR10_FILENAME
        _write_targz(out, root, [CIFAR10_DIRNAME])
    return {"root": root, "dir": folder, "archive": out}


def standin_celeba(root, n: int = 64, seed: int = 0) -> dict:
    """Write ``img_align_celeba.zip`` holding ``img_align_celeba/000001.jpg``... (178x218 faces).

    Returns ``{"root", "archive"}``.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 218])
    with tempfile.TemporaryDirectory(dir=root, prefix=".celeba-") as tmp:
        folder = Path(tmp) / "img_align_celeba"
        folder.mkdir()
        for i in range(1, n + 1):
            _save_jpeg(_face_image(rng), folder / f"{i:06d}.jpg")
        out = root / CELEBA_FILENAME
        _write_zip(out, Path(tmp), "img_align_celeba")
    return {"root": root, "archive": out}


def standin_unpaired(root, name: str = "horse2zebra", n_train_a: int = 8, n_train_b: int = 10,
                     n_test_a: int = 3, n_test_b: int = 4, size: int = 256, seed: int = 0,
                     archive: bool = True) -> dict:
    """Write a CycleGAN-style unpaired set: ``name/trainA, trainB, testA, testB`` of JPEGs.

    Domain A: warm horizontal stripes with a brown ellipse; domain B: cool vertical stripes
    with a black-and-white striped ellipse (the same kind of layout, a different style). With
    ``archive`` also ``name.zip`` with the single top-level folder ``name/`` like the official
    archives. Returns ``{"root", "dir", "archive"}``.
    """
    root = Path(root)
    folder = root / name
    rng = np.random.default_rng([seed, size])
    counts = {"trainA": n_train_a, "trainB": n_train_b, "testA": n_test_a, "testB": n_test_b}
    for sub, n in counts.items():
        d = folder / sub
        d.mkdir(parents=True, exist_ok=True)
        for i in range(1, n + 1):
            _save_jpeg(_unpaired_image(rng, sub[-1], size), d / f"n{i:08d}_{sub}.jpg")
    out = None
    if archive:
        out = root / f"{name}.zip"
        _write_zip(out, root, name)
    return {"root": root, "dir": folder, "archive": out}


def standin_cub(root, n_classes: int = 4, per_class: int = 6, seed: int = 0, size=(200, 150),
                archive: bool = False) -> dict:
    """Write a CUB-200-2011 stand-in with the StackGAN authors' preprocessed files.

    Under ``root``:

    * ``CUB_200_2011/images/<NNN.Class_Name>/<file>.jpg`` and ``images.txt``,
      ``bounding_boxes.txt`` (tight boxes around the bird), ``classes.txt``,
      ``image_class_labels.txt``, ``train_test_split.txt``;
    * ``text_c10/<class dir>/<file>.txt``: 10 captions naming the drawn colours;
    * ``birds/train`` and ``birds/test`` (classes split 3:1 like StackGAN's 150/50) with
      ``char-CNN-RNN-embeddings.pickle`` (float32 (N, 10, 1024), a bag-of-words projection of
      the captions), ``filenames.pickle`` ("class_dir/file" without extension) and
      ``class_info.pickle`` (int class ids), pickled as Python 2 did (protocol 2);
    * with ``archive``: ``CUB_200_2011.tgz`` and ``birds.zip`` as well.

    ``size`` is (width, height) of the images. Returns a dict of these paths.
    """
    root = Path(root)
    w, h = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng([seed, 200])
    cub = root / "CUB_200_2011"
    images_dir = cub / "images"
    text_dir = root / "text_c10"
    birds = root / "birds"
    names = list(_BIRD_COLOURS)
    dim = 1024
    word_cache: dict = {}
    n_train_classes = max(1, round(n_classes * 0.75)) if n_classes > 1 else 1
    records = {"train": [], "test": []}
    lines = {"images": [], "boxes": [], "classes": [], "labels": [], "split": []}
    image_id = 0
    for k in range(n_classes):
        body = names[k % len(names)]
        wing = names[(k * 3 + 1) % len(names)]
        head = names[(k * 7 + 4) % len(names)]
        if wing == body:
            wing = names[(names.index(wing) + 1) % len(names)]
        beak = "orange" if k % 2 else "black"
        species = _BIRD_SPECIES[k % len(_BIRD_SPECIES)]
        cls_name = f"{body.capitalize()}_{species}" + (f"_{k}" if k >= len(_BIRD_SPECIES) else "")
        cls_dir = f"{k + 1:03d}.{cls_name}"
        lines["classes"].append(f"{k + 1} {cls_dir}")
        (images_dir / cls_dir).mkdir(parents=True, exist_ok=True)
        (text_dir / cls_dir).mkdir(parents=True, exist_ok=True)
        colours = {"body": _BIRD_COLOURS[body], "wing": _BIRD_COLOURS[wing],
                   "head": _BIRD_COLOURS[head], "beak": _BIRD_COLOURS[beak]}
        split = "train" if k < n_train_classes else "test"
        for j in range(per_class):
            image_id += 1
            stem = f"{cls_name}_{j + 1:04d}_{100000 + image_id}"
            img, box, scale = _bird_image(rng, colours, w, h)
            _save_jpeg(img, images_dir / cls_dir / f"{stem}.jpg")
            words = {"body": body, "wing": wing, "head": head, "beak": beak,
                     "size": "small" if scale < 0.62 else "large"}
            captions = [_CAPTIONS[i].format(**words) for i in rng.permutation(len(_CAPTIONS))]
            (text_dir / cls_dir / f"{stem}.txt").write_text("\n".join(captions) + "\n")
            emb = np.stack([_embed_caption(c, dim, word_cache) for c in captions])
            records[split].append((f"{cls_dir}/{stem}", k + 1, emb))
            lines["images"].append(f"{image_id} {cls_dir}/{stem}.jpg")
            lines["boxes"].append(f"{image_id} " + " ".join(f"{v:.1f}" for v in box))
            lines["labels"].append(f"{image_id} {k + 1}")
            lines["split"].append(f"{image_id} {1 if j % 2 == 0 else 0}")
    for key, fname in (("images", "images.txt"), ("boxes", "bounding_boxes.txt"),
                       ("classes", "classes.txt"), ("labels", "image_class_labels.txt"),
                       ("split", "train_test_split.txt")):
        (cub / fname).write_text("\n".join(lines[key]) + "\n")
    for split, recs in records.items():
        d = birds / split
        d.mkdir(parents=True, exist_ok=True)
        emb = np.stack([r[2] for r in recs]) if recs else np.zeros((0, 10, dim), np.float32)
        _dump_py2(emb.astype(np.float32), d / "char-CNN-RNN-embeddings.pickle")
        _dump_py2([r[0] for r in recs], d / "filenames.pickle")
        _dump_py2([int(r[1]) for r in recs], d / "class_info.pickle")
    out = {"root": root, "cub": cub, "images": images_dir, "text": text_dir, "birds": birds,
           "train": birds / "train", "test": birds / "test"}
    if archive:
        out["cub_archive"] = root / "CUB_200_2011.tgz"
        _write_targz(out["cub_archive"], root, ["CUB_200_2011"])
        out["birds_archive"] = root / "birds.zip"
        _write_zip(out["birds_archive"], root, "birds")
    return out
