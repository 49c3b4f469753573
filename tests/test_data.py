"""Tests of colabkit.data: downloads against a loopback server, archives, file formats, stand-ins.

Everything is offline: an http.server on 127.0.0.1 in a thread plays the data set hosts and
Google Drive, and the data are the project's own stand-ins in the real on-disk formats.
"""

import hashlib
import importlib
import io
import os
import pickle
import pickletools
import shutil
import subprocess
import sys
import tarfile
import threading
import time
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from fakedrive import FakeDrive, make_certificate
from PIL import Image
from tqdm import tqdm as std_tqdm

from colabkit import data

REPO = Path(__file__).resolve().parents[1]

# What Google Drive serves when a file's download quota is used up (the parts gdown and
# colabkit look at; each element on its own line, as Drive writes it).
QUOTA_PAGE = b"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Google Drive - Quota exceeded</title></head>
<body><div class="uc-main">
<div id="uc-text"><p class="uc-error-caption">Sorry, you can&#39;t view or download this file at this time.</p>
<p class="uc-error-subcaption">Too many users have viewed or downloaded this file recently. Please try \
accessing the file again later. If the file you are trying to access is particularly large or is shared \
with many people, it may take up to 24 hours to be able to view or download the file.</p>
</div></div></body></html>
"""

# Google's sign-in page, which a file that is not shared publicly redirects to.
SIGNIN_PAGE = b"""<!doctype html>
<html lang="en"><head><title>Sign in - Google Accounts</title></head>
<body><form method="post" action="https://accounts.google.com/v3/signin/identifier?continue=drive">
<input type="email" name="identifier"><div>Use your Google Account</div></form></body></html>
"""

MOVED_PAGE = b"""<html><head><title>Page moved</title></head>
<body><p>This data set has a new home.</p></body></html>
"""


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 with a table of routes and a log of requests.

    ``/drive/uc?id=ID`` is routed by ``ID`` (key ``"drive:ID"``), the way Drive links are.
    """

    def __init__(self):
        self.routes = {}
        self.hits = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.hits.append(self.path)
                parts = urllib.parse.urlsplit(self.path)
                key = parts.path
                if key == "/drive/uc":
                    key = "drive:" + urllib.parse.parse_qs(parts.query).get("id", [""])[0]
                status, content_type, body, length = server.routes.get(
                    key, (404, "text/html", b"<html><title>404 Not Found</title></html>", None))
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body) if length is None else length))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)
        self.thread.start()

    def add(self, key, body, *, status=200, content_type="application/octet-stream", length=None):
        self.routes[key] = (status, content_type, body, length)
        return self.base + key if key.startswith("/") else key

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    # urllib and requests must talk to 127.0.0.1 directly even where a proxy is configured.
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    """The CIFAR-10 stand-in (folder and archive) with the archive's bytes and digests."""
    paths = data.standin_cifar10(tmp_path_factory.mktemp("cifar"), n_per_batch=30, seed=0)
    raw = paths["archive"].read_bytes()
    return {**paths, "bytes": raw, "md5": hashlib.md5(raw).hexdigest(),
            "sha256": hashlib.sha256(raw).hexdigest()}


@pytest.fixture
def server(cifar, monkeypatch):
    srv = LoopbackServer()
    srv.add("/cifar-10-python.tar.gz", cifar["bytes"])
    srv.add("/wrong.tar.gz", b"these are not the bytes you are looking for" * 100)
    srv.add("/moved.tar.gz", MOVED_PAGE, content_type="text/html")
    srv.add("/truncated.tar.gz", cifar["bytes"][:1000], length=len(cifar["bytes"]))
    srv.add("drive:GOOD_FILE_ID", cifar["bytes"])
    srv.add("drive:QUOTA_ID", QUOTA_PAGE, content_type="text/html; charset=utf-8")
    srv.add("/quota-403/birds.zip", QUOTA_PAGE, status=403, content_type="text/html; charset=utf-8")
    srv.add("drive:FORBIDDEN_ID", b"", status=403, content_type="text/html; charset=utf-8")
    srv.add("drive:PRIVATE_ID", SIGNIN_PAGE, content_type="text/html; charset=utf-8")
    srv.add("drive:TRUNCATED_ID", cifar["bytes"][:1000], length=len(cifar["bytes"]))
    monkeypatch.setattr(data.drive, "DRIVE_URL", srv.base + "/drive/uc?id={id}&export=download")
    yield srv
    srv.close()


def all_entries(folder: Path):
    """Every file and folder below ``folder``, hidden ones included (empty if it is missing)."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) if folder.exists() else []


@pytest.fixture
def bars(monkeypatch):
    """Record every progress bar colabkit.data opens."""
    made = []

    class RecordingTqdm(std_tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(data._io, "tqdm", RecordingTqdm)
    return made


# ----------------------------------------------------------------------------- fetch over HTTP

def test_download_with_progress_bar_to_full_size(server, cifar, tmp_path, bars):
    dest = tmp_path / "dest"
    path = data.fetch(server.base + "/cifar-10-python.tar.gz", data.CIFAR10_FILENAME, dest_dir=dest,
                      md5=cifar["md5"], sha256=cifar["sha256"])
    assert path == dest / data.CIFAR10_FILENAME
    assert path.read_bytes() == cifar["bytes"]
    assert all_entries(dest) == [data.CIFAR10_FILENAME]        # no temporary leftovers
    size = len(cifar["bytes"])
    assert any(b.total == size and b.n == size for b in bars), [(b.total, b.n) for b in bars]


def test_checksum_mismatch_deletes_everything(server, tmp_path):
    dest, cache = tmp_path / "dest", tmp_path / "cache"
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(data.ChecksumError) as err:
        data.fetch(server.base + "/wrong.tar.gz", "wrong.tar.gz", cache_dir=cache, dest_dir=dest,
                   sha256=wrong, progress=False)
    served = server.routes["/wrong.tar.gz"][2]
    assert err.value.expected == wrong
    assert err.value.actual == hashlib.sha256(served).hexdigest()
    assert wrong in str(err.value) and err.value.actual in str(err.value)
    assert all_entries(dest) == []
    assert all_entries(cache) == []


def test_wrong_content_with_the_real_md5_is_refused(server, tmp_path):
    with pytest.raises(data.ChecksumError, match="md5"):
        data.fetch(server.base + "/wrong.tar.gz", data.CIFAR10_FILENAME, dest_dir=tmp_path,
                   md5=data.CIFAR10_MD5, progress=False)
    assert all_entries(tmp_path) == []


@pytest.mark.parametrize("cache_kind", ["folder", "fsspec"])
def test_second_session_copies_from_cache_without_network(server, cifar, tmp_path, cache_kind, bars):
    cache = tmp_path / "drive" / "cache" if cache_kind == "folder" else f"memory://ck-{uuid.uuid4().hex}"
    url = server.base + "/cifar-10-python.tar.gz"
    first = data.fetch(url, data.CIFAR10_FILENAME, cache_dir=cache, dest_dir=tmp_path / "vm1",
                       md5=cifar["md5"])
    assert first.read_bytes() == cifar["bytes"]
    if cache_kind == "folder":
        assert all_entries(cache) == [data.CIFAR10_FILENAME]    # renamed into place, no temp files
    server.close()                                              # a new Colab session, host unreachable
    hits = len(server.hits)
    bars.clear()
    second = data.fetch(url, data.CIFAR10_FILENAME, cache_dir=cache, dest_dir=tmp_path / "vm2",
                        md5=cifar["md5"])
    assert second == tmp_path / "vm2" / data.CIFAR10_FILENAME
    assert second.read_bytes() == cifar["bytes"]
    assert len(server.hits) == hits
    size = len(cifar["bytes"])
    assert any(b.n == size and b.total == size for b in bars)   # the copy has a progress bar too
    if cache_kind == "fsspec":
        import fsspec

        fsspec.filesystem("memory").rm(cache.split("://", 1)[1], recursive=True)


def test_existing_destination_is_not_downloaded_again(server, cifar, tmp_path):
    url = server.base + "/cifar-10-python.tar.gz"
    data.fetch(url, data.CIFAR10_FILENAME, dest_dir=tmp_path, md5=cifar["md5"], progress=False)
    hits = len(server.hits)
    data.fetch(url, data.CIFAR10_FILENAME, dest_dir=tmp_path, md5=cifar["md5"], progress=False)
    assert len(server.hits) == hits
    # a damaged copy at the destination is replaced
    (tmp_path / data.CIFAR10_FILENAME).write_bytes(b"damaged")
    path = data.fetch(url, data.CIFAR10_FILENAME, dest_dir=tmp_path, md5=cifar["md5"], progress=False)
    assert len(server.hits) == hits + 1
    assert path.read_bytes() == cifar["bytes"]


def test_bad_cached_copy_is_replaced(server, cifar, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / data.CIFAR10_FILENAME).write_bytes(cifar["bytes"][:5000])    # a truncated Drive copy
    path = data.fetch(server.base + "/cifar-10-python.tar.gz", data.CIFAR10_FILENAME, cache_dir=cache,
                      dest_dir=tmp_path / "dest", md5=cifar["md5"], progress=False)
    assert len(server.hits) == 1
    assert path.read_bytes() == cifar["bytes"]
    assert (cache / data.CIFAR10_FILENAME).read_bytes() == cifar["bytes"]
    assert all_entries(cache) == [data.CIFAR10_FILENAME]


def test_cache_write_failure_only_warns(server, cifar, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    with pytest.warns(UserWarning, match="cache"):
        path = data.fetch(server.base + "/cifar-10-python.tar.gz", data.CIFAR10_FILENAME,
                          cache_dir=blocker / "cache", dest_dir=tmp_path / "dest", md5=cifar["md5"],
                          progress=False)
    assert path.read_bytes() == cifar["bytes"]


def test_http_404_names_url_and_status(server, tmp_path):
    url = server.base + "/no-such-file.zip"
    with pytest.raises(data.HTTPStatusError) as err:
        data.fetch(url, "no-such-file.zip", dest_dir=tmp_path, progress=False)
    assert err.value.status == 404 and err.value.url == url
    assert "404" in str(err.value) and url in str(err.value)
    assert "What you can do" in str(err.value)
    assert all_entries(tmp_path) == []


def test_html_page_instead_of_archive(server, tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(data.HTMLPageError) as err:
        data.fetch(server.base + "/moved.tar.gz", "moved.tar.gz", cache_dir=cache, dest_dir=tmp_path / "d",
                   progress=False)
    assert "Page moved" in str(err.value)
    assert str(cache / "moved.tar.gz") in str(err.value)          # where to put a manual copy
    assert all_entries(tmp_path / "d") == [] and all_entries(cache) == []


def test_broken_connection_leaves_nothing(server, tmp_path):
    with pytest.raises(data.DownloadError):
        data.fetch(server.base + "/truncated.tar.gz", "truncated.tar.gz", dest_dir=tmp_path, progress=False)
    assert all_entries(tmp_path) == []


def test_file_url_source(cifar, tmp_path):
    path = data.fetch(cifar["archive"].as_uri(), data.CIFAR10_FILENAME, dest_dir=tmp_path,
                      sha256=cifar["sha256"], progress=False)
    assert path.read_bytes() == cifar["bytes"]


def test_stale_temporary_files_are_cleaned(server, cifar, tmp_path):
    stale = tmp_path / f".{data.CIFAR10_FILENAME}.fetch-dead"     # a VM died mid-download
    stale.mkdir()
    (stale / data.CIFAR10_FILENAME).write_bytes(b"half")
    data.fetch(server.base + "/cifar-10-python.tar.gz", data.CIFAR10_FILENAME, dest_dir=tmp_path,
               md5=cifar["md5"], progress=False)
    assert all_entries(tmp_path) == [data.CIFAR10_FILENAME]


def test_a_file_placed_in_the_cache_is_fetched_from_there(server, cifar, tmp_path):
    cache = tmp_path / "drive" / "cache"
    cache.mkdir(parents=True)
    (cache / f".{data.CIFAR10_FILENAME}.1234abcd.partial").write_bytes(b"half")   # an older version's leftover
    where = data.place_in_cache(cifar["archive"], cache)
    assert where == str(cache / data.CIFAR10_FILENAME)
    assert all_entries(cache) == [data.CIFAR10_FILENAME]                         # whole, no temporary file
    path = data.fetch("http://127.0.0.1:9/unreachable.tar.gz", data.CIFAR10_FILENAME, cache_dir=cache,
                      dest_dir=tmp_path / "dest", md5=cifar["md5"], progress=False)
    assert path.read_bytes() == cifar["bytes"] and server.hits == []
    memory = f"memory://place-{uuid.uuid4().hex}"
    assert data.place_in_cache(cifar["archive"], memory, "renamed.tar.gz") == memory + "/renamed.tar.gz"
    path = data.fetch("http://127.0.0.1:9/unreachable.tar.gz", "renamed.tar.gz", cache_dir=memory,
                      dest_dir=tmp_path / "dest2", md5=cifar["md5"], progress=False)
    assert path.read_bytes() == cifar["bytes"]
    with pytest.raises(FileNotFoundError, match="not a file"):
        data.place_in_cache(tmp_path / "no-such-archive.zip", cache)
    with pytest.raises(ValueError, match="plain file name"):
        data.place_in_cache(cifar["archive"], cache, "sub/dir.zip")


# ----------------------------------------------------------------------------- fetch from Google Drive

def test_gdrive_download_through_gdown(server, cifar, tmp_path, bars):
    cache = tmp_path / "cache"
    path = data.fetch("gdrive:GOOD_FILE_ID", "cifar.tar.gz", cache_dir=cache, dest_dir=tmp_path / "dest",
                      md5=cifar["md5"])
    assert path.read_bytes() == cifar["bytes"]
    assert (cache / "cifar.tar.gz").read_bytes() == cifar["bytes"]
    assert server.hits == ["/drive/uc?id=GOOD_FILE_ID&export=download"]
    size = len(cifar["bytes"])
    assert any(b.n == size and b.total == size for b in bars)


@pytest.mark.parametrize("via", ["gdrive", "url-403"])
def test_gdrive_quota_page(server, tmp_path, via):
    # through gdown (Drive serves the quota page with status 200), and as an HTTP 403 error
    # page on a plain URL
    cache = tmp_path / "drive" / "cache"
    source = "gdrive:QUOTA_ID" if via == "gdrive" else server.base + "/quota-403/birds.zip"
    with pytest.raises(data.DriveQuotaError) as err:
        data.fetch(source, "birds.zip", cache_dir=cache, dest_dir=tmp_path / "dest", progress=False)
    message = str(err.value)
    if via == "gdrive":
        assert server.hits == ["/drive/uc?id=QUOTA_ID&export=download"]
        assert "https://drive.google.com/file/d/QUOTA_ID/view" in message
    else:
        assert server.hits == ["/quota-403/birds.zip"] and "HTTP 403" in message
    assert "24 hours" in message
    assert str(cache / "birds.zip") in message                       # the exact place for a manual copy
    assert "fallback" in message
    assert isinstance(err.value, data.DataError)
    assert all_entries(tmp_path / "dest") == [] and all_entries(cache) == []


def test_gdrive_http_error(server, tmp_path):
    with pytest.raises(data.HTTPStatusError) as err:
        data.fetch("gdrive:FORBIDDEN_ID", "birds.zip", dest_dir=tmp_path, progress=False)
    assert err.value.status == 403 and "FORBIDDEN_ID" in err.value.url
    assert "quota" in str(err.value) and "shared publicly" in str(err.value)
    assert all_entries(tmp_path) == []


def test_gdrive_permission_page(server, tmp_path):
    with pytest.raises(data.DrivePermissionError) as err:
        data.fetch("gdrive:PRIVATE_ID", "birds.zip", dest_dir=tmp_path, progress=False)
    assert "Sign in" in str(err.value) and "fallback" in str(err.value)
    assert str(tmp_path / "birds.zip") in str(err.value)
    assert all_entries(tmp_path) == []


def test_gdrive_broken_connection_leaves_nothing(server, tmp_path):
    with pytest.raises(data.DownloadError) as err:
        data.fetch("gdrive:TRUNCATED_ID", "cifar.tar.gz", dest_dir=tmp_path, progress=False)
    assert not isinstance(err.value, (data.DriveError, data.HTTPStatusError))
    assert "run the cell again" in str(err.value)
    assert all_entries(tmp_path) == []


@pytest.mark.parametrize("page, error", [(QUOTA_PAGE, data.DriveQuotaError),
                                         (SIGNIN_PAGE, data.DrivePermissionError)])
def test_gdown_recognised_drive_pages_are_translated(monkeypatch, tmp_path, page, error):
    # On the real drive.google.com gdown parses Drive's page itself and raises its own
    # FileURLRetrievalError; run its real parser on the real pages.
    import gdown

    gdown_module = importlib.import_module("gdown.download")

    def fake_download(url, output, **kwargs):
        gdown_module.get_url_from_gdrive_confirmation(page.decode())
        raise AssertionError("gdown should have refused this page")

    monkeypatch.setattr(gdown, "download", fake_download)
    with pytest.raises(error):
        data.fetch("gdrive:SOME_ID", "birds.zip", dest_dir=tmp_path, progress=False)
    assert all_entries(tmp_path) == []


# ----------------------------------------------------------------------------- Google Drive's own hosts
# https://drive.google.com/… itself, played by tests/fakedrive.py through HTTPS_PROXY: here gdown
# runs its Drive logic (redirect, virus-scan form, Drive's error pages), not a plain download.
# All the tests named *gdrive* / *gdown* run twice: here with the newest gdown, and in a
# subprocess with Colab's gdown 5.2.2 (test_drive_tests_again_under_colab_gdown, at the end).

OLD_GDOWN = "5.2.2"   # what Colab ships (../shared/colab.md)


@pytest.fixture(scope="module")
def google_certificate(tmp_path_factory):
    return make_certificate(tmp_path_factory.mktemp("fake-google-tls"))


@pytest.fixture
def drive(google_certificate, cifar, monkeypatch):
    fake = FakeDrive(*google_certificate)
    fake.add("SMALL_ID", cifar["bytes"], name="cifar.tar.gz")
    fake.add("LARGE_ID", cifar["bytes"], name="cifar.tar.gz", kind="large")
    fake.add("QUOTA_ID", kind="quota")
    fake.add("PRIVATE_ID", kind="private")
    fake.add("STALL_ID", cifar["bytes"], name="cifar.tar.gz", kind="stall")
    for var in ("https_proxy", "HTTPS_PROXY"):
        monkeypatch.setenv(var, fake.proxy)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(fake.cert))
    assert data.drive.DRIVE_URL == "https://drive.google.com/uc?id={id}&export=download"   # the real address
    yield fake
    fake.close()


@pytest.mark.parametrize("size", ["small", "large"])
def test_gdrive_host_redirect_and_virus_scan_confirmation(drive, cifar, tmp_path, bars, size):
    cache = tmp_path / "cache"
    file_id = size.upper() + "_ID"
    path = data.fetch(f"gdrive:{file_id}", "cifar.tar.gz", cache_dir=cache, dest_dir=tmp_path / "dest",
                      md5=cifar["md5"], sha256=cifar["sha256"])
    assert path.read_bytes() == cifar["bytes"]
    assert (cache / "cifar.tar.gz").read_bytes() == cifar["bytes"]
    assert all_entries(tmp_path / "dest") == ["cifar.tar.gz"]
    hosts = [host for host, _ in drive.hits]
    first = urllib.parse.urlsplit(drive.hits[0][1])
    assert hosts[0] == "drive.google.com" and first.path == "/uc"
    assert urllib.parse.parse_qs(first.query)["id"] == [file_id]
    if size == "small":
        assert hosts == ["drive.google.com", "drive.usercontent.google.com"]
    else:   # the warning page, then the form gdown filled in: confirm=t and the page's uuid
        assert hosts == ["drive.google.com", "drive.usercontent.google.com", "drive.usercontent.google.com"]
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(drive.hits[2][1]).query)
        assert query["confirm"] == ["t"] and query["uuid"] == [drive.files[file_id]["uuid"]]
    size_bytes = len(cifar["bytes"])
    assert any(b.n == size_bytes and b.total == size_bytes for b in bars), [(b.n, b.total) for b in bars]


def test_gdrive_host_quota_page(drive, tmp_path):
    cache = tmp_path / "drive" / "cache"
    with pytest.raises(data.DriveQuotaError) as err:
        data.fetch("gdrive:QUOTA_ID", "birds.zip", cache_dir=cache, dest_dir=tmp_path / "dest", progress=False)
    message = str(err.value)
    assert "Too many users have viewed or downloaded this file recently" in message   # Drive's words
    assert "https://drive.google.com/file/d/QUOTA_ID/view" in message and "24 hours" in message
    assert str(cache / "birds.zip") in message and "fallback" in message
    assert [host for host, _ in drive.hits] == ["drive.google.com", "drive.usercontent.google.com"]
    assert all_entries(tmp_path / "dest") == [] and all_entries(cache) == []


def test_gdrive_host_sign_in_redirect(drive, tmp_path):
    with pytest.raises(data.DrivePermissionError) as err:
        data.fetch("gdrive:PRIVATE_ID", "birds.zip", dest_dir=tmp_path, progress=False)
    message = str(err.value)
    assert "Anyone with the link" in message and "fallback" in message
    assert str(tmp_path / "birds.zip") in message
    assert [host for host, _ in drive.hits] == ["drive.google.com", "accounts.google.com"]
    assert all_entries(tmp_path) == []


def test_gdrive_host_checksum_mismatch(drive, cifar, tmp_path):
    dest, cache = tmp_path / "dest", tmp_path / "cache"
    wrong = hashlib.sha256(b"the file as it was when the notebook was written").hexdigest()
    with pytest.raises(data.ChecksumError) as err:
        data.fetch("gdrive:LARGE_ID", "cifar.tar.gz", cache_dir=cache, dest_dir=dest, sha256=wrong,
                   progress=False)
    assert err.value.algorithm == "sha256" and err.value.expected == wrong
    assert err.value.actual == cifar["sha256"]                  # hashed while it streamed in
    assert wrong in str(err.value) and cifar["sha256"] in str(err.value)
    assert all_entries(dest) == [] and all_entries(cache) == []


def test_gdrive_host_connection_gone_quiet_times_out(drive, tmp_path):
    start = time.monotonic()
    with pytest.raises(data.DownloadError) as err:
        data.fetch("gdrive:STALL_ID", "cifar.tar.gz", dest_dir=tmp_path, progress=False, timeout=0.5)
    waited = time.monotonic() - start
    assert waited < 10, f"the download should give up after the 0.5 s timeout, it took {waited:.1f} s"
    assert not isinstance(err.value, data.ChecksumError)
    assert "internet connection" in str(err.value)
    assert all_entries(tmp_path) == []


def test_gdrive_tests_run_the_expected_gdown():
    """Which gdown these Drive tests ran, and which of colabkit's two ways of calling it."""
    import gdown

    wanted = os.environ.get("COLABKIT_TEST_GDOWN")
    if wanted:   # the subprocess run by test_drive_tests_again_under_colab_gdown
        assert gdown.__version__ == wanted
        assert Path(gdown.__file__).resolve().is_relative_to(Path(os.environ["COLABKIT_TEST_GDOWN_DIR"]).resolve())
        assert not data.drive._gdown_takes_callbacks(gdown.download)      # colabkit hashes, times out, reports
    else:
        assert int(gdown.__version__.split(".")[0]) >= 6, gdown.__version__
        assert data.drive._gdown_takes_callbacks(gdown.download)          # gdown does it (progress=, hasher=, …)
    print(f"gdown {gdown.__version__} from {gdown.__file__}")


def _old_gdown_dir() -> Path:
    """A folder holding only gdown 5.2.2: $COLABKIT_GDOWN_OLD, or installed once into .work/."""
    def holds_it(folder: Path) -> bool:
        return (folder / f"gdown-{OLD_GDOWN}.dist-info").is_dir() and (folder / "gdown" / "__init__.py").is_file()

    given = os.environ.get("COLABKIT_GDOWN_OLD")
    if given:
        if not holds_it(Path(given)):
            pytest.fail(f"COLABKIT_GDOWN_OLD={given} does not hold gdown {OLD_GDOWN}: make it with "
                        f"`pip install --no-deps --target DIR gdown=={OLD_GDOWN}` (gdown alone: the folder goes "
                        "first on PYTHONPATH) or unset it to let this test install it under .work/")
        return Path(given)
    folder = REPO / ".work" / f"gdown-{OLD_GDOWN}"
    if holds_it(folder):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                           "--no-deps", "--no-compile", "--target", str(partial), f"gdown=={OLD_GDOWN}"],
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0 or not holds_it(partial):
        shutil.rmtree(partial, ignore_errors=True)
        pytest.fail(f"Could not install gdown {OLD_GDOWN} (Colab's version) for the Drive tests: pip said\n"
                    f"{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}\nThis test needs the package index, or "
                    f"COLABKIT_GDOWN_OLD set to a folder made by `pip install --no-deps --target DIR "
                    f"gdown=={OLD_GDOWN}`.")
    try:
        partial.rename(folder)
    except OSError:   # another test process put it there first
        shutil.rmtree(partial, ignore_errors=True)
    assert holds_it(folder)
    return folder


def test_drive_tests_again_under_colab_gdown(tmp_path):
    """Every *gdrive*/*gdown* test of this file, in a subprocess that imports Colab's gdown 5.2.2."""
    old = _old_gdown_dir()
    env = dict(os.environ, COLABKIT_TEST_GDOWN=OLD_GDOWN, COLABKIT_TEST_GDOWN_DIR=str(old),
               HOME=str(tmp_path / "home"),   # gdown 5.2.2 makes ~/.cache/gdown when imported
               PYTHONPATH=os.pathsep.join(p for p in (str(old), os.environ.get("PYTHONPATH")) if p))
    report = tmp_path / "report.xml"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__,
                           "-k", "(gdrive or gdown) and not under_colab", f"--junitxml={report}"],
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    cases = ET.parse(report).getroot().iter("testcase")
    outcomes = {c.get("name"): [child.tag for child in c] for c in cases}
    assert all(not tags for tags in outcomes.values()), outcomes          # no failure, error or skip
    ran = {name.split("[")[0] for name in outcomes}
    expected = {name for name in globals() if name.startswith("test_") and ("gdrive" in name or "gdown" in name)
                and "under_colab" not in name}
    assert ran == expected, (sorted(ran), sorted(expected))
    assert "test_gdrive_tests_run_the_expected_gdown" in ran            # asserted gdown 5.2.2 was imported
    assert len(outcomes) >= 12, sorted(outcomes)
    print(f"gdown {OLD_GDOWN} (from {old}): {len(outcomes)} Drive tests passed")


# ----------------------------------------------------------------------------- extract

CIFAR_EXPECT = [f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)] + ["cifar-10-batches-py/test_batch"]


def test_fetch_extract_read_cifar_standin(server, cifar, tmp_path):
    archive = data.fetch(server.base + "/cifar-10-python.tar.gz", data.CIFAR10_FILENAME,
                         dest_dir=tmp_path / "dl", md5=cifar["md5"], progress=False)
    root = data.extract(archive, tmp_path / "data", expect=CIFAR_EXPECT, progress=False)
    x, y = data.read_cifar10(root, train=True)
    assert x.shape == (150, 32, 32, 3) and x.dtype == np.uint8
    assert y.shape == (150,) and y.dtype == np.int64 and set(y.tolist()) == set(range(10))
    xt, yt = data.read_cifar10(root / data.CIFAR10_DIRNAME, train=False)
    assert xt.shape == (30, 32, 32, 3) and yt.shape == (30,)
    with pytest.raises(data.LayoutError, match="data_batch_1"):
        data.read_cifar10(tmp_path / "dl")
    # structured, not noise: neighbouring pixels agree, images are not flat
    diffs = np.abs(np.diff(x.astype(np.int16), axis=2)).mean()
    assert diffs < 25 and x.reshape(len(x), -1).std(axis=1).min() > 10
    # and the labels are learnable: class-mean images classify held-out images far above chance
    centroids = np.stack([x[y == k].reshape((y == k).sum(), -1).mean(0) for k in range(10)])
    dist = ((xt.reshape(len(xt), 1, -1).astype(np.float32) - centroids[None]) ** 2).sum(-1)
    assert (dist.argmin(1) == yt).mean() > 0.3


def test_extract_layout_error_lists_missing_and_found(tmp_path):
    paths = data.standin_unpaired(tmp_path / "src", n_train_a=1, n_train_b=1, n_test_a=1, n_test_b=1,
                                  size=32)
    with pytest.raises(data.LayoutError) as err:
        data.extract(paths["archive"], tmp_path / "data", expect=["cifar-10-batches-py/data_batch_1"],
                     progress=False)
    assert err.value.missing == ["cifar-10-batches-py/data_batch_1"]
    assert err.value.found == ["horse2zebra/"]
    assert "cifar-10-batches-py/data_batch_1" in str(err.value) and "horse2zebra/" in str(err.value)


def test_check_layout_points_one_level_down(tmp_path):
    (tmp_path / "horse2zebra" / "trainA").mkdir(parents=True)
    (tmp_path / "horse2zebra" / "trainB").mkdir()
    assert data.check_layout(tmp_path / "horse2zebra", ["trainA", "trainB"]) == tmp_path / "horse2zebra"
    with pytest.raises(data.LayoutError, match="one level down"):
        data.check_layout(tmp_path, ["trainA", "trainB"])
    with pytest.raises(data.LayoutError, match="does not exist"):
        data.check_layout(tmp_path / "nowhere", ["trainA"])


def _zip_with(path: Path, name: str) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("good/file.txt", b"fine")
        zf.writestr(name, b"escaped")
    return path


def _tar_with(path: Path, name: str, linkname=None) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        good = tarfile.TarInfo("good/file.txt")
        good.size = 4
        tf.addfile(good, io.BytesIO(b"fine"))
        bad = tarfile.TarInfo(name)
        if linkname is None:
            bad.size = 7
            tf.addfile(bad, io.BytesIO(b"escaped"))
        else:
            bad.type = tarfile.SYMTYPE
            bad.linkname = linkname
            tf.addfile(bad)
    return path


@pytest.mark.parametrize("make", [
    lambda d: _zip_with(d / "evil.zip", "../evil.txt"),
    lambda d: _zip_with(d / "evil.zip", "good/../../evil.txt"),
    lambda d: _zip_with(d / "evil.zip", "/tmp/evil.txt"),
    lambda d: _tar_with(d / "evil.tar.gz", "../evil.txt"),
    lambda d: _tar_with(d / "evil.tar.gz", "/tmp/evil.txt"),
    lambda d: _tar_with(d / "evil.tar.gz", "good/link", linkname="../../evil.txt"),
    lambda d: _tar_with(d / "evil.tar.gz", "good/link", linkname="/etc/passwd"),
], ids=["zip-dotdot", "zip-nested-dotdot", "zip-absolute", "tar-dotdot", "tar-absolute", "tar-symlink",
        "tar-absolute-symlink"])
def test_extract_refuses_path_traversal(tmp_path, make):
    src = tmp_path / "src"
    src.mkdir()
    archive = make(src)
    dest = tmp_path / "a" / "b" / "dest"
    with pytest.raises(data.UnsafeArchiveError):
        data.extract(archive, dest, progress=False)
    assert all_entries(dest) == []                       # nothing at all, not even the good member
    assert not (tmp_path / "a" / "b" / "evil.txt").exists() and not (tmp_path / "a" / "evil.txt").exists()


def test_half_extracted_folder_is_redone_and_complete_one_skipped(cifar, tmp_path, monkeypatch):
    dest = tmp_path / "data"
    data.extract(cifar["archive"], dest, expect=CIFAR_EXPECT, progress=False)
    marker = dest / f".{data.CIFAR10_FILENAME}.extracted.json"
    assert marker.is_file()
    batches = dest / data.CIFAR10_DIRNAME

    # The VM died mid-extraction: no marker, a truncated file, a missing one, a staging leftover.
    marker.unlink()
    (batches / "data_batch_3").write_bytes(b"trunc")
    (batches / "data_batch_5").unlink()
    stale = dest / f".{data.CIFAR10_FILENAME}.extracting-dead"
    stale.mkdir()
    (stale / "junk").write_bytes(b"x")
    data.extract(cifar["archive"], dest, expect=CIFAR_EXPECT, progress=False)
    for name in ("data_batch_3", "data_batch_5", "test_batch", "batches.meta"):
        assert (batches / name).read_bytes() == (cifar["dir"] / name).read_bytes()
    assert not stale.exists() and marker.is_file()

    # A complete extraction is skipped...
    def must_not_run(*args, **kwargs):
        raise AssertionError("a complete extraction was redone")

    monkeypatch.setattr(data.archive, "_extract_tar", must_not_run)
    data.extract(cifar["archive"], dest, expect=CIFAR_EXPECT, progress=False)
    # ...but not when an expected file has gone missing since.
    monkeypatch.undo()
    (batches / "data_batch_2").unlink()
    data.extract(cifar["archive"], dest, expect=CIFAR_EXPECT, progress=False)
    assert (batches / "data_batch_2").read_bytes() == (cifar["dir"] / "data_batch_2").read_bytes()


def test_damaged_archive(cifar, tmp_path):
    broken = tmp_path / data.CIFAR10_FILENAME
    broken.write_bytes(cifar["bytes"][: len(cifar["bytes"]) // 2])
    dest = tmp_path / "data"
    with pytest.raises(data.ArchiveError, match="damaged or truncated"):
        data.extract(broken, dest, progress=False)
    assert all_entries(dest) == []
    html_instead = tmp_path / "birds.zip"
    html_instead.write_bytes(QUOTA_PAGE)
    with pytest.raises(data.ArchiveError, match="HTML"):
        data.extract(html_instead, dest, progress=False)


# ----------------------------------------------------------------------------- file formats

def test_load_py2_pickle_reads_python2_strings(tmp_path):
    # A genuine protocol-2 pickle as Python 2 wrote it: {'data': 'été'} with byte strings.
    raw = b"\x80\x02}q\x00U\x04dataq\x01U\x03\xe9t\xe9q\x02s."
    path = tmp_path / "py2.pickle"
    path.write_bytes(raw)
    with pytest.raises(UnicodeDecodeError):
        pickle.loads(raw)                     # why encoding="latin1" is needed
    assert data.load_py2_pickle(path) == {"data": "\xe9t\xe9"}


def test_load_py2_pickle_truncated(tmp_path):
    path = tmp_path / "filenames.pickle"
    buf = io.BytesIO()
    pickle.dump([f"001.Bird/file_{i}" for i in range(100)], buf, protocol=2)
    path.write_bytes(buf.getvalue()[:200])
    with pytest.raises(data.CorruptFileError) as err:
        data.load_py2_pickle(path)
    assert str(path) in str(err.value) and "truncated" in str(err.value)
    path.write_bytes(b"<html>not a pickle</html>")
    with pytest.raises(data.CorruptFileError):
        data.load_py2_pickle(path)


def test_cifar_standin_matches_the_real_pickle_format(cifar):
    folder = cifar["dir"]
    raw = (folder / "data_batch_1").read_bytes()
    assert any(op.name == "SHORT_BINSTRING" for op, _, _ in pickletools.genops(raw))   # Python 2 str
    with open(folder / "data_batch_1", "rb") as f:
        as_bytes = pickle.load(f, encoding="bytes")
    assert set(as_bytes) == {b"batch_label", b"labels", b"data", b"filenames"}
    assert as_bytes[b"data"].dtype == np.uint8 and as_bytes[b"data"].shape == (30, 3072)
    assert isinstance(as_bytes[b"labels"], list) and isinstance(as_bytes[b"labels"][0], int)
    meta = data.load_py2_pickle(folder / "batches.meta")
    assert meta["label_names"] == list(data.CIFAR10_CLASSES) and meta["num_vis"] == 3072
    with tarfile.open(cifar["archive"]) as tf:
        names = set(tf.getnames())
    assert {f"cifar-10-batches-py/{n}" for n in ("data_batch_1", "data_batch_5", "test_batch",
                                                 "batches.meta")} <= names
    assert {n.split("/")[0] for n in names} == {"cifar-10-batches-py"}


def test_standins_are_deterministic(tmp_path):
    a = data.standin_cifar10(tmp_path / "a", n_per_batch=10, seed=3)["archive"].read_bytes()
    b = data.standin_cifar10(tmp_path / "b", n_per_batch=10, seed=3)["archive"].read_bytes()
    c = data.standin_cifar10(tmp_path / "c", n_per_batch=10, seed=4)["archive"].read_bytes()
    assert a == b and a != c


def test_torchvision_reads_cifar_standin(cifar, monkeypatch):
    cifar_module = pytest.importorskip("torchvision.datasets.cifar")
    # only the md5 integrity check is patched: the stand-in files have other checksums
    monkeypatch.setattr(cifar_module, "check_integrity", lambda *args, **kwargs: True)
    ds = cifar_module.CIFAR10(root=str(cifar["root"]), train=True, download=False)
    x, y = data.read_cifar10(cifar["root"])
    assert len(ds) == len(x) == 150
    assert ds.classes == list(data.CIFAR10_CLASSES)
    np.testing.assert_array_equal(ds.data, x)
    assert ds.targets == y.tolist()
    image, label = ds[0]
    assert image.size == (32, 32) and label == y[0]


# ----------------------------------------------------------------------------- other stand-ins

def _stripe_energy(img: np.ndarray):
    g = img.astype(np.float32).mean(-1)
    return np.abs(np.diff(g, axis=0)).mean(), np.abs(np.diff(g, axis=1)).mean()   # along y, along x


def test_unpaired_standin_layout_and_domains(tmp_path):
    paths = data.standin_unpaired(tmp_path, name="horse2zebra", n_train_a=3, n_train_b=4, n_test_a=2,
                                  n_test_b=1, size=64)
    assert paths["archive"] == tmp_path / "horse2zebra.zip"
    with zipfile.ZipFile(paths["archive"]) as zf:
        names = zf.namelist()
        assert {n.split("/")[0] for n in names} == {"horse2zebra"}
        counts = {}
        for n in names:
            if n.endswith(".jpg"):
                counts[n.split("/")[1]] = counts.get(n.split("/")[1], 0) + 1
        assert counts == {"trainA": 3, "trainB": 4, "testA": 2, "testB": 1}
        first = {d: np.asarray(Image.open(io.BytesIO(zf.read(next(n for n in names if f"/{d}/" in n
                                                                  and n.endswith(".jpg"))))))
                 for d in ("trainA", "trainB")}
    assert first["trainA"].shape == (64, 64, 3)
    ya, xa = _stripe_energy(first["trainA"])
    yb, xb = _stripe_energy(first["trainB"])
    assert ya > 3 * xa and xb > 3 * yb             # A: horizontal stripes, B: vertical stripes
    root = data.extract(paths["archive"], tmp_path / "data", progress=False,
                        expect=[f"horse2zebra/{d}" for d in ("trainA", "trainB", "testA", "testB")])
    assert len(list((root / "horse2zebra" / "trainB").glob("*.jpg"))) == 4


def test_celeba_standin(tmp_path):
    archive = data.standin_celeba(tmp_path, n=5)["archive"]
    assert archive.name == data.CELEBA_FILENAME
    root = data.extract(archive, tmp_path / "data", expect=["img_align_celeba/000001.jpg",
                                                            "img_align_celeba/000005.jpg"], progress=False)
    img = Image.open(root / "img_align_celeba" / "000003.jpg")
    assert img.size == (178, 218) and img.mode == "RGB"
    assert np.asarray(img).std() > 20


def test_cub_standin(tmp_path):
    paths = data.standin_cub(tmp_path, n_classes=4, per_class=3, seed=1, size=(120, 90))
    cub = paths["cub"]
    classes = [line.split(" ", 1)[1] for line in (cub / "classes.txt").read_text().splitlines()]
    assert len(classes) == 4 and all(c[:4] == f"{i + 1:03d}." for i, c in enumerate(classes))
    images = dict(line.split(" ", 1) for line in (cub / "images.txt").read_text().splitlines())
    boxes = {k: [float(v) for v in rest.split()] for k, rest in
             (line.split(" ", 1) for line in (cub / "bounding_boxes.txt").read_text().splitlines())}
    labels = dict(line.split() for line in (cub / "image_class_labels.txt").read_text().splitlines())
    split = dict(line.split() for line in (cub / "train_test_split.txt").read_text().splitlines())
    assert len(images) == len(boxes) == len(labels) == len(split) == 12
    assert set(split.values()) == {"0", "1"}

    seen_classes = {}
    for split_name in ("train", "test"):
        folder = paths[split_name]
        emb = data.load_py2_pickle(folder / "char-CNN-RNN-embeddings.pickle")
        names = data.load_py2_pickle(folder / "filenames.pickle")
        info = data.load_py2_pickle(folder / "class_info.pickle")
        assert isinstance(emb, np.ndarray) and emb.dtype == np.float32
        assert emb.shape == (len(names), 10, 1024) and len(info) == len(names) > 0
        assert all(isinstance(n, str) and isinstance(c, int) for n, c in zip(names, info))
        for name, class_id in zip(names, info):
            class_dir = name.split("/")[0]
            assert int(class_dir[:3]) == class_id
            assert (paths["images"] / f"{name}.jpg").is_file()
            captions = (paths["text"] / f"{name}.txt").read_text().splitlines()
            assert len(captions) == 10 and all(class_dir.split(".")[1].split("_")[0].lower() in c
                                               for c in captions if "body" in c)
        seen_classes[split_name] = set(info)
        assert not np.allclose(emb[0], 0)
    assert seen_classes["train"] and seen_classes["test"]
    assert not seen_classes["train"] & seen_classes["test"]        # class-disjoint, like StackGAN's split

    # every listed image exists and its box is tight around the bird
    for image_id, rel in images.items():
        img = np.asarray(Image.open(paths["images"] / rel)).astype(np.int32)
        h, w = img.shape[:2]
        x, y, bw, bh = boxes[image_id]
        assert 0 <= x and 0 <= y and x + bw <= w and y + bh <= h and bw > 10 and bh > 10
        edge = np.zeros((h, w), bool)
        edge[1:] |= np.abs(np.diff(img, axis=0)).sum(-1) > 60
        edge[:, 1:] |= np.abs(np.diff(img, axis=1)).sum(-1) > 60
        ys, xs = np.nonzero(edge)
        # JPEG ringing stays within the 8x8 block of an edge, and it blurs away the thin tips of
        # beak and tail: allow one block either way
        m = 8
        inside = (xs >= x - m) & (xs <= x + bw + m) & (ys >= y - m) & (ys <= y + bh + m)
        assert inside.mean() > 0.99
        assert abs(xs.min() - x) <= m and abs(ys.min() - y) <= m
        assert abs(xs.max() - (x + bw)) <= m and abs(ys.max() - (y + bh)) <= m


def test_cub_embeddings_carry_the_caption_content(tmp_path):
    paths = data.standin_cub(tmp_path, n_classes=8, per_class=4, seed=2, size=(64, 48))
    emb = data.load_py2_pickle(paths["train"] / "char-CNN-RNN-embeddings.pickle")
    info = np.array(data.load_py2_pickle(paths["train"] / "class_info.pickle"))
    names = data.load_py2_pickle(paths["train"] / "filenames.pickle")
    # one embedding per caption line, in the order of the text file: equal captions, equal vectors
    lines = [(paths["text"] / f"{n}.txt").read_text().splitlines() for n in names]
    row = {}
    for i, caps in enumerate(lines):
        for j, cap in enumerate(caps):
            if cap in row:
                np.testing.assert_array_equal(emb[i, j], row[cap])
            row[cap] = emb[i, j]
    # images of one class are closer in text space than images of different classes
    mean = emb.mean(1)
    mean /= np.linalg.norm(mean, axis=1, keepdims=True)
    sim = mean @ mean.T
    same = info[:, None] == info[None, :]
    np.fill_diagonal(same, False)
    different = info[:, None] != info[None, :]
    assert sim[same].mean() > sim[different].mean() + 0.1


def test_cub_standin_archives(tmp_path):
    paths = data.standin_cub(tmp_path / "src", n_classes=2, per_class=2, size=(64, 48), archive=True)
    root = data.extract(paths["cub_archive"], tmp_path / "data", progress=False,
                        expect=["CUB_200_2011/images.txt", "CUB_200_2011/bounding_boxes.txt"])
    data.extract(paths["birds_archive"], root, progress=False,
                 expect=["birds/train/filenames.pickle", "birds/test/char-CNN-RNN-embeddings.pickle"])
    names = data.load_py2_pickle(root / "birds" / "train" / "filenames.pickle")
    assert all((root / "CUB_200_2011" / "images" / f"{n}.jpg").is_file() for n in names)
    assert os.path.isdir(root / "CUB_200_2011")
    # birds.zip carries the captions, as the authors' does: text_c10/<class dir>/<file>.txt
    assert all((root / "birds" / "text_c10" / f"{n}.txt").read_text().count("\n") == 10 for n in names)


# ----------------------------------------------------------------------------- the sources registry

def test_every_source_says_where_it_is_and_fills_in_names():
    for key, src in data.SOURCES.items():
        assert (src.url is None) != (src.drive_id is None), f"{key}: a URL or a Drive id, not both or neither"
        assert "/" not in src.filename and src.used_by, key
        if src.md5 is not None:
            assert len(src.md5) == 32 and int(src.md5, 16) >= 0, key
    assert data.SOURCES["celeba"].source == "gdrive:" + data.CELEBA_DRIVE_ID
    h2z = data.SOURCES["cyclegan"].named("horse2zebra")
    assert h2z.url == "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/horse2zebra.zip"
    assert h2z.filename == "horse2zebra.zip" and "horse2zebra/trainA" in h2z.layout
    assert data.CYCLEGAN_URL.format(name="horse2zebra") == h2z.url
    assert data.SOURCES["cyclegan"].filename == "{name}.zip"            # the registry itself is unchanged


def test_notebooks_take_their_sources_from_the_registry():
    """No notebook code line spells out a URL or Drive id of the registry: one place to change them."""
    code = {nb.name: [line for line in nb.read_text().splitlines() if not line.lstrip().startswith("#")]
            for nb in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.py"))}
    assert code
    for key, src in data.SOURCES.items():
        for spelled in filter(None, (src.drive_id, src.url and src.url.split("{")[0])):
            for name, lines in code.items():
                hits = [line for line in lines if spelled in line]
                assert not hits, f"{name} spells out {key}'s {spelled!r}; use colabkit.data's name for it: {hits}"
