"""A throw-away HTTP server on 127.0.0.1 that hands out files held in memory.

Smoke runs and tests have no network, yet should go through the same download code as a real
run (colabkit.data.fetch, its cache and its checks). They serve the stand-in files from here:

    with ck.loopback.serve({"horse2zebra.pth": payload}) as base:
        path = ck.data.fetch(f"{base}/horse2zebra.pth", "horse2zebra.pth", dest_dir=...)

The server binds port 0 (the system picks a free port), so parallel runs never collide, and
it stops when the `with` block ends. Unknown paths get a 404, like a real server.
"""

from __future__ import annotations

import contextlib
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator, Mapping

__all__ = ["serve"]


@contextlib.contextmanager
def serve(files: Mapping[str, bytes]) -> Iterator[str]:
    """Serve `files` ({name: bytes}) at http://127.0.0.1:PORT/name; yields that base URL."""
    table = {"/" + name.lstrip("/"): bytes(body) for name, body in files.items()}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = table.get(urllib.parse.urlsplit(self.path).path)
            status, kind = (200, "application/octet-stream") if body is not None else (404, "text/html")
            if body is None:
                body = b"<html><title>404 Not Found</title></html>"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):   # keep notebook output clean
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
