"""A real smart-HTTP(S) git server for tests, backed by ``git http-backend``.

Everything here talks to the real ``git`` binary: the server runs one ``git http-backend``
CGI process per request, and the repository helpers use git plumbing (no worktrees).

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
import datetime as dt
import hmac
import ipaddress
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socketserver import TCPServer
from types import TracebackType
from typing import IO, Any, Final, Protocol, Self
from urllib.parse import parse_qs, unquote, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "GIT",
    "GitError",
    "GitHttpServer",
    "RequestRecord",
    "TlsMaterial",
    "client_env",
    "commit_count",
    "commit_files",
    "git_env",
    "log_messages",
    "make_bare_repo",
    "make_ca",
    "make_unrelated_ca",
    "read_blob",
    "rev_parse",
]


def _find_git() -> str:
    found = shutil.which("git")
    if found is None:
        raise RuntimeError("git executable not found on PATH")
    return found


# Resolved once at import, so that PATH wrappers installed by tests (argv recorders) never
# see the helpers' own git calls or the server's http-backend processes.
GIT: Final[str] = _find_git()

ZERO_OID: Final[str] = "0" * 40
SERVICES: Final[tuple[str, str]] = ("git-upload-pack", "git-receive-pack")

# ---------------------------------------------------------------------------------------
# TLS material
# ---------------------------------------------------------------------------------------

_CERT_VALIDITY: Final = dt.timedelta(days=30)
_CLOCK_SKEW: Final = dt.timedelta(hours=1)


@dataclass(frozen=True)
class TlsMaterial:
    """PEM files for a test CA and a server certificate it signed (127.0.0.1 + localhost)."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def make_ca(tmpdir: Path | str) -> TlsMaterial:
    """Create a self-signed CA and a server certificate for ``127.0.0.1``/``localhost``."""
    directory = Path(tmpdir)
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _new_ca("gitops-ci test CA")
    server_key = _new_key()
    server_cert = _issue_server_cert(ca_key, ca_cert, server_key)
    return TlsMaterial(
        ca_file=_write_cert(directory / "ca.pem", ca_cert),
        cert_file=_write_cert(directory / "server.pem", server_cert),
        key_file=_write_key(directory / "server-key.pem", server_key),
    )


def make_unrelated_ca(tmpdir: Path | str) -> Path:
    """Write a CA certificate that did *not* sign any server certificate ("unknown CA" tests)."""
    directory = Path(tmpdir)
    directory.mkdir(parents=True, exist_ok=True)
    _, cert = _new_ca("gitops-ci unrelated CA")
    return _write_cert(directory / "unrelated-ca.pem", cert)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _cert_builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey) -> Any:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + _CERT_VALIDITY)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _new_ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _new_key()
    cert = (
        _cert_builder(_name(common_name), _name(common_name), key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _issue_server_cert(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> x509.Certificate:
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    alt_names = x509.SubjectAlternativeName(
        [x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")), x509.DNSName("localhost")]
    )
    cert: x509.Certificate = (
        _cert_builder(_name("localhost"), ca_cert.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(alt_names, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert


def _write_cert(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(pem)
    path.chmod(0o600)
    return path


# ---------------------------------------------------------------------------------------
# git plumbing helpers (bare repositories, no worktrees)
# ---------------------------------------------------------------------------------------

_IDENTITY: Final[Mapping[str, str]] = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.invalid",
    "GIT_COMMITTER_NAME": "Test Committer",
    "GIT_COMMITTER_EMAIL": "committer@example.invalid",
}

_BARE_REPO_CONFIG: Final[tuple[tuple[str, str], ...]] = (
    ("http.receivepack", "true"),
    ("uploadpack.allowFilter", "true"),
    ("uploadpack.allowAnySHA1InWant", "true"),
)


class GitError(RuntimeError):
    """A git helper command failed; the message includes git's stderr."""


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A hermetic environment for helper git commands: no inherited ``GIT_*``, no user config."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("GIT_")}
    env.update(_IDENTITY)
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, GIT_TERMINAL_PROMPT="0", LC_ALL="C")
    if extra:
        env.update(extra)
    return env


def _git(
    git_dir: Path | None,
    *args: str,
    stdin: bytes | None = None,
    env: Mapping[str, str] | None = None,
) -> bytes:
    argv = [GIT, *(["--git-dir", str(git_dir)] if git_dir is not None else []), *args]
    result = subprocess.run(argv, input=stdin, capture_output=True, env=git_env(env), check=False)
    if result.returncode != 0:
        stderr = result.stderr.decode(errors="replace").strip()
        raise GitError(f"{' '.join(argv)} failed with exit code {result.returncode}: {stderr}")
    return result.stdout


def _git_text(git_dir: Path | None, *args: str, stdin: bytes | None = None) -> str:
    return _git(git_dir, *args, stdin=stdin).decode().strip()


def make_bare_repo(
    root: Path | str,
    name: str,
    files: Mapping[str, str | bytes],
    branch: str = "main",
    message: str = "initial",
) -> Path:
    """Create ``<root>/<name>`` (``name`` may contain slashes) as a servable bare repo with one commit."""
    relative = Path(name)
    if relative.is_absolute() or ".." in relative.parts:
        raise ValueError(f"repository name must be a relative path without '..': {name!r}")
    bare = Path(root) / relative
    bare.parent.mkdir(parents=True, exist_ok=True)
    _git(None, "init", "--quiet", "--bare", f"--initial-branch={branch}", str(bare))
    for key, value in _BARE_REPO_CONFIG:
        _git(bare, "config", key, value)
    commit_files(bare, branch, files, message)
    return bare


def commit_files(
    bare: Path | str,
    branch: str,
    files: Mapping[str, str | bytes | None],
    message: str,
) -> str:
    """Commit ``files`` on top of ``branch`` in a bare repo with plumbing; return the new commit sha.

    Paths may be nested (``overlays/prod/kustomization.yaml``); a ``None`` value deletes the path.
    Files not mentioned are kept from the parent commit. The branch is created if it does not
    exist. The ref update is a compare-and-swap, so a concurrent update makes this raise GitError.
    """
    git_dir = Path(bare)
    ref = f"refs/heads/{branch}"
    parent = _resolve_or_none(git_dir, ref)
    tree = _write_tree(git_dir, parent, files)
    parent_args = ["-p", parent] if parent else []
    commit = _git_text(git_dir, "commit-tree", tree, *parent_args, "-F", "-", stdin=message.encode())
    _git(git_dir, "update-ref", "-m", "commit_files", ref, commit, parent or ZERO_OID)
    return commit


def _resolve_or_none(git_dir: Path, ref: str) -> str | None:
    try:
        return _git_text(git_dir, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except GitError:
        return None


def _write_tree(git_dir: Path, parent: str | None, files: Mapping[str, str | bytes | None]) -> str:
    with tempfile.TemporaryDirectory(prefix="gitserver-") as scratch_dir:
        scratch = Path(scratch_dir)
        index_env = {"GIT_INDEX_FILE": str(scratch / "index")}
        if parent:
            _git(git_dir, "read-tree", parent, env=index_env)
        blobs = _hash_blobs(git_dir, scratch, [c for c in files.values() if c is not None])
        entries = [
            f"0 {ZERO_OID}\t{path}\0" if content is None else f"100644 {next(blobs)}\t{path}\0"
            for path, content in files.items()
        ]
        _git(git_dir, "update-index", "-z", "--index-info", stdin="".join(entries).encode(), env=index_env)
        return _git(git_dir, "write-tree", env=index_env).decode().strip()


def _hash_blobs(git_dir: Path, scratch: Path, contents: list[str | bytes]) -> Iterator[str]:
    """Write all blobs with a single ``git hash-object`` process; yield their ids in order."""
    paths = []
    for number, content in enumerate(contents):
        path = scratch / f"blob-{number}"
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        paths.append(str(path))
    if not paths:
        return iter(())
    out = _git(git_dir, "hash-object", "-w", "--no-filters", "--stdin-paths", stdin="\n".join(paths).encode())
    return iter(out.decode().split())


def read_blob(bare: Path | str, ref: str, path: str) -> str:
    """Return the UTF-8 content of ``path`` at ``ref`` (raises GitError if it does not exist)."""
    return _git(Path(bare), "cat-file", "blob", f"{ref}:{path}").decode()


def rev_parse(bare: Path | str, ref: str) -> str:
    """Resolve ``ref`` (any rev-parse syntax, e.g. ``main~1``) to a full object id."""
    return _git_text(Path(bare), "rev-parse", "--verify", "--end-of-options", ref)


def log_messages(bare: Path | str, ref: str) -> list[str]:
    """Full commit messages reachable from ``ref``, newest first, without the trailing newline."""
    raw = _git(Path(bare), "log", "-z", "--format=%B", ref, "--").decode()
    return [message.rstrip("\n") for message in raw.split("\0") if message]


def commit_count(bare: Path | str, ref: str) -> int:
    """Number of commits reachable from ``ref``."""
    return int(_git_text(Path(bare), "rev-list", "--count", ref, "--"))


# ---------------------------------------------------------------------------------------
# Smart-HTTP server
# ---------------------------------------------------------------------------------------

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


@dataclass
class _Fault:
    service: str | None
    status: int
    remaining: int


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
        self._faults: list[_Fault] = []
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
        httpd.shutdown()
        httpd.server_close()
        thread.join()
        self._close_open_connections()
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
        if times < 1:
            raise ValueError("times must be >= 1")
        with self._lock:
            self._faults.append(_Fault(service, status, times))

    # -- used by the request handler ------------------------------------------------------

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self._requests.append(record)

    def _note_backend_error(self, text: str) -> None:
        with self._lock:
            self._backend_errors.append(text)

    def _take_fault(self, service: str | None) -> int | None:
        with self._lock:
            for fault in self._faults:
                if fault.service is None or fault.service == service:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault.status
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
        if not auth.valid:
            status = app.bad_credentials_status if auth.present else 401
            record(status)
            challenge = {"WWW-Authenticate": 'Basic realm="git"'} if status == 401 else {}
            self._send_plain(status, b"authentication required", headers=challenge)
            return
        if self.command == "POST" and (fault := app._take_fault(service)) is not None:
            record(fault)
            self._send_plain(fault, _INJECTED_BODY)
            return
        if self.command == "POST" and service == "git-receive-pack" and not self._run_hook(record):
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

    def _run_backend(self, body: bytes, username: str | None, record: Callable[[int], None]) -> None:
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
                self._relay_cgi_output(process.stdout, record)
            except BaseException:
                process.kill()
                raise
            finally:
                process.stdout.close()
                process.wait()
                self._collect_stderr(stderr)

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
