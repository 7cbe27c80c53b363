"""python-gitlab as gitops-ci lets it talk to GitLab: it never follows a redirect (that would send the token
to another host), and its retries always end and never re-send a POST.

python-gitlab's own retries sleep as long as a Retry-After header says (a day, if a proxy says so) and re-send
any request whose answer was lost, a POST included: a second note, a second merge request. Here a GET, PUT or
DELETE is retried on 429, 5xx and dropped connections with bounded, jittered backoff; a POST is sent once, and
its caller looks up what landed (gitlab.py).
"""

from __future__ import annotations

import itertools
from typing import Any

from gitops_ci.manifest_repo.gitlab_connection import GitLabConnection
from gitops_ci.retry import SYSTEM_CLOCK, Clock, sleep_before_retry

TRANSIENT = frozenset({429, 500, 502, 503, 504})


def bounded_gitlab(connection: GitLabConnection, clock: Clock = SYSTEM_CLOCK) -> Any:
    import gitlab

    class BoundedGitlab(gitlab.Gitlab):
        def http_request(self, verb: str, path: str, *args: Any, **kwargs: Any) -> Any:
            kwargs.update(obey_rate_limit=False, retry_transient_errors=False)
            for attempt in itertools.count(1):
                try:
                    return super().http_request(verb, path, *args, **kwargs)
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
    )


def _transient(err: Exception) -> str | None:
    """Why `err` is worth another try (None: it is not)."""
    import gitlab
    import requests

    if isinstance(err, gitlab.exceptions.GitlabHttpError) and err.response_code in TRANSIENT:
        return f"answered {err.response_code}"
    unanswered = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
    if isinstance(err, unanswered):
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
