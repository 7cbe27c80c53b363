"""One error hierarchy; the CLI maps it to exit codes (2 bad input, 1 operational failure)."""

from __future__ import annotations

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class GitopsCiError(Exception):
    """Base of every error we raise on purpose. The message is one line that says what to do."""

    exit_code = EXIT_FAILURE


class UsageError(GitopsCiError):
    """Bad input: an argument, an option, a file's content. Nothing was written."""

    exit_code = EXIT_USAGE


class ImageArgumentError(UsageError):
    """An IMAGE argument that does not follow kustomize's `set image` syntax or the reference grammar."""


class KustomizationError(UsageError):
    """A kustomization file that cannot be found, parsed or edited safely."""


class UnsafePathError(UsageError):
    """A path in the manifest repo resolves outside it, or a write would go through a symlink."""


class ConfigurationError(UsageError):
    """A missing or contradictory setting (option or environment variable)."""


class OperationalError(GitopsCiError):
    """Something outside our input failed: network, auth, a server, the file system."""


class GitError(OperationalError):
    """A git operation failed."""


class AuthError(OperationalError):
    """Credentials were missing or rejected; the message names the variable to fix."""


class RetryableError(OperationalError):
    """A transient failure (5xx, dropped connection, moved branch) that a retry may cure."""


class PushRejectedError(RetryableError):
    """The remote branch moved under us; fetch, re-apply and push again."""


class PushDeclinedError(OperationalError):
    """The server refused the push for good (a hook, a push rule, branch protection): never retried."""


class GitLabError(OperationalError):
    """The GitLab API refused or failed a request."""


class SyncError(OperationalError):
    """Argo CD or Flux refused a sync request, or the application failed to become healthy."""


class WaitTimeoutError(SyncError):
    """The revision was not synced and healthy before the deadline."""


class InternalError(GitopsCiError):
    """A safety check caught a bug in gitops-ci itself; nothing was written."""

    exit_code = 3


def root_cause(err: BaseException) -> str:
    """The innermost cause of a network error, whole: `[Errno 111] Connection refused` rather than the
    two hundred characters of urllib3's wrapping around it."""
    cause, seen = err, {id(err)}
    while True:
        reason = getattr(cause, "reason", None)
        wrapped = cause.args[0] if cause.args and isinstance(cause.args[0], BaseException) else None
        inner = next(
            (
                c
                for c in (reason, wrapped, cause.__cause__, cause.__context__)
                if isinstance(c, BaseException)
            ),
            None,
        )
        if inner is None or id(inner) in seen:
            break
        seen.add(id(inner))
        cause = inner
    return str(cause).strip() or type(cause).__name__
