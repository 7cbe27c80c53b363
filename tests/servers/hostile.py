"""Hostile peers on loopback, for asserting what gitops-ci does *not* do.

- ``Listener``: a TCP port that counts every connection attempt; it closes each at once, or holds it open
  without a byte (a server that never answers). "No connection" is then a count of zero, not an assumption.
- ``HttpPeer``: an HTTP(S) server that records every request with its headers and answers with a fixed
  status, or redirects every request to another origin (``redirect_to``), or trickles its answer
  (``trickle``: one byte of a long body per interval, so that no single read ever times out), or floods it
  (``flood``: a body of that many bytes), or answers ``body``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from servers.tls import TlsMaterial

__all__ = ["HttpPeer", "Listener", "SeenRequest", "kubeconfig"]


class Listener:
    """A TCP listener on 127.0.0.1 counting connections; ``hold=True`` keeps them open and silent."""

    def __init__(self, *, hold: bool = False) -> None:
        self.hold = hold
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.1)
        self._held: list[socket.socket] = []
        self._count = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="hostile-listener", daemon=True)

    @property
    def port(self) -> int:
        return int(self._socket.getsockname()[1])

    @property
    def connections(self) -> int:
        with self._lock:
            return self._count

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        for connection in self._held:
            connection.close()
        self._socket.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            with self._lock:
                self._count += 1
            if self.hold:
                self._held.append(connection)
            else:
                connection.close()


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    headers: dict[str, str] = field(repr=False)

    def has_credentials(self) -> bool:
        names = {name.lower() for name in self.headers}
        return bool(names & {"authorization", "private-token", "job-token", "x-gitlab-token", "cookie"})


class HttpPeer:
    """Records requests (headers included) and answers ``status``, or redirects to ``redirect_to``."""

    def __init__(
        self,
        tls: TlsMaterial | None = None,
        *,
        status: int = 200,
        redirect_to: str | None = None,
        trickle: float | None = None,
        flood: int | None = None,
        body: bytes | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.redirect_to = redirect_to
        self.trickle = trickle
        self.flood = flood
        self.stopped = threading.Event()
        self.seen: list[SeenRequest] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls.cert_file, tls.key_file)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._scheme = "https" if tls is not None else "http"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})

    @property
    def url(self) -> str:
        return f"{self._scheme}://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stopped.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def _handler_for(peer: HttpPeer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            peer.seen.append(SeenRequest(self.command, self.path, dict(self.headers.items())))
            if peer.redirect_to is not None:
                self.send_response(302)
                self.send_header("Location", peer.redirect_to + self.path)
            else:
                self.send_response(peer.status)
            self.send_header("Content-Type", "application/json")
            if peer.trickle is not None:
                self._trickle(peer.trickle)
                return
            flooded = b" " * peer.flood if peer.flood is not None else b"{}"
            body = peer.body if peer.body is not None else flooded
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(OSError):  # the client stopped reading
                self.wfile.write(body)

        def _trickle(self, interval: float) -> None:
            self.send_header("Content-Length", str(1 << 20))
            self.end_headers()
            self.wfile.write(b"[")
            while not peer.stopped.wait(interval):
                try:
                    self.wfile.write(b" ")
                    self.wfile.flush()
                except OSError:  # the client gave up
                    return

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    return Handler


def kubeconfig(path: Path, server: str, ca_file: Path | str, user: dict[str, object]) -> Path:
    """A kubeconfig whose one context points at `server` (a peer here) with `user`'s credentials."""
    cluster = {"server": server, "certificate-authority": str(ca_file)}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path.write_text(json.dumps(config))  # JSON is YAML
    return path
