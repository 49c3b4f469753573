"""Google Drive downloads through gdown, with Colab's gdown 5.2.2 and the newest 6.x alike.

gdown handles Drive's redirects and virus-scan confirmation pages. gdown >= 6.3 streams into
colabkit's progress bar and hasher and takes a timeout; older versions (Colab ships 5.2.2) take
none of them, so colabkit does that work itself around them (:func:`_gdown_download_legacy`).
Drive's refusals (quota, sign-in pages, HTTP errors) become the errors of :mod:`.advice`.
"""

from __future__ import annotations

import inspect
import sys
import threading
import urllib.parse
from pathlib import Path

from ._io import _bar
from .advice import (
    _classify_page,
    _drive_permission_error,
    _drive_quota_error,
    _error_for_page,
    _http_error,
    _Job,
    _network_error,
)
from .errors import DataError, DownloadError
from .hashing import _Hashes

# How a "gdrive:<id>" source becomes a URL for gdown. Module-level so that tests can point
# it at a loopback server (gdown then downloads it like any other URL).
DRIVE_URL = "https://drive.google.com/uc?id={id}&export=download"


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
