"""Signing the commits gitops-ci makes: an SSH private key (git's `gpg.format=ssh`) or an armored OpenPGP
secret key, detected from the file. The only module that runs `ssh-keygen` or `gpg`.

The key is copied into a private temporary directory (0700; SSH refuses a key other users can read, and a
GitLab file variable may be readable), an OpenPGP key is imported into a keyring of its own there, and git
learns what to use from `GIT_CONFIG_*` variables: nothing reaches an argument list, the clone's
`.git/config` or a log line. A passphrase goes from the environment to `ssh-keygen` (through SSH_ASKPASS) or
`gpg` (on a file descriptor), never through a file or an argument. The directory is removed afterwards and
the keyring's gpg-agent stopped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from gitops_ci.errors import ConfigurationError
from gitops_ci.manifest_repo.credentials import git_config

KeyFormat = Literal["ssh", "openpgp"]
PASSPHRASE_VARIABLE = "GITOPS_SIGNING_KEY_PASSPHRASE"
_CHILD_PASSPHRASE = "GITOPS_CI_SIGNING_PASSPHRASE"  # what our askpass/gpg helpers read
_MAX_KEY_BYTES = 64 * 1024
_TOOL_TIMEOUT = 30.0
_SOCKET_PATH_MAX = 107  # sockaddr_un.sun_path, less its NUL
_SSH_MARKERS = ("-----BEGIN OPENSSH PRIVATE KEY-----", "-----BEGIN RSA PRIVATE KEY-----",
                "-----BEGIN EC PRIVATE KEY-----", "-----BEGIN PRIVATE KEY-----")  # fmt: skip
_OPENPGP_MARKER = "-----BEGIN PGP PRIVATE KEY BLOCK-----"
_ASKPASS = f'#!/bin/sh\nprintf "%s\\n" "${_CHILD_PASSPHRASE}"\n'
# git runs gpg.program with its own arguments and the data on stdin; the passphrase goes on descriptor 3.
_GPG = f"""#!/bin/sh
exec gpg --batch --no-tty --pinentry-mode loopback --passphrase-fd 3 "$@" 3<<END
${_CHILD_PASSPHRASE}
END
"""


@dataclass(frozen=True)
class SigningKey:
    """A key file and its passphrase (never shown: repr hides it)."""

    path: Path
    format: KeyFormat
    passphrase: str = field(default="", repr=False)


def load_signing_key(path: str | Path, passphrase: str | None = None) -> SigningKey:
    """The key at `path`, its format detected from the content; bad input is a ConfigurationError."""
    key = Path(path)
    shown = f"--signing-key {key}"
    try:
        with key.open("rb") as handle:
            head = handle.read(_MAX_KEY_BYTES + 1)
    except OSError as err:
        raise ConfigurationError(f"{shown} cannot be read ({err.strerror}); give the key file") from None
    if len(head) > _MAX_KEY_BYTES:
        raise ConfigurationError(f"{shown} is larger than 64 KiB: not a private key file")
    text = head.decode("ascii", errors="replace").lstrip()
    if text.startswith(_SSH_MARKERS):
        return SigningKey(key, "ssh", passphrase or "")
    if text.startswith(_OPENPGP_MARKER):
        return SigningKey(key, "openpgp", passphrase or "")
    if text.startswith(("ssh-", "ecdsa-", "-----BEGIN PGP PUBLIC KEY BLOCK-----")):
        raise ConfigurationError(
            f"{shown} is a public key; give the private key (the server keeps the public one)"
        )
    raise ConfigurationError(
        f"{shown} is neither an OpenSSH private key nor an armored OpenPGP secret key "
        "(gpg --armor --export-secret-keys)"
    )


@dataclass(frozen=True)
class Signer:
    """What a `git commit` needs to sign: environment entries for the helpers and git settings."""

    env: Mapping[str, str] = field(repr=False)
    settings: Mapping[str, str]

    def commit_env(self, base: Mapping[str, str]) -> dict[str, str]:
        """Entries to add to `base` (a git environment) so that git signs, settings as GIT_CONFIG_*."""
        return {**self.env, **git_config(self.settings, base)}


@contextmanager
def signer_for(key: SigningKey | None) -> Iterator[Signer | None]:
    """A Signer for `key` (None for no key), checked to work before it is handed out: a wrong passphrase
    is bad input, not a commit that fails after the clone."""
    if key is None:
        yield None
        return
    directory = Path(tempfile.mkdtemp(prefix="gitops-ci-signing-", dir=_short_base(key)))
    try:
        yield _ssh(key, directory) if key.format == "ssh" else _openpgp(key, directory)
    finally:
        if key.format == "openpgp":
            _stop_agent(directory / "gnupg")
        shutil.rmtree(directory, ignore_errors=True)


def _short_base(key: SigningKey) -> str | None:
    """gpg-agent's sockets live in GNUPGHOME, and a socket path is at most 107 bytes: under a long TMPDIR
    (a runner's build directory) use /tmp instead. None: the default temporary directory."""
    longest = len(tempfile.gettempdir()) + len("/gitops-ci-signing-12345678/gnupg/S.gpg-agent.browser")
    if key.format != "openpgp" or longest <= _SOCKET_PATH_MAX or not os.access("/tmp", os.W_OK):
        return None
    return "/tmp"


def _ssh(key: SigningKey, directory: Path) -> Signer:
    private = _private_copy(key.path, directory / "key")
    askpass = _script(directory / "askpass", _ASKPASS)
    env = {_CHILD_PASSPHRASE: key.passphrase, "SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force"}
    _run(["ssh-keygen", "-y", "-f", str(private)], env, "ssh-keygen", key)  # loads the key: checks it
    return Signer(env, {"gpg.format": "ssh", "user.signingKey": str(private), "commit.gpgSign": "true"})


def _openpgp(key: SigningKey, directory: Path) -> Signer:
    home = directory / "gnupg"
    home.mkdir(mode=0o700)
    program = _script(directory / "gpg", _GPG)
    env = {_CHILD_PASSPHRASE: key.passphrase, "GNUPGHOME": str(home)}
    _run(["gpg", "--batch", "--no-tty", "--import", str(key.path)], env, "gpg --import", key)
    listing = _run(["gpg", "--batch", "--with-colons", "--list-secret-keys"], env, "gpg", key)
    fingerprints = [line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")]
    if not fingerprints:
        raise ConfigurationError(
            f"--signing-key {key.path} holds no secret key; export it with --export-secret-keys"
        )
    _run([str(program), "--detach-sign", "--local-user", fingerprints[0]], env, "gpg --detach-sign", key)
    settings = {"gpg.format": "openpgp", "gpg.program": str(program), "user.signingKey": fingerprints[0],
                "commit.gpgSign": "true"}  # fmt: skip
    return Signer(env, settings)


def _private_copy(source: Path, target: Path) -> Path:
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(source.read_bytes())
    return target


def _script(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o700)
    return path


def _run(argv: list[str], env: Mapping[str, str], what: str, key: SigningKey) -> str:
    environment = {**os.environ, **env, "LC_ALL": "C"}
    try:
        done = subprocess.run(  # noqa: S603 - argv is ours: the tool, our options, our temporary files
            argv, env=environment, input=b"", capture_output=True, timeout=_TOOL_TIMEOUT, check=False
        )
    except FileNotFoundError:
        tool = "openssh-client (ssh-keygen)" if key.format == "ssh" else "gnupg (gpg)"
        raise ConfigurationError(f"signing with {key.path} needs {tool} on the runner; install it") from None
    except subprocess.TimeoutExpired:
        raise ConfigurationError(
            f"{what} did not finish in {_TOOL_TIMEOUT:g}s with --signing-key {key.path}"
        ) from None
    if done.returncode != 0:
        hint = (
            f"is {PASSPHRASE_VARIABLE} right?"
            if key.passphrase
            else f"if it has a passphrase, set {PASSPHRASE_VARIABLE}"
        )
        said = done.stderr.decode("utf-8", errors="replace").strip().splitlines()
        detail = f" ({said[-1][:200]})" if said else ""
        raise ConfigurationError(f"--signing-key {key.path} cannot sign ({what} failed{detail}): {hint}")
    return done.stdout.decode("utf-8", errors="replace")


def _stop_agent(home: Path) -> None:
    if home.is_dir():
        env = {**os.environ, "GNUPGHOME": str(home)}
        with suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(
                ["gpgconf", "--kill", "gpg-agent"], env=env, capture_output=True, timeout=10, check=False
            )
