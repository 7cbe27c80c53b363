"""Signed commits: `--signing-key` with an SSH or an OpenPGP key, verified by `git verify-commit` on the
server's bare repo (an allowed-signers file, a keyring holding only the public key)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from conftest import CliRunner
from manifests import manifest_files, overlay
from servers.git_repos import make_bare_repo, read_blob, rev_parse
from servers.gitserver import GitHttpServer

if TYPE_CHECKING:
    from servers.git_fixtures import GitArgvRecorder

pytest_plugins = ["servers.git_fixtures"]
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not (shutil.which("gpg") and shutil.which("ssh-keygen")), reason="needs gpg, ssh-keygen"
    ),
]

REPO = "group/manifests.git"
PASSPHRASE = "correct horse battery staple"
IMAGE = "registry.example.com/shop/app0:2.0.0"


@pytest.fixture
def repo(git_server: GitHttpServer) -> Path:
    return make_bare_repo(git_server.root, REPO, manifest_files(["app0", "app1"]))


@pytest.fixture
def deploy(
    git_server: GitHttpServer, repo: Path, gitops: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> CliRunner:
    monkeypatch.setenv("GITOPS_TOKEN", git_server.token)

    def invoke(*args: str | Path) -> object:
        return gitops(
            "deploy", "--repo-url", git_server.url_for(REPO), "--ca-file", git_server.ca_file,
            "--app", "app0", "--env", "dev", "--image", IMAGE, *args,
        )  # fmt: skip

    return invoke  # type: ignore[return-value]


def ssh_key(directory: Path, passphrase: str) -> tuple[Path, Path]:
    """A new ed25519 key (readable by others, as a file variable may be) and an allowed-signers file."""
    key = directory / "signing_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", "bot", "-f", str(key)], check=True
    )
    key.chmod(0o644)
    allowed = directory / "allowed_signers"
    allowed.write_text(f"gitops-ci@example.invalid {key.with_suffix('.pub').read_text()}")
    return key, allowed


def openpgp_key(directory: Path, passphrase: str) -> tuple[Path, Path]:
    """An armored secret key file, and a keyring (GNUPGHOME) that holds only its public key."""
    maker, verifier = directory / "maker", directory / "verifier"
    for home in (maker, verifier):
        home.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(maker)}
    gpg = ["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", passphrase]
    subprocess.run([*gpg, "--quick-gen-key", "Bot <gitops-ci@example.invalid>", "ed25519", "sign", "never"],
                   env=env, check=True, capture_output=True)  # fmt: skip
    secret = directory / "secret.asc"
    secret.write_bytes(subprocess.run([*gpg, "--armor", "--export-secret-keys"], env=env, check=True,
                                      capture_output=True).stdout)  # fmt: skip
    public = subprocess.run(["gpg", "--armor", "--export"], env=env, check=True, capture_output=True).stdout
    verifier_env = {**os.environ, "GNUPGHOME": str(verifier)}
    subprocess.run(
        ["gpg", "--batch", "--import"], input=public, env=verifier_env, check=True, capture_output=True
    )
    subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, check=False)
    return secret, verifier


def verify(
    repo: Path, *, allowed: Path | None = None, keyring: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GNUPGHOME": str(keyring)} if keyring else dict(os.environ)
    config = ["-c", f"gpg.ssh.allowedSignersFile={allowed}"] if allowed else []
    return subprocess.run(["git", "--git-dir", str(repo), *config, "verify-commit", "main"], env=env,
                          capture_output=True, text=True)  # fmt: skip


@pytest.mark.parametrize("passphrase", ["", PASSPHRASE])
def test_an_ssh_signed_deploy_verifies_on_the_server(
    deploy: CliRunner, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    git_argv_recorder: GitArgvRecorder, passphrase: str,
) -> None:  # fmt: skip
    key, allowed = ssh_key(tmp_path, passphrase)
    monkeypatch.setenv("GITOPS_SIGNING_KEY", str(key))
    if passphrase:
        monkeypatch.setenv("GITOPS_SIGNING_KEY_PASSPHRASE", passphrase)
    workdir = tmp_path / "clone"
    assert verify(repo, allowed=allowed).returncode != 0  # the check catches an unsigned commit

    result = deploy("--workdir", workdir, "--debug")

    assert result.code == 0, result.err
    assert 'newTag: "2.0.0"' in read_blob(repo, "main", overlay("app0", "dev"))
    verified = verify(repo, allowed=allowed)
    assert verified.returncode == 0 and 'Good "git" signature' in verified.stderr, verified.stderr
    _assert_key_never_exposed(key, passphrase, result.out + result.err, workdir, git_argv_recorder)


@pytest.mark.parametrize("long_tmpdir", [False, True])
def test_an_openpgp_signed_deploy_verifies_on_the_server(
    deploy: CliRunner, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    git_argv_recorder: GitArgvRecorder, long_tmpdir: bool,
) -> None:  # fmt: skip
    """A TMPDIR too long for gpg-agent's socket (a runner's build directory) still signs."""
    secret, keyring = openpgp_key(tmp_path, PASSPHRASE)
    monkeypatch.setenv("GITOPS_SIGNING_KEY", str(secret))
    monkeypatch.setenv("GITOPS_SIGNING_KEY_PASSPHRASE", PASSPHRASE)
    # a TMPDIR of its own, where other workers' signing tests do not leave their directories
    private_tmp = tmp_path / ("t" * 80) if long_tmpdir else Path(tempfile.mkdtemp(prefix="gs-", dir="/tmp"))
    private_tmp.mkdir(exist_ok=True)
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
    workdir = tmp_path / "clone"

    result = deploy("--workdir", workdir, "--debug")

    assert result.code == 0, result.err
    verified = verify(repo, keyring=keyring)
    assert verified.returncode == 0 and "Good signature" in verified.stderr, verified.stderr
    _assert_key_never_exposed(secret, PASSPHRASE, result.out + result.err, workdir, git_argv_recorder)
    assert not list(private_tmp.glob("gitops-ci-signing-*"))
    private_tmp.rmdir()  # empty: nothing of the key stayed behind


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("not a key\n", "neither an OpenSSH private key nor an armored OpenPGP secret key"),
        ("ssh-ed25519 AAAAC3Nza bot\n", "is a public key"),
    ],
)
def test_a_file_that_is_not_a_private_key_is_bad_input(
    deploy: CliRunner, repo: Path, tmp_path: Path, content: str, fragment: str
) -> None:
    key = tmp_path / "key"
    key.write_text(content)
    before = rev_parse(repo, "main")
    result = deploy("--signing-key", key)
    assert result.code == 2 and fragment in result.err, result.err
    assert rev_parse(repo, "main") == before


def test_a_wrong_passphrase_is_bad_input_and_never_shown(
    deploy: CliRunner, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, _ = ssh_key(tmp_path, PASSPHRASE)
    monkeypatch.setenv("GITOPS_SIGNING_KEY_PASSPHRASE", "wrong passphrase")
    before = rev_parse(repo, "main")
    result = deploy("--signing-key", key)
    assert result.code == 2, result.err
    assert "GITOPS_SIGNING_KEY_PASSPHRASE" in result.err and "wrong passphrase" not in result.err
    assert rev_parse(repo, "main") == before


def _assert_key_never_exposed(
    key: Path, passphrase: str, output: str, workdir: Path, recorder: GitArgvRecorder
) -> None:
    body = max(key.read_text().splitlines(), key=len)  # a line of the key material
    config = (workdir / ".git" / "config").read_text()
    arguments = " ".join(" ".join(call) for call in recorder.calls())
    for where, text in (("output", output), (".git/config", config), ("git arguments", arguments)):
        assert body not in text, where
        assert not passphrase or passphrase not in text, where
        assert str(key) not in text, where
