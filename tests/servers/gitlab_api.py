"""A GitLab REST API v4 contract server on 127.0.0.1 for integration tests.

Shapes and status codes follow docs.gitlab.com (api/merge_requests.md, api/notes.md,
api/projects.md, api/branches.md, api/users.md, api/rest/_index.md, api/rest/authentication.md,
api/rest/troubleshooting.md) and ``lib/api/merge_requests.rb``. Each project is backed by a real
bare git repository; merging writes real commits into it.

Usage::

    with GitLabContractServer() as server:
        server.add_token("glpat-1", username="ci-bot", scopes=("api",))
        server.add_project("group/app", repo_dir, has_pipelines=True)
        gl = gitlab.Gitlab(server.url, private_token="glpat-1")
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar, NamedTuple
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from servers import housekeeping
from servers.gitlab_git import GitRepo
from servers.gitlab_model import (
    MergeRequest,
    Project,
    Token,
    User,
    branch_json,
    mr_json,
    note_json,
    project_json,
    user_json,
)
from servers.gitlab_repository import (
    DropAnswer,
    RepositoryFaults,
    create_commit,
    get_file,
    get_tree,
    list_commits,
    merge_base,
)
from servers.gitlab_state import ApiError, GitLabState
from servers.tls import TlsMaterial

API_PREFIX = "/api/v4"
SECRET_PARAMS = frozenset({"private_token", "access_token", "job_token"})
INSUFFICIENT_SCOPE = "The request requires higher privileges than provided by the access token."


class Call(NamedTuple):
    """One request as the server saw it (tokens are never recorded)."""

    method: str
    path: str
    query: dict[str, Any]
    body: Any


@dataclass
class Ctx:
    params: dict[str, Any]  # query string merged with the JSON/form body (body wins)
    args: dict[str, str]  # decoded path parameters
    token: Token
    base_url: str
    path: str
    raw_query: str

    @property
    def user(self) -> User:
        return self.token.user


Reply = tuple[int, Any, dict[str, str]]  # status, JSON body, extra headers
Handler = Callable[[Ctx], Reply]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    write: bool = False  # needs scope ``api``; reads accept ``api`` or ``read_api``
    job_token: bool = False  # CI job tokens may call it for their own project
    user_scope: bool = False  # ``read_user`` is enough
    repository_read: bool = False  # ``read_repository`` is enough (files.rb: GET/HEAD of the Files API)
    concurrent: bool = False  # runs without the state lock, as GitLab serves concurrent requests


# branches.rb: `branch: API::NO_SLASH_URL_PART_REGEX` (a slash in a branch name is sent as %2F)
_PARAM = {"project": r"[^/]+", "iid": r"\d+", "note_id": r"\d+", "branch": r"[^/]+", "file_path": r"[^/]+"}


def route(method: str, template: str, handler: Handler, **flags: bool) -> Route:
    regex = re.sub(r"\{(\w+)\}", lambda m: f"(?P<{m[1]}>{_PARAM[m[1]]})", template)
    return Route(method, re.compile(regex), handler, **flags)


@dataclass(frozen=True)
class Scripted:
    """One request that misbehaves: answered `status` (with `headers`) before it is applied; or applied and
    its answer lost (the connection closes), or applied and answered `status_after` (a gateway that gave up
    waiting for GitLab, which went on): what a proxy in front of a busy GitLab does. With `headers` alone it
    is answered as usual, with those headers set (a hostile server's Link)."""

    method: str
    path_end: str
    status: int | None = None
    reason: str = "Service Unavailable"
    headers: tuple[tuple[str, str], ...] = ()
    lose_answer: bool = False
    status_after: int | None = None


class GitLabApi:
    """Routing, authentication and the endpoint handlers; one instance per server."""

    def __init__(self, state: GitLabState, calls: list[Call]) -> None:
        self.state, self.calls = state, calls
        self.errors: list[str] = []  # unexpected exceptions, for tests to assert on
        self.faults = RepositoryFaults()
        self.scripted: list[Scripted] = []  # the next matching requests misbehave, in order
        # GitLab builds pagination links from its external_url, which may not be the URL a client uses
        self.external_url: str | None = None
        # wall time with at least one request being answered (for benchmarks: the server's share of a deploy)
        self.busy_seconds = 0.0
        self._busy_lock = threading.Lock()
        self._answering, self._busy_since = 0, 0.0
        mr, notes = "/projects/{project}/merge_requests", "/projects/{project}/merge_requests/{iid}/notes"
        self.routes = [
            route("GET", "/user", self.get_user, user_scope=True),
            route("GET", "/users", self.list_users, user_scope=True),
            route("GET", "/projects/{project}", self.get_project, job_token=True),
            route(
                "GET",
                "/projects/{project}/repository/branches/{branch}",
                self.get_branch,
                job_token=True,
                concurrent=True,
            ),
            route(
                "GET",
                "/projects/{project}/repository/files/{file_path}",
                self.get_file,
                repository_read=True,
                concurrent=True,
            ),
            route("GET", "/projects/{project}/repository/tree", self.get_tree, concurrent=True),
            route("GET", "/projects/{project}/repository/merge_base", self.get_merge_base, concurrent=True),
            route("GET", "/projects/{project}/repository/commits", self.list_commits, concurrent=True),
            route(
                "POST",
                "/projects/{project}/repository/commits",
                self.create_commit,
                write=True,
                concurrent=True,
            ),
            route("GET", mr, self.list_mrs, job_token=True),
            route("POST", mr, self.create_mr, write=True),
            route("GET", mr + "/{iid}", self.get_mr, job_token=True),
            route("PUT", mr + "/{iid}", self.update_mr, write=True),
            route("PUT", mr + "/{iid}/merge", self.merge_mr, write=True),
            route("GET", notes, self.list_notes, job_token=True),
            route("POST", notes, self.create_note, write=True),
            route("GET", notes + "/{note_id}", self.get_note, job_token=True),
            route("PUT", notes + "/{note_id}", self.update_note, write=True),
        ]

    # ----- request pipeline -----------------------------------------------------------------
    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        """Counts the block's wall time in `busy_seconds`, once however many requests overlap it."""
        with self._busy_lock:
            if not self._answering:
                self._busy_since = time.perf_counter()
            self._answering += 1
        try:
            yield
        finally:
            with self._busy_lock:
                self._answering -= 1
                if not self._answering:
                    self.busy_seconds += time.perf_counter() - self._busy_since

    def dispatch(self, method: str, target: str, headers: Message, raw: bytes) -> Reply:
        url = urlsplit(target)
        query: dict[str, Any] = {}
        for key, value in parse_qsl(url.query, keep_blank_values=True):
            if key.endswith("[]"):
                query.setdefault(key[:-2], []).append(value)
            else:
                query[key] = value
        with self.state.lock:
            try:
                body = self._body(headers, raw)
                self.calls.append(
                    Call(method, url.path, {k: v for k, v in query.items() if k not in SECRET_PARAMS}, body)
                )
                fault = self._scripted(method, url.path)
                if fault is not None and fault.status is not None:  # refused before anything is applied
                    return fault.status, {"message": f"{fault.status} {fault.reason}"}, dict(fault.headers)
                answer = self._route(method, url.path, url.query, query, body, headers)
                if fault is not None and fault.lose_answer:
                    raise DropAnswer()
                if fault is not None and fault.status_after is not None:
                    return fault.status_after, {"message": f"{fault.status_after} {fault.reason}"}, {}
                if fault is not None and fault.headers:  # answered, with headers of its own
                    return answer[0], answer[1], {**answer[2], **dict(fault.headers)}
                return answer
            except ApiError as error:
                return error.status, error.body, error.headers
            except DropAnswer:
                raise
            except Exception as error:  # a server bug: answer 500 instead of dropping the connection
                self.errors.append(repr(error))
                return 500, {"message": "500 Internal Server Error"}, {}

    def _scripted(self, method: str, path: str) -> Scripted | None:
        for index, fault in enumerate(self.scripted):
            if fault.method == method and path.endswith(fault.path_end):
                return self.scripted.pop(index)
        return None

    @staticmethod
    def _body(headers: Message, raw: bytes) -> Any:
        if not raw:
            return None
        if "json" in (headers.get("Content-Type") or ""):
            try:
                return json.loads(raw)
            except ValueError as exc:
                raise ApiError(400, {"error": "body is not valid JSON"}) from exc
        return dict(parse_qsl(raw.decode(), keep_blank_values=True))

    def _route(
        self, method: str, path: str, raw_query: str, query: dict[str, Any], body: Any, headers: Message
    ) -> Reply:
        allowed: list[str] = []
        sub = path[len(API_PREFIX) :] if path.startswith(API_PREFIX + "/") else None
        for candidate in self.routes if sub is not None else []:
            found = candidate.pattern.fullmatch(sub or "")
            if found is None:
                continue
            if candidate.method != method:
                allowed.append(candidate.method)
                continue
            token = self._authenticate(headers, query)
            args = {key: unquote(value) for key, value in found.groupdict().items()}
            self._authorize(candidate, token, args)
            params = {**query, **(body if isinstance(body, dict) else {})}
            host = headers.get("Host") or "127.0.0.1"
            ctx = Ctx(params, args, token, f"http://{host}", path, raw_query)
            if not candidate.concurrent:
                return candidate.handler(ctx)
            self.state.lock.release()  # held once, by dispatch
            try:
                return candidate.handler(ctx)
            finally:
                self.state.lock.acquire()
        if allowed:
            return 405, {"error": "405 Not Allowed"}, {"Allow": ", ".join(sorted(set(allowed)))}
        return 404, {"error": "404 Not Found"}, {}

    def _authenticate(self, headers: Message, query: dict[str, Any]) -> Token:
        bearer = headers.get("Authorization") or ""
        secret = (
            headers.get("PRIVATE-TOKEN")
            or (bearer[7:] if bearer.lower().startswith("bearer ") else "")
            or query.get("private_token")
            or query.get("access_token")
        )
        job = headers.get("JOB-TOKEN") or query.get("job_token")
        token = self.state.tokens.get(str(secret or job or ""))
        if token is None or (token.job_project_id is None) != bool(secret):
            raise ApiError(401, {"message": "401 Unauthorized"})
        return token

    def _authorize(self, candidate: Route, token: Token, args: dict[str, str]) -> None:
        if token.job_project_id is not None:
            if not candidate.job_token:
                raise ApiError(403, {"message": "403 Forbidden"})
            project = self.state.find_project(args["project"])
            if project is None or project.id != token.job_project_id:
                raise ApiError(404, {"message": "404 Project Not Found"})
            return
        needed = {"api"} if candidate.write else {"api", "read_api"}
        if candidate.user_scope:
            needed.add("read_user")
        if candidate.repository_read:
            needed.add("read_repository")
        if not token.scopes & needed:
            raise ApiError(
                403,
                {
                    "error": "insufficient_scope",
                    "error_description": INSUFFICIENT_SCOPE,
                    "scope": " ".join(sorted(needed)),
                },
            )

    def _page(self, ctx: Ctx, items: list[Any]) -> Reply:
        """Offset pagination with the X-* headers and ``Link`` (rel prev/next/first/last)."""
        try:
            per_page = min(max(int(ctx.params.get("per_page") or 20), 1), 100)
            page = max(int(ctx.params.get("page") or 1), 1)
        except ValueError as exc:
            raise ApiError(400, {"error": "page is invalid, per_page is invalid"}) from exc
        pages = max(1, math.ceil(len(items) / per_page))
        kept = [
            (k, v)
            for k, v in parse_qsl(ctx.raw_query, keep_blank_values=True)
            if k not in SECRET_PARAMS | {"page", "per_page"}
        ]

        def link(number: int, rel: str) -> str:
            query = urlencode([*kept, ("page", number), ("per_page", per_page)])
            return f'<{self.external_url or ctx.base_url}{ctx.path}?{query}>; rel="{rel}"'

        rels = [(page - 1, "prev")] if page > 1 else []
        rels += [(page + 1, "next")] if page < pages else []
        headers = {
            "X-Total": str(len(items)),
            "X-Total-Pages": str(pages),
            "X-Page": str(page),
            "X-Per-Page": str(per_page),
            "X-Next-Page": str(page + 1) if page < pages else "",
            "X-Prev-Page": str(page - 1) if page > 1 else "",
            "Link": ", ".join(link(n, rel) for n, rel in [*rels, (1, "first"), (pages, "last")]),
        }
        return 200, items[(page - 1) * per_page : page * per_page], headers

    # ----- handlers -------------------------------------------------------------------------
    def get_user(self, ctx: Ctx) -> Reply:
        return 200, user_json(self.state, ctx.user, full=True), {}

    def list_users(self, ctx: Ctx) -> Reply:
        wanted = ctx.params.get("username")
        users = [u for u in self.state.users.values() if wanted in (None, u.username)]
        return self._page(ctx, [user_json(self.state, u) for u in users])

    def get_project(self, ctx: Ctx) -> Reply:
        return 200, project_json(self.state.project_or_404(ctx.args["project"])), {}

    def _project(self, ctx: Ctx) -> Project:
        """The project of a route that reads git outside the state lock (GitLab serves reads side by side)."""
        with self.state.lock:
            return self.state.project_or_404(ctx.args["project"])

    def get_branch(self, ctx: Ctx) -> Reply:
        project = self._project(ctx)
        name = ctx.args["branch"]
        info = project.repo.branch_info(name)
        if info is None:
            raise ApiError(404, {"message": "404 Branch Not Found"})
        return 200, branch_json(project, name, info), {}

    def get_file(self, ctx: Ctx) -> Reply:
        if (before := self.faults.before_file_read) is not None:  # read once: another request may clear it
            before(ctx.args["file_path"])
        try:
            return 200, get_file(self._project(ctx), ctx.args["file_path"], ctx.params), {}
        finally:  # found or not
            if (after := self.faults.after_file_read) is not None:
                after(ctx.args["file_path"])

    def get_tree(self, ctx: Ctx) -> Reply:
        return self._page(ctx, get_tree(self._project(ctx), ctx.params))

    def get_merge_base(self, ctx: Ctx) -> Reply:
        refs = ctx.params.get("refs")
        refs = refs if isinstance(refs, list) else [refs] if refs else []
        return 200, merge_base(self._project(ctx), refs), {}

    def list_commits(self, ctx: Ctx) -> Reply:
        status, page, headers = self._page(ctx, list_commits(self._project(ctx), ctx.params))
        # commits.md: "For performance reasons, GitLab does not return x-total, x-total-pages"
        return status, page, {k: v for k, v in headers.items() if k not in ("X-Total", "X-Total-Pages")}

    def create_commit(self, ctx: Ctx) -> Reply:
        return 201, create_commit(self._project(ctx), ctx.user, ctx.params, self.faults), {}

    def list_mrs(self, ctx: Ctx) -> Reply:
        project = self.state.project_or_404(ctx.args["project"])
        chosen = self.state.find_mrs(project, ctx.params)
        return self._page(ctx, [mr_json(self.state, project, mr, full=False) for mr in chosen])

    def create_mr(self, ctx: Ctx) -> Reply:
        project = self.state.project_or_404(ctx.args["project"])
        return 201, mr_json(self.state, project, self.state.create_mr(project, ctx.user, ctx.params)), {}

    def _mr(self, ctx: Ctx) -> tuple[Project, MergeRequest]:
        project = self.state.project_or_404(ctx.args["project"])
        mr = self.state.mr_or_404(project, ctx.args["iid"])
        self.state.sync(project, mr)
        return project, mr

    def get_mr(self, ctx: Ctx) -> Reply:
        project, mr = self._mr(ctx)
        answer = mr_json(self.state, project, mr)
        self.state.poll(project, mr)  # checks, CI and auto-merge advance after each answered GET
        return 200, answer, {}

    def update_mr(self, ctx: Ctx) -> Reply:
        project, mr = self._mr(ctx)
        self.state.update_mr(project, mr, ctx.user, ctx.params)
        return 200, mr_json(self.state, project, mr), {}

    def merge_mr(self, ctx: Ctx) -> Reply:
        project, mr = self._mr(ctx)
        self.state.accept_mr(project, mr, ctx.user, ctx.params)
        return 200, mr_json(self.state, project, mr), {}

    def list_notes(self, ctx: Ctx) -> Reply:
        project, mr = self._mr(ctx)
        notes = self.state.sorted_notes(mr, ctx.params)
        return self._page(ctx, [note_json(self.state, project, note) for note in notes])

    def create_note(self, ctx: Ctx) -> Reply:
        project, mr = self._mr(ctx)
        return 201, note_json(self.state, project, self.state.add_note(mr, ctx.user, ctx.params)), {}

    def get_note(self, ctx: Ctx) -> Reply:
        project, mr = self._mr(ctx)
        return 200, note_json(self.state, project, self.state.note_or_404(mr, ctx.args["note_id"])), {}

    def update_note(self, ctx: Ctx) -> Reply:
        project, mr = self._mr(ctx)
        note = self.state.note_or_404(mr, ctx.args["note_id"])
        self.state.update_note(note, ctx.user, ctx.params)
        return 200, note_json(self.state, project, note), {}


class _Handler(BaseHTTPRequestHandler):
    api: ClassVar[GitLabApi]
    server_version = "gitlab-contract/1.0"
    protocol_version = "HTTP/1.1"  # keep-alive, as GitLab (Workhorse, nginx) serves it
    disable_nagle_algorithm = True  # no delayed-ACK stall between headers and body that GitLab would not have

    def log_message(self, format: str, *args: Any) -> None:
        return  # keep test output quiet

    def _handle(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            with self.api.busy():
                status, body, headers = self.api.dispatch(self.command, self.path, self.headers, raw)
        except DropAnswer:  # applied, then the connection closes without an answer
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle


class GitLabContractServer:
    """The server plus the registry, knobs and observation helpers that tests use."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        checking_polls: int = 1,
        conflict_merge_status: int = 405,
        tls: TlsMaterial | None = None,
    ) -> None:
        self.state = GitLabState(checking_polls=checking_polls, conflict_merge_status=conflict_merge_status)
        self.calls: list[Call] = []
        self.api = GitLabApi(self.state, self.calls)
        handler = type("GitLabHandler", (_Handler,), {"api": self.api})
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
        self._scheme = "http"
        if tls is not None:  # GitLab is served over HTTPS: a benchmark must pay the handshake too
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls.cert_file, tls.key_file)
            self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
            self._scheme = "https"
        self._thread: threading.Thread | None = None
        self.state.base_url = self.url

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"{self._scheme}://{host!s}:{port}"

    def start(self) -> GitLabContractServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="gitlab-api", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._httpd.server_close()
        housekeeping.settle()

    def __enter__(self) -> GitLabContractServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----- registry -------------------------------------------------------------------------
    def add_user(self, username: str, *, name: str | None = None, email: str | None = None) -> dict[str, Any]:
        with self.state.lock:
            user = self.state.add_user(username, name=name, email=email)
            return user_json(self.state, user, full=True) or {}

    def add_token(self, token: str, *, username: str, scopes: Iterable[str] = ("api",)) -> None:
        """A personal/project access token; send it as ``PRIVATE-TOKEN`` or ``Authorization: Bearer``."""
        with self.state.lock:
            self.state.tokens[token] = Token(self.state.add_user(username), frozenset(scopes))

    def add_job_token(self, token: str, *, project: str | int, username: str = "ci-job") -> None:
        """A CI job token (``JOB-TOKEN``): read endpoints of its own project only."""
        with self.state.lock:
            project_id = self.state.project_or_404(project).id
            self.state.tokens[token] = Token(self.state.add_user(username), frozenset(), project_id)

    def add_project(
        self,
        path_with_namespace: str,
        repo_dir: str | Path,
        *,
        default_branch: str = "main",
        has_pipelines: bool = False,
        http_url_to_repo: str | None = None,
        **settings: Any,
    ) -> dict[str, Any]:
        """Register a project backed by the bare repository ``repo_dir``; returns its API JSON.

        ``settings`` are :class:`Project` fields: ``merge_method`` (merge | rebase_merge | ff),
        ``squash_option`` (never | always | default_on | default_off),
        ``only_allow_merge_if_pipeline_succeeds`` (default: ``has_pipelines``),
        ``remove_source_branch_after_merge``, ``pipeline_polls`` and ``pipeline_final_status``.
        """
        settings.setdefault("only_allow_merge_if_pipeline_succeeds", has_pipelines)
        web_url = f"{self.url}/{path_with_namespace}"
        with self.state.lock:
            project = Project(
                self.state.next_id("project"),
                path_with_namespace,
                GitRepo(repo_dir),
                default_branch,
                web_url,
                http_url_to_repo or f"{web_url}.git",
                has_pipelines=has_pipelines,
                **settings,
            )
            self.state.projects[project.id] = project
            return project_json(project)

    # ----- knobs ----------------------------------------------------------------------------
    def set_checking_polls(self, n: int) -> None:
        """How many GETs of a merge request answer ``checking`` after create or a source push."""
        with self.state.lock:
            self.state.checking_polls = max(0, n)

    def set_pipeline(
        self, project: str | int, *, polls_until_done: int | None = None, final_status: str | None = None
    ) -> None:
        """CI for new source SHAs: ``running`` for N GETs, then ``final_status``.

        A new ``final_status`` also applies to pipelines of the project that are still running.
        """
        with self.state.lock:
            found = self.state.project_or_404(project)
            if polls_until_done is not None:
                found.pipeline_polls = polls_until_done
            if final_status is not None:
                found.pipeline_final_status = final_status
                for pipeline in found.pipelines.values():
                    pipeline.final_status = final_status

    # ----- observation ----------------------------------------------------------------------
    def project(self, project: str | int) -> dict[str, Any]:
        with self.state.lock:
            return project_json(self.state.project_or_404(project))

    def merge_requests(self, project: str | int) -> list[dict[str, Any]]:
        """Every merge request of the project as the list endpoint shows it (no poll is counted)."""
        with self.state.lock:
            found = self.state.project_or_404(project)
            for mr in found.merge_requests.values():
                self.state.sync(found, mr)
            return [mr_json(self.state, found, mr, full=False) for mr in found.merge_requests.values()]

    def notes(self, project: str | int, iid: int) -> list[dict[str, Any]]:
        """The notes of one merge request, oldest first."""
        with self.state.lock:
            found = self.state.project_or_404(project)
            return [note_json(self.state, found, n) for n in self.state.mr_or_404(found, iid).notes]
