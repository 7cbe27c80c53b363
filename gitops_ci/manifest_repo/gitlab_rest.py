"""GitLab's REST API over one kept-alive HTTPS connection (requests), for the hot path of `--transport api`:
Repository Files, Tree, Commits, Branches and merge_base. python-gitlab (gitlab.py) serves merge requests and
notes; importing it costs ~45 ms more than requests alone, on every deploy.

Every answer is mapped here to our errors; redirects are never followed (the token would go with them), and
a POST is never retried here: whether a lost one landed is for the adapter to find out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from gitops_ci import logs
from gitops_ci.errors import AuthError, ConfigurationError, OperationalError, RetryableError, root_cause
from gitops_ci.manifest_repo.gitlab import GitLabConnection

log = logs.get_logger(__name__)
API_SCOPE_HINT = (
    "--transport api commits through GitLab's API, which needs a token with the api scope (write_repository "
    "covers git over HTTPS only): give {variable} the api scope, or use --transport git"
)


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


class GitLabRest:
    """The project's endpoints under /api/v4/projects/<url-encoded path>."""

    def __init__(self, connection: GitLabConnection) -> None:
        import requests

        self.connection = connection
        self.requests = 0
        self._session = requests.Session()
        self._session.headers.update({"PRIVATE-TOKEN": connection.token, "User-Agent": "gitops-ci"})
        self._session.verify = connection.ca_file or True
        self._project = f"{connection.url}/api/v4/projects/{quote(connection.project_path, safe='')}"

    def get(self, path: str, params: dict[str, Any] | None = None, *, what: str) -> Answer:
        """GET under the project; 404 comes back as an Answer, every other failure as an error."""
        return self._send("GET", path, params=params, what=what, missing_ok=True)

    def post(self, path: str, body: dict[str, Any], *, what: str) -> Answer:
        """POST under the project; a 400 comes back as an Answer (its message says what GitLab refused)."""
        return self._send("POST", path, json=body, what=what, refused_ok=True)

    @staticmethod
    def quote(value: str) -> str:
        """A path segment: `/` becomes %2F, as GitLab requires for file paths and branch names."""
        return quote(value, safe="")

    def _send(
        self,
        method: str,
        path: str,
        *,
        what: str,
        missing_ok: bool = False,
        refused_ok: bool = False,
        **kwargs: Any,
    ) -> Answer:
        import requests

        url = self._project + path
        self.requests += 1
        try:
            response = self._session.request(
                method, url, timeout=self.connection.timeout, allow_redirects=False, **kwargs
            )
        except requests.exceptions.SSLError as err:
            raise OperationalError(
                f"{what}: TLS verification of {self.connection.url} failed ({root_cause(err)}); point "
                "--ca-file or CI_SERVER_TLS_CA_FILE at its CA bundle"
            ) from None
        except requests.exceptions.RequestException as err:
            raise RetryableError(
                f"{what}: {self.connection.url} did not answer ({root_cause(err)})"
            ) from None
        log.debug("%s %s → %d", method, url, response.status_code)
        answer = Answer(response.status_code, _json(response), dict(response.headers))
        if (
            answer.status < 300
            or (missing_ok and answer.status == 404)
            or (refused_ok and answer.status == 400)
        ):
            return answer
        raise self._error(answer, what)

    def _error(self, answer: Answer, what: str) -> Exception:
        c, status, message = self.connection, answer.status, message_of(answer.body)
        if 300 <= status < 400:
            location = answer.headers.get("Location")
            return OperationalError(
                f"{what}: {c.url} answered {status} (a redirect to {location}); gitops-ci never sends the "
                "token elsewhere: use the URL GitLab redirects to"
            )
        if status == 401:
            return AuthError(
                f"{what}: {c.token_variable} was rejected by {c.url} (401); check the token is valid"
            )
        if (
            status == 403
            and isinstance(answer.body, dict)
            and answer.body.get("error") == "insufficient_scope"
        ):
            return AuthError(f"{what}: {API_SCOPE_HINT.format(variable=c.token_variable)}")
        if status == 403:
            return AuthError(f"{what}: {message} (403); the token's user needs Developer access and may push")
        if status == 404:
            return ConfigurationError(
                f"{what}: project {c.project_path} was not found on {c.url}; check --repo-url and that "
                f"{c.token_variable} can see it"
            )
        if status == 429 or status >= 500:
            return RetryableError(f"{what}: {c.url} answered {status} ({message})")
        return OperationalError(f"{what}: {c.url} answered {status} ({message})")


def _json(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def message_of(body: Any) -> str:
    if isinstance(body, dict):
        value = body.get("message") or body.get("error_description") or body.get("error") or ""
        return str(value[0] if isinstance(value, list) and value else value)[:300] or "no message"
    return "no message"
