"""python-gitlab as gitops-ci lets it talk to GitLab, and the one module that imports it: it never follows a
redirect or a next page to another host (that would send the token there), its retries always end and never
re-send a POST, and its exceptions become ours (`gitlab_errors`).

python-gitlab's own retries sleep as long as a Retry-After header says (a day, if a proxy says so) and re-send
any request whose answer was lost, a POST included: a second note, a second merge request. Here a GET, PUT or
DELETE is retried on 429, 5xx and dropped connections with bounded, jittered backoff; a POST is sent once, and
its caller looks up what landed (gitlab.py).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from gitops_ci import logs
from gitops_ci.deadline import AnswerTooSlow, answer_within
from gitops_ci.errors import AuthError, GitLabError, GitopsCiError, OperationalError, RetryableError
from gitops_ci.manifest_repo.gitlab_connection import SCOPES_HINT, GitLabConnection
from gitops_ci.retry import SYSTEM_CLOCK, Clock, sleep_before_retry

TRANSIENT = frozenset({429, 500, 502, 503, 504})


def bounded_gitlab(connection: GitLabConnection, clock: Clock = SYSTEM_CLOCK) -> Any:
    import gitlab

    class BoundedGitlab(gitlab.Gitlab):
        def http_request(self, verb: str, path: str, *args: Any, **kwargs: Any) -> Any:
            kwargs.update(obey_rate_limit=False, retry_transient_errors=False)
            _refuse_foreign(path, self.api_url)
            for attempt in itertools.count(1):
                try:
                    return _within(connection.timeout, super().http_request, verb, path, *args, **kwargs)
                except Exception as err:
                    reason = _transient(err)
                    if reason is None or verb.lower() == "post" or attempt >= connection.max_attempts:
                        raise
                    what = f"GitLab {verb.upper()} {path.split('?')[0]}: {reason}"
                    sleep_before_retry(attempt, connection.backoff_seconds, what, clock=clock)
            raise AssertionError("unreachable")

    return BoundedGitlab(
        connection.url,
        private_token=connection.token,
        ssl_verify=connection.ca_file or True,
        timeout=connection.timeout,
        user_agent="gitops-ci",
        session=_session_without_redirects(),
        keep_base_url=True,  # a next page under another base (GitLab's external_url) is read from ours
    )


def _refuse_foreign(path: str, api_url: str) -> None:
    """A page's `Link: rel="next"` is followed as given, token and all, unless python-gitlab could move it
    under our base (it can when the URL holds "/api"): one elsewhere is refused, never sent."""
    if path.startswith(("http://", "https://")) and not path.startswith(api_url + "/"):
        from urllib.parse import urlsplit

        where = urlsplit(path)
        raise OperationalError(
            f"GitLab's answer points the next page at {where.scheme}://{where.netloc}, outside {api_url}; "
            "gitops-ci does not send the token there (check GitLab's external_url and --gitlab-url)"
        )


def _within(seconds: float, request: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`request`, answered in full within `seconds` (a server trickling bytes passes every read timeout)."""
    import requests

    try:
        with answer_within(seconds):
            return request(*args, **kwargs)
    except AnswerTooSlow:
        raise requests.exceptions.ReadTimeout(f"no full answer within {seconds:g}s") from None


def _transient(err: Exception) -> str | None:
    """Why `err` is worth another try (None: it is not)."""
    import gitlab
    import requests

    if isinstance(err, gitlab.exceptions.GitlabHttpError) and err.response_code in TRANSIENT:
        return f"answered {err.response_code}"
    unanswered = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
    if isinstance(err, unanswered) and not isinstance(
        err, requests.exceptions.SSLError
    ):  # TLS: fails at once
        return f"no answer ({type(err).__name__})"
    return None


def _session_without_redirects() -> Any:
    """A requests session that returns a redirect as it is: requests would follow it with python-gitlab's
    PRIVATE-TOKEN header to any host (it strips only Authorization)."""
    import requests

    class NoRedirects(requests.Session):
        def get_redirect_target(self, resp: requests.Response) -> None:
            return None

    return NoRedirects()


@contextmanager
def gitlab_errors(c: GitLabConnection, action: str) -> Iterator[None]:
    """python-gitlab's and requests' exceptions as ours, naming the token variable, the scopes it needs
    or the project path that was tried."""
    import gitlab
    import requests

    try:
        yield
    except (gitlab.exceptions.GitlabParsingError, AttributeError, KeyError, TypeError, ValueError) as err:
        # an answer without what GitLab's has (python-gitlab's objects raise AttributeError for a field
        # they lack): retryable, so that a create whose answer is unreadable is looked for, not sent again
        raise RetryableError(
            f"{action}: {c.url} answered without GitLab's fields ({_message(err)}): not GitLab's answer (a "
            "proxy's page, or another server?); check --gitlab-url and --repo-url, and that nothing "
            "answers in GitLab's place"
        ) from err
    except gitlab.exceptions.GitlabAuthenticationError:
        raise AuthError(
            f"{action}: {c.token_variable} was rejected by {c.url} (401); use {SCOPES_HINT}"
        ) from None
    except gitlab.exceptions.GitlabError as err:
        raise _answered(err, c, action) from err  # the cause's response_code: a 409, see gitlab.py
    except requests.exceptions.SSLError:
        raise OperationalError(
            f"{action}: TLS verification of {c.url} failed; "
            "point --ca-file or CI_SERVER_TLS_CA_FILE at its CA bundle"
        ) from None
    except requests.exceptions.Timeout:
        raise RetryableError(
            f"{action}: {c.url} did not answer in full within {c.timeout:g}s (--network-timeout)"
        ) from None
    except requests.exceptions.RequestException as err:
        raise RetryableError(f"{action}: cannot reach {c.url} ({type(err).__name__})") from None


def _answered(err: Any, c: GitLabConnection, action: str) -> GitopsCiError:
    """What a status GitLab answered means: whose access is lacking, which path is wrong, or a retry."""
    code, message = err.response_code, _message(err)
    if code == 403:
        return AuthError(
            f"{action}: {c.token_variable} is not allowed ({message}); use {SCOPES_HINT} "
            f"with at least Developer access to {c.project_path}"
        )
    if code == 404:
        return OperationalError(
            f"{action}: {c.project_path} was not found on {c.url} ({message}); check --repo-url and "
            f"--gitlab-url, and that {c.token_variable} can see the project"
        )
    if code is not None and 300 <= code < 400:
        return GitLabError(
            f"{action}: {c.url} answered {code} (a redirect); gitops-ci never sends the token to "
            "another URL: set --gitlab-url (or CI_SERVER_URL) to GitLab's own external URL"
        )
    if code is not None and code >= 500:
        return RetryableError(f"{action}: GitLab answered {code} ({message})")
    return GitLabError(f"{action}: GitLab answered {code} ({message})")


def _message(err: Any) -> str:
    text = str(getattr(err, "error_message", "") or err)
    first = next((line for line in text.splitlines() if line.strip()), "")
    return logs.one_line(first) if first else "no details"
