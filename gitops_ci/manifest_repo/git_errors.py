"""git's failures as our errors: actionable, with git's own words kept and secrets masked."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Protocol

from gitops_ci import logs
from gitops_ci.errors import (
    AuthError,
    GitError,
    GitopsCiError,
    OperationalError,
    PushDeclinedError,
    PushRejectedError,
    RetryableError,
    UsageError,
)

if TYPE_CHECKING:
    from gitops_ci.manifest_repo.git import Remote


class Failure(Protocol):
    """A failed git command: GitPython's GitCommandError, or our GitFailure."""

    @property
    def stdout(self) -> object: ...

    @property
    def stderr(self) -> object: ...


_AUTH = re.compile(
    r"returned error: 401|Authentication failed|could not read Username|invalid credentials", re.I
)
_FORBIDDEN = re.compile(r"returned error: 403|HTTP Basic: Access denied|not allowed to push", re.I)
_PROTECTED = re.compile(r"protected branch", re.I)
_TLS = re.compile(r"certificate|SSL|TLS|gnutls", re.I)
# Only these mean "another push won": anything else the server rejects is a refusal that retrying won't cure.
_RACE = re.compile(
    r"\[rejected\]|fetch first|non-fast-forward|stale info|cannot lock ref|failed to update ref|"
    r"incorrect old value",
    re.I,
)
_DECLINED = re.compile(r"\[remote rejected\]|hook declined", re.I)
_REMOTE_REASON = re.compile(r"\[remote rejected\] (?:\S+ -> \S+ )?\((.*)\)")
_TIMED_OUT = re.compile(r"did not complete in [\d.]+ secs")
_TRANSIENT = re.compile(
    r"returned error: 5\d\d|RPC failed|Connection reset|Empty reply|Failed to connect|Connection refused|"
    r"timed out|unexpected disconnect|the remote end hung up|early EOF|transfer closed|HTTP/2 stream|"
    r"Operation too slow",
    re.I,
)
_NOT_FOUND = re.compile(
    r"returned error: 404|Repository not found|does not appear to be a git repository", re.I
)
_NO_BRANCH = re.compile(r"Remote branch (\S+) not found|couldn't find remote ref", re.I)


def classify(err: Failure, action: str, remote: Remote) -> GitopsCiError:
    """Turn git's failure against `remote` into an actionable error; which one decides whether we retry."""
    output = _output(err)
    detail = _last_line(output)
    variable = remote.token_variable or "GITOPS_TOKEN"
    if _PROTECTED.search(output):
        return OperationalError(
            f"git {action} to {remote.url}: the branch is protected against direct pushes; "
            "use --mode merge-request (or allow the token's user to push)"
        )
    if _AUTH.search(output) or _FORBIDDEN.search(output):
        return _auth_error(output, action, remote)
    if _TIMED_OUT.search(output):
        return RetryableError(
            f"git {action} to {remote.url} did not finish within {remote.timeout:g}s; "
            "raise --git-timeout if the server is only slow"
        )
    if _RACE.search(output):
        return PushRejectedError(f"git {action}: the remote branch moved ({detail})")
    if _DECLINED.search(output):
        return PushDeclinedError(
            f"git {action} to {remote.url} was declined by the server: {_server_reason(output)}; "
            "check the project's push rules and branch protection, or use --mode merge-request"
        )
    if _TLS.search(output) and not _TRANSIENT.search(output):
        return OperationalError(
            f"git {action}: TLS verification of {remote.url} failed ({detail}); "
            "point --ca-file or CI_SERVER_TLS_CA_FILE at the CA bundle of your GitLab"
        )
    if _NO_BRANCH.search(output):
        return UsageError(f"git {action}: {detail}; check --branch")
    if _TRANSIENT.search(output):
        return RetryableError(f"git {action} to {remote.url} failed transiently ({detail})")
    if _NOT_FOUND.search(output):
        return OperationalError(
            f"git {action}: {remote.url} was not found; check --repo-url and that {variable} can read it"
        )
    return GitError(f"git {action} failed: {detail}")


def _auth_error(output: str, action: str, remote: Remote) -> AuthError:
    variable = remote.token_variable
    if _FORBIDDEN.search(output) and not _AUTH.search(output):
        return AuthError(
            f"git {action}: {variable or 'GITOPS_TOKEN'} may not write to {remote.url} (403); "
            "the token needs the write_repository scope and at least Developer access"
        )
    if variable is None:
        return AuthError(
            f"git {action}: {remote.url} asks for credentials (401) and none is set: looked for "
            "GITOPS_TOKEN, GITOPS_PASSWORD (with GITOPS_USERNAME) and CI_JOB_TOKEN; set GITOPS_TOKEN to a "
            "token with write_repository"
        )
    return AuthError(f"git {action}: {variable} was rejected by {remote.url} (401); check the token is valid")


def _server_reason(output: str) -> str:
    said = [
        line.removeprefix("remote:").strip()
        for line in _lines(output)
        if line.startswith("remote:") and line.removeprefix("remote:").strip()
    ]
    reasons = _REMOTE_REASON.findall(output)
    return "; ".join(dict.fromkeys([*said, *reasons]))[:500] or "no reason given"


def local_failure(err: Failure, action: str) -> GitError:
    """A git command on the local clone failed: say which, in git's last meaningful words."""
    return GitError(f"git {action} failed: {_last_line(_output(err))}")


def _output(err: Failure) -> str:
    return logs.mask(f"{err.stderr or ''}\n{err.stdout or ''}")


def _lines(text: str) -> list[str]:
    """git's output lines, without GitPython's `stderr: '…'` wrapping."""
    stripped = (
        line.strip().removeprefix("stderr: ").removeprefix("stdout: ").strip("'")
        for line in text.splitlines()
    )
    return [line for line in stripped if line]


def _last_line(text: str) -> str:
    """git's last meaningful line; when it is only `fatal:` (e.g. "failed to write commit object"), the
    `error:` and `gpg:` lines before it that say why come first."""
    lines = _lines(text)
    meaningful = [line for line in lines if line.startswith(("fatal:", "error:", "gpg:", "!", "remote:"))]
    last = (meaningful or lines or ["no output"])[-1]
    if not last.startswith("fatal:"):
        return last
    causes = [line for line in meaningful[:-1] if line.startswith(("error:", "gpg:"))]
    return "; ".join(dict.fromkeys([*causes[-3:], last]))[:500]
