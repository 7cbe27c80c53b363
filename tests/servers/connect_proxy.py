"""An HTTP CONNECT proxy on loopback, as corporate networks put in front of GitLab: it records each tunnel's
target and relays bytes both ways (TLS stays end to end between the client and the server). With
``credentials`` it wants Basic proxy authentication (RFC 9110 §11.7.1: 407 and Proxy-Authenticate without)."""

from __future__ import annotations

import base64
import select
import socket
import socketserver
import threading
from types import TracebackType


class _Tunnel(socketserver.StreamRequestHandler):
    server: _ProxyServer

    def handle(self) -> None:
        request = self.rfile.readline(65536).decode("latin-1").split()
        headers: dict[str, str] = {}
        while (line := self.rfile.readline(65536)) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if len(request) != 3 or request[0] != "CONNECT":
            self.wfile.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        if self.server.expected and headers.get("proxy-authorization") != self.server.expected:
            self.server.refused.append(request[1])
            self.wfile.write(
                b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                b'Proxy-Authenticate: Basic realm="proxy"\r\nContent-Length: 0\r\n\r\n'
            )
            return
        self.server.tunnels.append(request[1])
        host, _, port = request[1].rpartition(":")
        with socket.create_connection((host, int(port)), timeout=10) as upstream:
            self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self.wfile.flush()
            self._relay(self.connection, upstream)

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        pending = self.rfile.peek(0) if hasattr(self.rfile, "peek") else b""
        if pending:
            upstream.sendall(self.rfile.read(len(pending)))
        while True:
            ready, _, _ = select.select([client, upstream], [], [], 10)
            if not ready:
                return
            for source in ready:
                data = source.recv(65536)
                if not data:
                    return
                (upstream if source is client else client).sendall(data)


class _ProxyServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, credentials: tuple[str, str] | None) -> None:
        super().__init__(("127.0.0.1", 0), _Tunnel)
        self.tunnels: list[str] = []
        self.refused: list[str] = []
        pair = ":".join(credentials).encode() if credentials else b""
        self.expected = f"Basic {base64.b64encode(pair).decode()}" if credentials else ""


class ConnectProxy:
    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        self._server = _ProxyServer(credentials)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def tunnels(self) -> list[str]:
        return list(self._server.tunnels)

    @property
    def refused(self) -> list[str]:
        return list(self._server.refused)

    def __enter__(self) -> ConnectProxy:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
