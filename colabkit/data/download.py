"""Downloading one file: :func:`fetch`, with the cache, checksums and errors that say what to do.

:func:`fetch` brings one file (an archive, a weights file) to the VM's fast local disk. It first
looks in a persistent cache folder (Google Drive in Colab, :mod:`.cache`), so a new Colab session
copies the archive instead of downloading it again, verifies a checksum (:mod:`.hashing`), and
turns every way a download can go wrong (HTTP errors, Google Drive's quota and sign-in pages, an
HTML page instead of the file, a wrong checksum) into a :class:`DataError` whose message says what
the learner can do (:mod:`.advice`). Nothing half-written is ever left at the destination or in
the cache. Plain URLs are downloaded here with urllib; Google Drive files by :mod:`.drive`.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import warnings
from pathlib import Path

from . import drive
from ._io import _CHUNK, _bar, _remove_tree_or_file, _unlink
from .advice import _classify_page, _error_for_page, _http_error, _is_html_file, _Job, _looks_like_html, _network_error
from .cache import _Cache
from .errors import ChecksumError, DownloadError
from .hashing import _expected_digests, _hash_file, _Hashes, _mismatch

_USER_AGENT = "colabkit-data/0.1 (+python urllib)"


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
    drive_id = source[len("gdrive:"):] if source.startswith("gdrive:") else None
    # drive.DRIVE_URL is looked up per call: tests point it at a loopback server.
    url = drive.DRIVE_URL.format(id=drive_id) if drive_id else source
    job = _Job(source, filename, dest, cache, url)

    # Leftovers of an earlier call that was killed mid-way (never a complete file).
    for stale in dest_dir.glob(f".{glob.escape(filename)}.fetch-*"):
        _remove_tree_or_file(stale)

    def save_to_cache():
        if cache is None:
            return
        try:
            if cache.exists() and cache.size() == dest.stat().st_size:
                return
            cache.store_file(dest, progress)
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
            drive._download_drive(job, job.url, tmp, hashes, timeout, progress)
        elif drive._is_drive_url(source):
            drive._download_drive(job, source, tmp, hashes, timeout, progress)
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
