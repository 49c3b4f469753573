"""Turning a failed download into a :class:`DataError` that tells the learner what to do.

Google Drive answers a refused download with an HTML page (quota used up, sign-in needed), and a
moved link often yields an HTML page with status 200: these pages are recognised by their words
and translated, like HTTP errors and broken connections, into errors whose message names the
file, the cause, and where a copy obtained by hand must go (:meth:`_Job.place_it`).
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from .errors import DataError, DownloadError, DrivePermissionError, DriveQuotaError, HTMLPageError, HTTPStatusError

# Where a learner opens a Drive file in a browser (to copy it to their own Drive).
DRIVE_VIEW_URL = "https://drive.google.com/file/d/{id}/view"

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



class _Job:
    """What one fetch call is about; used to write helpful error messages."""

    def __init__(self, source: str, filename: str, dest: Path, cache, url: str):
        self.source = source
        self.url = url          # what is downloaded: the source, or the Drive address of a "gdrive:" source
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
    url = job.url
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
