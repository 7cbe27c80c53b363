"""A real smart-HTTP(S) git server for tests, backed by ``git http-backend``.

The server runs one ``git http-backend`` CGI process per request. Faults can be injected per service:
an error status, an answer lost after the push was applied, a hang, a redirect to another origin.

Typical use::

    tls = make_ca(tmp_path / "tls")
    with GitHttpServer(tmp_path / "srv", tls, token="s3cret") as server:
        bare = make_bare_repo(server.root, "group/manifests.git", {"README.md": "hi\\n"})
        url = server.url_for("group/manifests.git")
        subprocess.run(["git", "clone", url], env=client_env(server), check=True)
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socketserver import TCPServer
from types import TracebackType
from typing import IO, Any, Final, Literal, Protocol, Self
from urllib.parse import parse_qs, unquote, urlsplit

from servers import housekeeping
from servers.git_repos import GIT
from servers.tls import TlsMaterial

__all__ = ["Fault", "GitHttpServer", "RequestRecord", "client_env"]

SERVICES: Final[tuple[str, str]] = ("git-upload-pack", "git-receive-pack")


_MAX_LINE: Final = 65536
_STREAM_CHUNK: Final = 65536
_INJECTED_BODY: Final = b"injected failure"
_QUIET_ERRORS: Final = (ssl.SSLError, ConnectionError, TimeoutError)


@dataclass(frozen=True)
class RequestRecord:
    """One HTTP request as seen by the server. Never contains the password/token."""

    method: str
    path: str
    service: str | None
    status: int
    username: str | None
    authorization_present: bool
    chunked: bool = False
    content_encoding: str | None = None
    git_protocol: str | None = None


FaultKind = Literal["status", "lose-answer", "hang", "redirect"]


@dataclass
class Fault:
    """What the server does with matching requests instead of serving them.

    ``status``: answer ``status`` without running git. ``lose-answer``: apply the request (a push lands),
    call ``then`` and close the connection without an answer. ``hang``: accept and never answer (until the
    server stops). ``redirect``: answer 302 to ``location`` + the request's path, before any auth check.
    The first ``skip`` matching requests are served normally; then ``times`` of them get the fault. With
    ``every=N`` only every N-th matching request after the skipped ones gets it (a request a fault passes
    over may still get a later fault).
    """

    kind: FaultKind = "status"
    service: str | None = "git-receive-pack"  # None: any request
    method: str | None = "POST"  # None: any method
    status: int = 500
    skip: int = 0
    times: int = 1
    location: str = ""
    then: Callable[[], None] | None = None
    every: int = 1
    seen: int = 0

    def matches(self, method: str, service: str | None) -> bool:
        return (self.service is None or self.service == service) and self.method in (None, method)


@dataclass(frozen=True)
class _Auth:
    present: bool
    username: str | None
    valid: bool


class GitHttpServer:
    """HTTPS smart-HTTP git server on 127.0.0.1 serving the bare repos under ``root``.

    Every request must carry ``Authorization: Basic base64(user:token)``; ``username=None``
    accepts any user name. Missing credentials get 401 with a Basic challenge; wrong
    credentials get ``bad_credentials_status`` (401 or 403).
    """

    def __init__(
        self,
        root: Path | str,
        tls: TlsMaterial,
        *,
        token: str,
        username: str | None = None,
        bad_credentials_status: int = 401,
    ) -> None:
        if bad_credentials_status not in (401, 403):
            raise ValueError("bad_credentials_status must be 401 or 403")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.tls = tls
        self.token = token
        self.username = username
        self.bad_credentials_status = bad_credentials_status
        # Called in the handler thread before http-backend runs, for every authorised
        # receive-pack POST (including git's tiny "probe" POST that precedes chunked pushes).
        self.before_receive_pack: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self._requests: list[RequestRecord] = []
        self._faults: list[Fault] = []
        self._stopping = threading.Event()
        self._backend_errors: list[str] = []
        self._connections: set[socket.socket] = set()
        self._httpd: _HttpsServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> Self:
        if self._httpd is not None:
            raise RuntimeError("server already started")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.tls.cert_file, self.tls.key_file)
        self._httpd = _HttpsServer(("127.0.0.1", 0), self, context)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="git-http-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join()
        self._close_open_connections()
        housekeeping.settle()
        self._httpd = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        return self.tls.ca_file

    def url_for(self, repo_name: str) -> str:
        return f"{self.base_url}/{repo_name.lstrip('/')}"

    # -- observation and fault injection --------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of every request answered so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    @property
    def backend_errors(self) -> list[str]:
        """Non-empty stderr output of http-backend runs (for debugging failing tests)."""
        with self._lock:
            return list(self._backend_errors)

    def fail_next(self, service: str | None = "git-receive-pack", status: int = 500, times: int = 1) -> None:
        """Answer the next ``times`` POSTs for ``service`` (None = any) with ``status``."""
        self.inject(Fault("status", service, status=status, times=times))

    def inject(self, fault: Fault) -> None:
        """Apply ``fault`` to the matching requests from now on (see Fault)."""
        if fault.times < 1 or fault.skip < 0 or fault.every < 1:
            raise ValueError("times and every must be >= 1 and skip >= 0")
        with self._lock:
            self._faults.append(fault)

    # -- used by the request handler ------------------------------------------------------

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self._requests.append(record)

    def _note_backend_error(self, text: str) -> None:
        with self._lock:
            self._backend_errors.append(text)

    def _take_fault(self, method: str, service: str | None, *, before_auth: bool) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, service) and (fault.kind in ("redirect", "hang")) == before_auth:
                    if fault.skip:
                        fault.skip -= 1
                        continue
                    fault.seen += 1
                    if fault.seen % fault.every:
                        continue
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _authenticate(self, header: str | None) -> _Auth:
        if header is None:
            return _Auth(present=False, username=None, valid=False)
        user, password = _parse_basic(header)
        if user is None or password is None:
            return _Auth(present=True, username=None, valid=False)
        token_ok = hmac.compare_digest(password.encode(), self.token.encode())
        user_ok = self.username is None or user == self.username
        return _Auth(present=True, username=user, valid=token_ok and user_ok)

    def _track(self, connection: socket.socket, *, open_: bool) -> None:
        with self._lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def _close_open_connections(self) -> None:
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def _cgi_env(self, handler: _Handler, *, body_length: int, username: str | None) -> dict[str, str]:
        url = urlsplit(handler.path)
        env = {
            "PATH": f"{Path(GIT).parent}{os.pathsep}{os.defpath}",
            "HOME": str(self.root),
            "LC_ALL": "C",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REQUEST_METHOD": handler.command,
            "PATH_INFO": unquote(url.path),
            "QUERY_STRING": url.query,
            "REMOTE_ADDR": str(handler.client_address[0]),
        }
        optional = {
            "CONTENT_TYPE": handler.headers.get("Content-Type"),
            "CONTENT_LENGTH": str(body_length) if handler.command == "POST" else None,
            "REMOTE_USER": username,
            "HTTP_CONTENT_ENCODING": handler.headers.get("Content-Encoding"),
            "GIT_PROTOCOL": handler.headers.get("Git-Protocol"),
        }
        env.update({name: value for name, value in optional.items() if value is not None})
        return env


def _parse_basic(header: str) -> tuple[str | None, str | None]:
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    user, separator, password = decoded.partition(":")
    return (user, password) if separator else (None, None)


def _service_of(path: str, query: str) -> str | None:
    """The git service a smart-HTTP request belongs to, or None (dumb HTTP, unknown paths)."""
    for service in SERVICES:
        if path.endswith(f"/{service}"):
            return service
    if path.endswith("/info/refs"):
        requested = parse_qs(query).get("service", [None])[0]
        return requested if requested in SERVICES else None
    return None


class _ByteReader(Protocol):
    """What we need from a request/CGI stream (socket file or pipe)."""

    def read(self, size: int, /) -> bytes: ...

    def readline(self, size: int, /) -> bytes: ...


def _read_exact(stream: _ByteReader, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise ConnectionError(f"client closed the connection after {len(data)} of {size} body bytes")
    return data


def _read_chunked(stream: _ByteReader) -> bytes:
    """Decode a ``Transfer-Encoding: chunked`` request body (chunk extensions and trailers ignored)."""
    parts: list[bytes] = []
    while True:
        size_line = stream.readline(_MAX_LINE)
        if not size_line:
            raise ConnectionError("client closed the connection inside a chunked body")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            break
        parts.append(_read_exact(stream, size))
        if _read_exact(stream, 2) != b"\r\n":
            raise ValueError("chunk data not followed by CRLF")
    while stream.readline(_MAX_LINE) not in (b"\r\n", b"\n", b""):
        pass  # trailer fields
    return b"".join(parts)


def _read_cgi_headers(stdout: _ByteReader) -> tuple[int, list[tuple[str, str]]] | None:
    """Parse CGI response headers; None if the CGI exited before finishing them."""
    status = 200
    headers: list[tuple[str, str]] = []
    while True:
        line = stdout.readline(_MAX_LINE)
        if not line:
            return None
        text = line.decode("latin-1").rstrip("\r\n")
        if not text:
            return status, headers
        name, _, value = text.partition(":")
        if name.strip().lower() == "status":
            status = int(value.split()[0])
        else:
            headers.append((name.strip(), value.strip()))


class _HttpsServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: GitHttpServer, context: ssl.SSLContext) -> None:
        self.app = app
        self.ssl_context = context
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn) that we do not need.
        TCPServer.server_bind(self)
        self.server_name = "127.0.0.1"
        self.server_port = int(self.server_address[1])

    def get_request(self) -> tuple[socket.socket, Any]:
        # Handshake lazily in the handler thread so one slow/broken client cannot block accept().
        sock, address = super().get_request()
        # Without NODELAY, Nagle + the client's delayed ACK stalls each small response ~40 ms.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exception(), _QUIET_ERRORS):
            return  # clients rejecting our certificate, disconnects, idle keep-alive timeouts
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30
    # TCP_NODELAY: headers and body are separate writes; with Nagle on, the body waits for a delayed ACK
    # (~40 ms per request) that no real git server adds, and a benchmark would measure that stall.
    disable_nagle_algorithm = True
    server: _HttpsServer

    def setup(self) -> None:
        super().setup()
        self.server.app._track(self.connection, open_=True)

    def handle(self) -> None:
        connection = self.connection
        assert isinstance(connection, ssl.SSLSocket)
        connection.do_handshake()
        super().handle()

    def finish(self) -> None:
        self.server.app._track(self.connection, open_=False)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default per-request stderr logging; see GitHttpServer.requests."""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        app = self.server.app
        url = urlsplit(self.path)
        service = _service_of(unquote(url.path), url.query)
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        auth = app._authenticate(self.headers.get("Authorization"))

        def record(status: int) -> None:
            app._record(
                RequestRecord(
                    method=self.command,
                    path=unquote(url.path),
                    service=service,
                    status=status,
                    username=auth.username,
                    authorization_present=auth.present,
                    chunked=chunked,
                    content_encoding=self.headers.get("Content-Encoding"),
                    git_protocol=self.headers.get("Git-Protocol"),
                )
            )

        try:
            body = _read_chunked(self.rfile) if chunked else self._read_sized_body()
        except ValueError:
            record(400)
            self._send_plain(400, b"malformed request body", close=True)
            return
        self._dispatch(body, service, auth, record)

    def _dispatch(self, body: bytes, service: str | None, auth: _Auth, record: Callable[[int], None]) -> None:
        app = self.server.app
        early = app._take_fault(self.command, service, before_auth=True)
        if early is not None and early.kind == "redirect":
            record(302)
            self._send_plain(302, b"moved", headers={"Location": early.location + self.path})
            return
        if early is not None:  # hang: hold the connection without a byte until the server stops
            record(0)
            app._stopping.wait()
            return
        if not auth.valid:
            status = app.bad_credentials_status if auth.present else 401
            record(status)
            challenge = {"WWW-Authenticate": 'Basic realm="git"'} if status == 401 else {}
            self._send_plain(status, b"authentication required", headers=challenge)
            return
        fault = app._take_fault(self.command, service, before_auth=False)
        if fault is not None and fault.kind == "status":
            record(fault.status)
            self._send_plain(fault.status, _INJECTED_BODY)
            return
        if self.command == "POST" and service == "git-receive-pack" and not self._run_hook(record):
            return
        if fault is not None:  # lose-answer: apply the request, then drop the connection unanswered
            self._run_backend(body, auth.username, record, deliver=False)
            if fault.then is not None:
                fault.then()
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._run_backend(body, auth.username, record)

    def _run_hook(self, record: Callable[[int], None]) -> bool:
        """Run ``before_receive_pack``; a failing hook becomes a 500 naming the exception."""
        hook = self.server.app.before_receive_pack
        if hook is None:
            return True
        try:
            hook()
        except Exception as exc:
            self.server.app._note_backend_error(f"before_receive_pack hook failed: {exc!r}")
            record(500)
            self._send_plain(500, f"before_receive_pack hook failed: {exc!r}".encode())
            return False
        return True

    def _read_sized_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        return _read_exact(self.rfile, length) if length else b""

    def _send_plain(
        self, status: int, body: bytes, *, headers: Mapping[str, str] | None = None, close: bool = False
    ) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _run_backend(
        self, body: bytes, username: str | None, record: Callable[[int], None], *, deliver: bool = True
    ) -> None:
        app = self.server.app
        env = app._cgi_env(self, body_length=len(body), username=username)
        # The body goes through a file, not a pipe: http-backend can then never block on
        # stdin while we are not reading its (possibly large) stdout, so no deadlock.
        with tempfile.TemporaryFile() as stdin, tempfile.TemporaryFile() as stderr:
            stdin.write(body)
            stdin.seek(0)
            process = subprocess.Popen(
                [GIT, "http-backend"], stdin=stdin, stdout=subprocess.PIPE, stderr=stderr, env=env
            )
            assert process.stdout is not None
            try:
                if deliver:
                    self._relay_cgi_output(process.stdout, record)
                else:
                    process.stdout.read()
                    record(0)
            except BaseException:
                process.kill()
                raise
            finally:
                process.stdout.close()
                process.wait()
                self._collect_stderr(stderr)
        if (
            self.command == "POST"
            and process.returncode == 0
            and env["PATH_INFO"].endswith("/git-receive-pack")
        ):
            # GitLab counts only pushes that moved a ref; a rejected one counts here too (a little more
            # housekeeping, never less)
            housekeeping.pushed(app.root / env["PATH_INFO"].strip("/").removesuffix("/git-receive-pack"))

    def _relay_cgi_output(self, stdout: IO[bytes], record: Callable[[int], None]) -> None:
        parsed = _read_cgi_headers(stdout)
        if parsed is None:
            record(502)
            self._send_plain(502, b"git http-backend produced no response", close=True)
            return
        status, headers = parsed
        record(status)
        self._stream_response(status, headers, stdout)

    def _stream_response(self, status: int, headers: list[tuple[str, str]], stdout: IO[bytes]) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        sized = any(name.lower() == "content-length" for name, _ in headers)
        if not sized:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        while chunk := stdout.read1(_STREAM_CHUNK):  # type: ignore[attr-defined]
            self.wfile.write(chunk if sized else b"%x\r\n%s\r\n" % (len(chunk), chunk))
        if not sized:
            self.wfile.write(b"0\r\n\r\n")

    def _collect_stderr(self, stderr: IO[bytes]) -> None:
        stderr.seek(0)
        text = stderr.read().decode(errors="replace").strip()
        if text:
            self.server.app._note_backend_error(text)


def client_env(
    server: GitHttpServer,
    *,
    token: str | None = None,
    username: str = "ci-bot",
    ca_file: Path | str | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Environment for a ``git`` client talking to ``server``; credentials only via environment.

    Uses ``GIT_CONFIG_COUNT``/``http.extraHeader`` (so no token ever appears in argv or in
    a config file) and ``GIT_SSL_CAINFO``. ``base`` defaults to ``os.environ``.
    """
    credentials = base64.b64encode(f"{username}:{server.token if token is None else token}".encode())
    env = dict(os.environ if base is None else base)
    env.update(
        GIT_CONFIG_COUNT="1",
        GIT_CONFIG_KEY_0="http.extraHeader",
        GIT_CONFIG_VALUE_0=f"Authorization: Basic {credentials.decode()}",
        GIT_SSL_CAINFO=str(server.ca_file if ca_file is None else ca_file),
        GIT_TERMINAL_PROMPT="0",
    )
    return env
