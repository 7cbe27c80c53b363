"""What GitLab's answers, and its silences, mean for the API transport: each mapped to our error with what
to do about it (gitlab_rest.py sends; this module only reads what came back)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any, TypeVar

from gitops_ci import logs
from gitops_ci.deadline import AnswerTooSlow
from gitops_ci.errors import AuthError, ConfigurationError, OperationalError, RetryableError
from gitops_ci.manifest_repo.gitlab_connection import GitLabConnection
from gitops_ci.manifest_repo.proxy_env import proxy_parts

T = TypeVar("T")
API_SCOPE_HINT = (
    "--transport api commits through GitLab's API, which needs a token with the api scope (write_repository "
    "covers git over HTTPS only): give {variable} the api scope, or use --transport git"
)


@dataclass(frozen=True)
class Answer:
    """A status, the JSON body and the headers (title-cased) of one answer, and the request it answered."""

    status: int
    body: Any
    headers: dict[str, str]
    source: str = ""  # "reading PATH: https://gitlab.example.com", for errors

    def value(self, *keys: str, kind: type[T]) -> T:
        """The body's value at `keys` (`answer.value("commit", "id")`), of type `kind`; a body without it is
        not GitLab's answer (NotGitLabError), never a KeyError."""
        value = self.body
        for key in keys:
            if not isinstance(value, dict) or key not in value:
                raise NotGitLabError(self, " / ".join(keys))
            value = value[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise NotGitLabError(self, f"{' / '.join(keys)} as {kind.__name__}")
        return value

    def records(self, *fields: str) -> list[dict[str, Any]]:
        """The body as a list of objects that each have `fields` (a page of a listing)."""
        body = self.body
        if isinstance(body, list) and all(isinstance(r, dict) and all(f in r for f in fields) for r in body):
            return body
        raise NotGitLabError(self, f"a list of objects with {', '.join(fields)}")


class NotGitLabError(RetryableError):
    """A success whose body lacks what GitLab's has: a proxy's page, another server, a lost part of the
    answer. Retryable: after a commit POST, whether it landed is for the branch to say."""

    def __init__(self, answer: Answer, wanted: str) -> None:
        super().__init__(
            f"{answer.source} answered {answer.status} without {wanted}: not GitLab's answer (a proxy's "
            "page, or another server?); check --repo-url and --gitlab-url, and that nothing answers in "
            "GitLab's place"
        )


def refusal(answer: Answer, c: GitLabConnection, what: str) -> Exception:
    """What an answer that is not a success (nor a 404 or 400 the caller reads) means, as our error."""
    status, message = answer.status, message_of(answer.body)
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
    if status == 403 and isinstance(answer.body, dict) and answer.body.get("error") == "insufficient_scope":
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


def not_found(answer: Answer, c: GitLabConnection, what: str) -> bool:
    """Whether GitLab answered that the file, tree or branch asked for does not exist. A 404 for the project
    itself (a wrong path, or a token that cannot see it) is bad input, never a missing file."""
    if answer.status != 404:
        return False
    if message_of(answer.body) == "404 Project Not Found":
        raise refusal(answer, c, what)
    return True


def unanswered(
    err: BaseException, c: GitLabConnection, what: str, proxy: str | None, proxy_variable: str
) -> Exception:
    """What a request that got no (whole) answer means: the deadline, TLS, a proxy's 407, or silence."""
    url, seconds = c.url, c.timeout
    if isinstance(err, AnswerTooSlow):
        return RetryableError(f"{what}: {url} did not answer in full within {seconds:g}s (--network-timeout)")
    if isinstance(err, ssl.SSLCertVerificationError):
        return OperationalError(
            f"{what}: TLS verification of {url} failed ({err.verify_message}); point --ca-file or "
            "CI_SERVER_TLS_CA_FILE at its CA bundle"
        )
    if str(err).startswith("Tunnel connection failed: 407"):
        return proxy_refusal(what, proxy, proxy_variable)
    return RetryableError(f"{what}: {url} did not answer ({err or type(err).__name__})")


def proxy_refusal(what: str, proxy: str | None, proxy_variable: str) -> AuthError:
    """A proxy's 407, to a CONNECT tunnel or to a request it forwards."""
    if proxy is not None and proxy_parts(proxy).username is not None:
        return AuthError(f"{what}: the proxy in {proxy_variable} refused its user and password (407)")
    return AuthError(
        f"{what}: the proxy in {proxy_variable} wants a user and password (407); give them in its URL: "
        "http://user:password@proxy:3128"
    )


def message_of(body: Any) -> str:
    if isinstance(body, dict):
        value = body.get("message") or body.get("error_description") or body.get("error") or ""
        return logs.one_line(str(value[0] if isinstance(value, list) and value else value)) or "no message"
    return "no message"
