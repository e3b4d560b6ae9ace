"""A fake Common Crawl data host on 127.0.0.1 that misbehaves on purpose, one scripted fault per request.

Faults (consumed in order, one per request for that path; afterwards it behaves):
  "503"          503 with Retry-After: 1
  "429"          429 with Retry-After: 1
  "drop"         send the headers and half the body, then close the connection
  "stall"        wait `stall_s` before answering (longer than the client's read timeout)
  "drop_change"  like "drop", and the file's bytes change before the next request
  "404"          not found
"""

from __future__ import annotations

import hashlib
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that timed out on a stalled answer closes the socket: expected here


@dataclass
class Served:
    versions: list[bytes]
    faults: list[str] = field(default_factory=list)
    etag: bool = True
    requests: list[dict[str, str | None]] = field(default_factory=list)

    @property
    def content(self) -> bytes:
        return self.versions[0]


class FakeCrawlHost:
    def __init__(self, stall_s: float = 1.5):
        self.files: dict[str, Served] = {}
        self.stall_s = stall_s
        host = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                host._serve(self)

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def add(self, path: str, *versions: bytes, faults: tuple[str, ...] = (), etag: bool = True) -> Served:
        self.files[path] = Served(list(versions), list(faults), etag)
        return self.files[path]

    def __enter__(self) -> FakeCrawlHost:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        served = self.files.get(h.path.lstrip("/"))
        if served is None:
            self._send(h, 404, b"not found")
            return
        served.requests.append({k: h.headers.get(k) for k in ("Range", "If-Range", "User-Agent")})
        fault = served.faults.pop(0) if served.faults else "ok"
        if fault in ("503", "429", "404"):
            self._send(h, int(fault), b"busy", {"Retry-After": "1"} if fault != "404" else {})
            return
        if fault == "stall":
            time.sleep(self.stall_s)
        data = served.content
        status, start = 200, 0
        headers = {"ETag": f'"{hashlib.sha1(data).hexdigest()[:16]}"'} if served.etag else {}
        if m := re.fullmatch(r"bytes=(\d+)-", h.headers.get("Range") or ""):
            start = int(m.group(1))
            if start >= len(data):
                self._send(h, 416, b"", {"Content-Range": f"bytes */{len(data)}"})
                return
            # If-Range is ignored on purpose: the worst case, a server that splices versions.
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        if fault in ("drop", "drop_change"):
            h.send_response(status)
            for k, v in {**headers, "Content-Length": str(len(body))}.items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(body[: len(body) // 2])
            h.wfile.flush()
            if fault == "drop_change" and len(served.versions) > 1:
                served.versions.pop(0)
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(h, status, body, headers)

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        h.send_response(status)
        for k, v in {**(headers or {}), "Content-Length": str(len(body))}.items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)
