"""An HTTP proxy on loopback, as corporate networks put in front of GitLab.

A CONNECT opens a tunnel: it records the target and relays bytes both ways (TLS stays end to end between the
client and the server). A request in absolute form (`GET http://host:port/path`, RFC 9112 §3.2.2, what clients
send for an http:// URL) is forwarded: it records the target's host:port, passes each request of the
kept-alive connection on, and closes the connection when the server closed its own without an answer. With
``credentials`` it wants Basic proxy authentication (RFC 9110 §11.7.1: 407 and Proxy-Authenticate without)
on the CONNECT and on each request it forwards."""

from __future__ import annotations

import base64
import http.client
import select
import socket
import socketserver
import threading
from types import TracebackType
from urllib.parse import urlsplit

HOP_BY_HOP = {"proxy-authorization", "proxy-connection", "connection", "keep-alive", "transfer-encoding"}
Head = tuple[list[str], list[tuple[str, str]]]


class _Proxy(socketserver.StreamRequestHandler):
    server: _ProxyServer

    def handle(self) -> None:
        while (head := self._head()) is not None:
            request, headers = head
            if len(request) != 3 or (request[0] != "CONNECT" and not request[1].startswith("http://")):
                self.wfile.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                return
            if not self._authorized(request[1], headers):
                return
            if request[0] == "CONNECT":
                self._tunnel(request[1])
                return
            if not self._forwarded(request[0], request[1], headers):
                return

    def _head(self) -> Head | None:
        request = self.rfile.readline(65536).decode("latin-1").split()
        if not request:
            return None
        headers = []
        while (line := self.rfile.readline(65536)) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers.append((name.strip(), value.strip()))
        return request, headers

    def _authorized(self, target: str, headers: list[tuple[str, str]]) -> bool:
        given = {name.lower(): value for name, value in headers}.get("proxy-authorization")
        if not self.server.expected or given == self.server.expected:
            return True
        self.server.refused.append(target.removeprefix("http://").partition("/")[0])
        self.wfile.write(
            b"HTTP/1.1 407 Proxy Authentication Required\r\nConnection: close\r\n"
            b'Proxy-Authenticate: Basic realm="proxy"\r\nContent-Length: 0\r\n\r\n'
        )
        return False

    def _tunnel(self, target: str) -> None:
        self.server.tunnels.append(target)
        host, _, port = target.rpartition(":")
        with socket.create_connection((host, int(port)), timeout=10) as upstream:
            self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self.wfile.flush()
            self._relay(self.connection, upstream)

    def _forwarded(self, method: str, url: str, headers: list[tuple[str, str]]) -> bool:
        """One request passed on to the server it names, and its answer back; False when there was none."""
        target = urlsplit(url)
        self.server.forwarded.append(target.netloc)
        length = int({name.lower(): value for name, value in headers}.get("content-length", "0"))
        body = self.rfile.read(length) if length else None
        upstream = http.client.HTTPConnection(target.hostname or "", target.port or 80, timeout=10)
        path = target.path + (f"?{target.query}" if target.query else "")
        try:
            upstream.request(method, path, body, {k: v for k, v in headers if k.lower() not in HOP_BY_HOP})
            answer = upstream.getresponse()
            data = answer.read()
        except (OSError, http.client.HTTPException):
            return False
        finally:
            upstream.close()
        lines = [f"HTTP/1.1 {answer.status} {answer.reason}"]
        lines += [
            f"{k}: {v}" for k, v in answer.getheaders() if k.lower() not in HOP_BY_HOP | {"content-length"}
        ]
        lines.append(f"Content-Length: {len(data)}")
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data)
        return True

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
        super().__init__(("127.0.0.1", 0), _Proxy)
        self.tunnels: list[str] = []
        self.forwarded: list[str] = []
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
    def forwarded(self) -> list[str]:
        """host:port of each request forwarded in absolute form."""
        return list(self._server.forwarded)

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
