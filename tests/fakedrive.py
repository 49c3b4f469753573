"""A stand-in for Google Drive's download hosts, on 127.0.0.1, reached as https://drive.google.com/….

gdown only runs its Drive logic (the virus-scan confirmation form, Drive's error pages) for URLs
whose host is drive.google.com, and gdown 6 rewrites such a URL to https://drive.google.com/uc?id=…
So the stand-in is an HTTP proxy: requests sends it ``CONNECT drive.google.com:443`` (the test sets
HTTPS_PROXY), the proxy answers the tunnel itself with TLS under a throw-away certificate for
Google's host names (the test sets REQUESTS_CA_BUNDLE to it) and plays the hosts as Drive does:

* ``drive.google.com/uc?id=ID&export=download`` redirects (303) to
  ``drive.usercontent.google.com/download?id=ID&export=download``;
* a small file comes back from there with ``Content-Disposition: attachment``;
* a large one first gets the "Virus scan warning" page, whose ``#download-form`` carries the
  hidden fields ``id``, ``export``, ``confirm=t`` and ``uuid``; the file comes only with those;
* a file over its quota gets Drive's "Quota exceeded" page; a file not shared publicly redirects
  to the Google sign-in page on accounts.google.com.

Nothing here goes to the network: a request the proxy does not know gets a 404.
"""

from __future__ import annotations

import shutil
import socketserver
import ssl
import subprocess
import threading
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HOSTS = ("drive.google.com", "drive.usercontent.google.com", "accounts.google.com")

VIRUS_SCAN_PAGE = (
    '<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title>'
    '<meta http-equiv="content-type" content="text/html; charset=utf-8"/></head><body>'
    '<div class="uc-main"><div id="uc-text"><p class="uc-warning-caption">Google Drive can&#39;t scan '
    'this file for viruses.</p><p class="uc-warning-subcaption"><span class="uc-name-size">'
    '<a href="/open?id={id}">{name}</a> ({size})</span> is too large for Google to scan for viruses. '
    'Would you still like to download this file?</p>'
    '<form id="download-form" action="https://drive.usercontent.google.com/download" method="get">'
    '<input type="submit" id="uc-download-link" class="goog-inline-block jfk-button jfk-button-action" '
    'value="Download anyway"/><input type="hidden" name="id" value="{id}">'
    '<input type="hidden" name="export" value="download"><input type="hidden" name="confirm" value="t">'
    '<input type="hidden" name="uuid" value="{uuid}"></form></div></div></body></html>\n'
)

QUOTA_PAGE = (
    '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Google Drive - Quota exceeded</title></head>\n'
    '<body><div class="uc-main"><div id="uc-text">\n'
    '<p class="uc-error-caption">Sorry, you can&#39;t view or download this file at this time.</p>\n'
    '<p class="uc-error-subcaption">Too many users have viewed or downloaded this file recently. Please '
    'try accessing the file again later. If the file you are trying to access is particularly large or '
    'is shared with many people, it may take up to 24 hours to be able to view or download the file. '
    'If you still can&#39;t access a file after 24 hours, contact your domain administrator.</p>\n'
    '</div></div></body></html>\n'
)

SIGNIN_PAGE = (
    '<!doctype html><html lang="en"><head><title>Sign in - Google Accounts</title></head><body>'
    '<form method="post" action="https://accounts.google.com/v3/signin/_/AccountsSignInUi/data">'
    '<input type="email" name="identifier"><div>Use your Google Account</div></form></body></html>\n'
)


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate (and key) for HOSTS, made with the openssl command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("the fake Drive host needs the openssl command to make its TLS certificate: "
                           "install it (Debian/Ubuntu: apt-get install openssl)")
    cert, key = folder / "fake-google.pem", folder / "fake-google.key"
    san = ",".join(f"DNS:{h}" for h in HOSTS)
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=drive.google.com", "-addext", f"subjectAltName={san}",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    return cert, key


class FakeDrive:
    """The proxy and the hosts behind it. ``add(ID, body, kind=...)``; ``hits`` logs (host, path)."""

    def __init__(self, cert: Path, key: Path):
        self.cert = Path(cert)
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.load_cert_chain(self.cert, key)
        self.files: dict[str, dict] = {}
        self.hits: list[tuple[str, str]] = []
        self.tunnels: list[str] = []
        self.release = threading.Event()
        drive = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"   # keep the tunnel open for the requests inside it

            def do_CONNECT(self):
                drive.tunnels.append(self.path)
                self.send_response(200, "Connection established")
                self.end_headers()
                conn = drive.tls.wrap_socket(self.connection, server_side=True)
                self.connection = self.request = conn
                self.rfile = conn.makefile("rb")
                self.wfile = socketserver._SocketWriter(conn)
                self.close_connection = False   # http.client asks for the tunnel in HTTP/1.0

            def do_GET(self):
                host = (self.headers.get("Host") or "").split(":")[0]
                drive.hits.append((host, self.path))
                status, headers, body = drive.answer(host, self.path)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if headers.get("X-Stall"):
                    self.wfile.write(body[:len(body) // 2])
                    drive.release.wait(30)
                    try:
                        self.wfile.write(body[len(body) // 2:])
                    except OSError:   # the client gave up waiting, as it should
                        self.close_connection = True
                    return
                self.wfile.write(body)

            def finish(self):
                super().finish()
                if isinstance(self.connection, ssl.SSLSocket):
                    self.connection.close()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.proxy = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)
        self.thread.start()

    def add(self, file_id: str, body: bytes = b"", *, name: str = "file.bin", kind: str = "small") -> None:
        """kind: "small" (served at once), "large" (virus-scan page first), "quota", "private", or
        "stall" (half the file, then nothing until ``release`` is set: a connection gone quiet)."""
        assert kind in ("small", "large", "quota", "private", "stall"), kind
        self.files[file_id] = {"body": body, "name": name, "kind": kind, "uuid": str(uuid.uuid4())}

    def answer(self, host: str, path: str) -> tuple[int, dict, bytes]:
        parts = urllib.parse.urlsplit(path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(parts.query).items()}
        html = {"Content-Type": "text/html; charset=utf-8"}
        file = self.files.get(query.get("id", ""))
        if host == "drive.google.com" and parts.path == "/uc" and file is not None:
            if file["kind"] == "private":
                cont = urllib.parse.quote(f"https://drive.google.com{path}", safe="")
                return 302, {**html, "Location": f"https://accounts.google.com/ServiceLogin?continue={cont}"}, b""
            target = "https://drive.usercontent.google.com/download?" + urllib.parse.urlencode(
                {"id": query["id"], "export": "download"})
            return 303, {**html, "Location": target}, b""
        if host == "drive.usercontent.google.com" and parts.path == "/download" and file is not None:
            if file["kind"] == "quota":
                return 200, html, QUOTA_PAGE.encode()
            confirmed = query.get("confirm") == "t" and query.get("uuid") == file["uuid"]
            if file["kind"] == "large" and not confirmed:
                page = VIRUS_SCAN_PAGE.format(id=query["id"], name=file["name"], uuid=file["uuid"],
                                              size=f"{len(file['body']) / 2**20:.1f}M")
                return 200, html, page.encode()
            if file["kind"] in ("small", "large", "stall"):
                headers = {"Content-Type": "application/octet-stream",
                           "Content-Disposition": f'attachment; filename="{file["name"]}"'}
                if file["kind"] == "stall":
                    headers["X-Stall"] = "1"
                return 200, headers, file["body"]
        if host == "accounts.google.com" and parts.path == "/ServiceLogin":
            return 200, html, SIGNIN_PAGE.encode()
        return 404, html, b"<html><title>Error 404 (Not Found)</title></html>"

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
