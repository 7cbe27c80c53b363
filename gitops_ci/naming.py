"""Names and templates that reach paths, git argument lists, URLs and commit messages. Pure.

Every value here comes from a CLI option, a CI/CD variable or the manifest repo, so each is checked before
anything runs: app and environment names are path components, branch names follow git's own
`check-ref-format` rules (and never start with `-`, so they cannot become an option), and templates
substitute only the names they document — no attribute access, indexing or format specs.
"""

from __future__ import annotations

import re
import string
from pathlib import Path

from gitops_ci.errors import ConfigurationError
from gitops_ci.logs import has_controls

MAX_NAME = 100
MAX_REF = 255
MAX_TEMPLATE = 1000
MAX_CA_BYTES = 16 << 20  # the system bundle is ~200 KiB
MAX_REPLICAS = 2**31 - 1  # Kubernetes' replicas is an int32
_NAME = re.compile(rf"[A-Za-z0-9](?:[A-Za-z0-9._-]{{0,{MAX_NAME - 2}}}[A-Za-z0-9])?")
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//")
_PROJECT_PART = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]{0,254}")
_HEX = re.compile(r"[0-9a-fA-F]{7,64}")
_REV_SUFFIX = re.compile(r"(?:[~^][0-9]{0,6})+$")

DEFAULT_APP_NAME_TEMPLATE = "{app}-{env}"  # Argo CD names are global: the seed suffixes them per environment
SETTINGS_FILE = "gitops-ci.yaml"  # the repo's conventions, written by `gitops-ci init`


def check_ca_file(path: str | None) -> str | None:
    """--ca-file: a file holding at least one PEM certificate (git, requests and ssl read nothing else)."""
    if not path:
        return path
    if not Path(path).is_file():  # a FIFO or /dev/stdin would block the read
        raise ConfigurationError(f"--ca-file {path} is not a regular file; point it at a PEM CA bundle")
    try:
        with Path(path).open("rb") as bundle:
            pem = b"-----BEGIN CERTIFICATE-----" in bundle.read(MAX_CA_BYTES)
    except OSError:
        raise ConfigurationError(
            f"--ca-file {path} is not a readable file; point it at a PEM CA bundle"
        ) from None
    if not pem:
        raise ConfigurationError(
            f"--ca-file {path} holds no PEM certificate (-----BEGIN CERTIFICATE-----); point it at a PEM CA "
            "bundle"
        )
    return path


def check_http_url(url: str, option: str) -> str:
    """A server's http(s) URL as an option gives it: with a host, without credentials (they belong in the
    variables that are masked) or characters that could split a log line or a request."""
    from urllib.parse import urlsplit

    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        raise ConfigurationError(f"{option} holds a space or a control character; give the URL alone")
    try:
        parts = urlsplit(url)
        credentials = parts.username is not None or parts.password is not None
        host = parts.hostname
    except ValueError:
        parts, credentials, host = None, False, None
    if credentials:
        raise ConfigurationError(f"{option} contains credentials; remove them (tokens go in their variables)")
    if parts is None or parts.scheme not in ("http", "https") or not host:
        raise ConfigurationError(f"{option} {url[:80]!r} is not an http(s) URL with a host")
    return url


def check_project_path(path: str, option: str) -> str:
    """A GitLab project's full path (`group/sub/project`): GitLab's path characters, no `.` or `..`."""
    parts = path.split("/")
    if len(parts) < 2 or not all(_PROJECT_PART.fullmatch(p) and p not in (".", "..") for p in parts):
        raise ConfigurationError(
            f"{option} {path[:120]!r} is not a GitLab project path; use group/project, as CI_PROJECT_PATH is"
        )
    return path


def check_secret(value: str | None, variable: str) -> str | None:
    """A secret from the job's environment, refused (never shown) when it holds a line break or another
    control character: no token has one, a paste that took the newline does."""
    if value and has_controls(value):
        raise ConfigurationError(
            f"{variable} holds a line break or another control character: set it to the secret alone"
        )
    return value


def check_token(value: str | None, variable: str) -> str | None:
    """A token (sent in a header): a secret, and without a space around it (no token has one)."""
    check_secret(value, variable)
    if value and value != value.strip():
        raise ConfigurationError(f"{variable} starts or ends with a space: set it to the token alone")
    return value


def check_name(value: str, option: str) -> str:
    """An app or environment name: a path component of letters, digits, `.`, `_` and `-`."""
    if not _NAME.fullmatch(value) or ".." in value:
        shown = value if len(value) <= 60 else value[:60] + "…"
        raise ConfigurationError(
            f"{option} {shown!r} is not a valid name: use 1-{MAX_NAME} letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit"
        )
    return value


def is_name(value: str) -> bool:
    return bool(_NAME.fullmatch(value)) and ".." not in value


def check_ref_name(value: str, option: str) -> str:
    """A branch name git accepts (`git check-ref-format --branch` rules), which no git call can read as an
    option."""
    problem = _ref_problem(value)
    if problem:
        raise ConfigurationError(f"{option} {value[:80]!r} is not a valid branch name: {problem}")
    return value


def _ref_problem(value: str) -> str | None:
    if not value:
        return "it is empty"
    if len(value) > MAX_REF:
        return f"it is longer than {MAX_REF} characters"
    if value.startswith("-"):
        return "it starts with '-'"
    if value == "@" or value.startswith("/") or value.endswith(("/", ".")):
        return "it starts or ends with '/', ends with '.', or is '@'"
    if _REF_FORBIDDEN.search(value):
        return "it contains a space, a control character, '..', '//', '@{' or one of ~^:?*[\\"
    if any(part.startswith(".") or part.endswith(".lock") for part in value.split("/")):
        return "a component starts with '.' or ends with '.lock'"
    return None


def check_revision(value: str, option: str) -> str:
    """A commit to compare with: a SHA, or a branch or ref name with optional `~N`/`^N` suffixes."""
    stem = _REV_SUFFIX.sub("", value)
    if _HEX.fullmatch(value) or (stem and _ref_problem(stem) is None):
        return value
    raise ConfigurationError(
        f"{option} {value[:80]!r} is not a commit or branch name; pass a SHA or a branch such as origin/main"
    )


def render(template: str, option: str, **values: str) -> str:
    """`template` with `{name}` replaced by `values[name]`; anything else in braces is refused."""
    if len(template) > MAX_TEMPLATE:
        raise ConfigurationError(f"{option} is longer than {MAX_TEMPLATE} characters")
    if has_controls(template):  # what it renders reaches a log line or a commit
        raise ConfigurationError(
            f"{option} holds a line break or another control character; give it on one line"
        )
    available = ", ".join("{" + name + "}" for name in values)
    out: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as err:
        raise ConfigurationError(
            f"{option} {template!r} is invalid ({err}); available: {available}"
        ) from None
    for literal, field, spec, conversion in parsed:
        out.append(literal)
        if field is None:
            continue
        if field not in values or spec or conversion:
            shown = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            shown += "}"
            raise ConfigurationError(
                f"{option} {template!r} uses {shown}; available: {available} (write {{{{ for a brace)"
            )
        out.append(values[field])
    return "".join(out)
