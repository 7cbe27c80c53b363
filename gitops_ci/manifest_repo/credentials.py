"""Who gitops-ci is towards the manifest repo, and how git gets that without seeing it in argv or config.

git reads `http.<url>.extraHeader` from GIT_CONFIG_COUNT/KEY_n/VALUE_n in its environment: the header is
scoped to the manifest repo's server, never written to `.git/config`, never in a URL or a process list.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from gitops_ci import logs
from gitops_ci.errors import ConfigurationError
from gitops_ci.naming import check_secret, check_token

DEFAULT_USERNAME = "oauth2"
JOB_TOKEN_USERNAME = "gitlab-ci-token"


@dataclass(frozen=True)
class Credentials:
    """A username and token, and the variable the token came from (for error messages)."""

    username: str
    token: str = field(repr=False)
    variable: str

    def basic_header(self) -> str:
        raw = base64.b64encode(f"{self.username}:{self.token}".encode()).decode("ascii")
        return f"Authorization: Basic {raw}"


def resolve_credentials(environ: Mapping[str, str] | None = None) -> Credentials | None:
    """GITOPS_TOKEN, else GITOPS_PASSWORD (the seed's name), else CI_JOB_TOKEN as gitlab-ci-token."""
    env = os.environ if environ is None else environ
    username = env.get("GITOPS_USERNAME") or DEFAULT_USERNAME
    for variable in ("GITOPS_TOKEN", "GITOPS_PASSWORD"):
        if env.get(variable):
            return _registered(Credentials(username, env[variable], variable))
    if env.get("CI_JOB_TOKEN"):
        return _registered(Credentials(JOB_TOKEN_USERNAME, env["CI_JOB_TOKEN"], "CI_JOB_TOKEN"))
    return None


def _registered(credentials: Credentials) -> Credentials:
    logs.register_secret(credentials.token)
    check_secret(credentials.token, credentials.variable)
    if credentials.variable != "GITOPS_PASSWORD":  # a password may have a space around it; a token never
        check_token(credentials.token, credentials.variable)
    logs.register_secret(credentials.basic_header().split(" ", 2)[2])
    return credentials


def server_prefix(url: str) -> str:
    """`https://host:port/` — the scope for http.<url>.* settings."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/"


def git_config(settings: Mapping[str, str], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`settings` as GIT_CONFIG_KEY_n/VALUE_n entries appended to those in `base`: git reads them from its
    environment, so nothing lands in an argument list or in .git/config."""
    count = int((base or {}).get("GIT_CONFIG_COUNT", "0") or "0")
    env: dict[str, str] = {}
    for offset, (name, value) in enumerate(settings.items()):
        env[f"GIT_CONFIG_KEY_{count + offset}"] = name
        env[f"GIT_CONFIG_VALUE_{count + offset}"] = value
    env["GIT_CONFIG_COUNT"] = str(count + len(settings))
    return env


def check_repo_url(url: str) -> str:
    """An https (or http, or local) URL without credentials in it, that git cannot read as an option or as
    a remote helper (`ext::`, `fd::`)."""
    if url.startswith("-") or "::" in url or any(c.isspace() or ord(c) < 32 for c in url):
        raise ConfigurationError(
            f"--repo-url {url[:80]!r} is not a plain URL; use https://gitlab.example.com/group/repo.git"
        )
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http", "file", ""):
        raise ConfigurationError(
            f"--repo-url uses {parts.scheme[:20]}://; gitops-ci reaches GitLab over HTTPS: use "
            "https://gitlab.example.com/group/repo.git"
        )
    if parts.username or parts.password:
        raise ConfigurationError(
            "--repo-url contains credentials; remove them and set GITOPS_USERNAME and GITOPS_TOKEN"
        )
    if parts.scheme in ("https", "http"):
        if not parts.hostname:
            raise ConfigurationError(
                f"--repo-url {url!r} has no host; use https://gitlab.example.com/group/repo.git"
            )
        return url
    if parts.scheme == "file" and not parts.netloc and parts.path.startswith("/"):
        return url
    if not parts.scheme and url.startswith(("/", "./", "../")):
        return url
    raise ConfigurationError(
        f"--repo-url {url[:80]!r} is not an https URL; use https://gitlab.example.com/group/repo.git"
    )


def git_environment(
    url: str,
    credentials: Credentials | None,
    ca_file: str | None,
    base: Mapping[str, str] | None = None,
    stall_seconds: float = 30.0,
) -> dict[str, str]:
    """Environment for every git child: credentials and CA scoped to the server, no prompts, no helpers, no
    redirects, no transport but http(s) and local files, a stall timeout, and messages in English."""
    env = dict(os.environ if base is None else base)
    settings: list[tuple[str, str]] = [
        ("credential.helper", ""),
        ("core.askPass", ""),
        ("http.followRedirects", "false"),  # git's default follows the first redirect to any host
        ("http.lowSpeedLimit", "1024"),
        ("http.lowSpeedTime", str(max(1, round(stall_seconds)))),
        ("protocol.allow", "never"),
        ("protocol.https.allow", "always"),
        ("protocol.http.allow", "always"),
        ("protocol.file.allow", "always"),
    ]
    prefix = server_prefix(url)
    if credentials is not None and prefix.startswith("http"):
        settings.append((f"http.{prefix}.extraHeader", credentials.basic_header()))
    env.update(git_config(dict(settings), env))
    if ca_file:  # the environment variable, not http.sslCAInfo: an inherited GIT_SSL_CAINFO would win
        env["GIT_SSL_CAINFO"] = ca_file
        # The bundle is the whole trust: without this, curl also loads the system CA directory on every
        # connection (50-210 ms per git process).
        env["GIT_SSL_CAPATH"] = ""
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["GIT_ASKPASS"] = "true"
    env["LC_ALL"] = "C"  # errors are classified by git's English messages
    env.pop("LANGUAGE", None)
    env.pop("SSH_ASKPASS", None)
    return env
