"""Without --ca-file the API transport reads the system's hashed CA directory lazily, and falls back to
every default CA when the issuer is not there (a CA appended to the bundle by hand)."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import CliRunner
from gitops_ci.errors import OperationalError
from gitops_ci.manifest_repo.gitlab_connection import GitLabConnection
from gitops_ci.manifest_repo.gitlab_rest import GitLabRest
from gitops_ci.manifest_repo.tls_trust import Trust
from manifests import manifest_files, overlay
from servers.git_repos import make_bare_repo, read_blob
from servers.gitlab_api import GitLabContractServer
from servers.tls import TlsMaterial, make_ca, make_unrelated_ca

pytest_plugins = ["servers.git_fixtures", "servers.gitlab_fixtures"]
TOKEN = "glpat-tls-trust"
BRANCH = ("/repository/branches/main", None, "reading branch main")


def hashed_directory(directory: Path, *certificates: Path) -> Path:
    """A CA directory as update-ca-certificates keeps it: each certificate under `<subject hash>.0`."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    directory.mkdir(parents=True)
    for certificate in certificates:
        digest = subprocess.run(
            [openssl, "x509", "-hash", "-noout", "-in", str(certificate)],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        shutil.copy(certificate, directory / f"{digest}.0")
    return directory


@pytest.fixture
def tls(tmp_path: Path) -> TlsMaterial:
    return make_ca(tmp_path / "tls")


@pytest.fixture
def server(tls: TlsMaterial, git_identity_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for variable in ("SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(variable, raising=False)
    with GitLabContractServer(tls=tls) as gitlab:
        gitlab.add_user("ci-bot")
        gitlab.add_token(TOKEN, username="ci-bot", scopes=("api",))
        yield gitlab.url


def rest(url: str, trust: Trust) -> GitLabRest:
    return GitLabRest(GitLabConnection(url, "group/manifests", TOKEN, "GITOPS_TOKEN", timeout=10), trust)


def test_the_issuer_is_found_in_the_system_directory_alone(
    server: str, tls: TlsMaterial, tmp_path: Path
) -> None:
    trust = Trust(None, str(hashed_directory(tmp_path / "certs", Path(tls.ca_file))))
    assert rest(server, trust).get(*BRANCH[:2], what=BRANCH[2]).status == 404  # no such project: TLS held
    assert trust.lazy  # never widened: the directory verified it (the system's bundle has no test CA)


@pytest.mark.parametrize("together", [False, True])
def test_an_issuer_missing_from_the_directory_is_found_among_every_default_ca(
    server: str, tls: TlsMaterial, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, together: bool
) -> None:
    system = hashed_directory(tmp_path / "certs", make_unrelated_ca(tmp_path / "unrelated"))
    monkeypatch.setenv("SSL_CERT_DIR", str(hashed_directory(tmp_path / "defaults", Path(tls.ca_file))))
    trust = Trust(None, str(system))
    client = rest(server, trust)
    if together:
        first, ahead = client.get_together(BRANCH, [BRANCH])
        assert first.status == 404 and len(ahead) == 1
    else:
        assert client.get(*BRANCH[:2], what=BRANCH[2]).status == 404
    assert not trust.lazy


def test_a_server_no_ca_vouches_for_is_refused_after_one_more_try(server: str, tmp_path: Path) -> None:
    system = hashed_directory(tmp_path / "certs", make_unrelated_ca(tmp_path / "unrelated"))
    trust = Trust(None, str(system))
    with pytest.raises(OperationalError, match=r"TLS verification of .* failed"):
        rest(server, trust).get(*BRANCH[:2], what=BRANCH[2])
    assert not trust.lazy


def test_a_bundle_of_its_own_in_ssl_cert_file_is_loaded_and_an_unhashed_directory_is_not_read_lazily(
    tmp_path: Path, tls: TlsMaterial, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashed = hashed_directory(tmp_path / "certs", Path(tls.ca_file))
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    trust = Trust(None, str(hashed))
    trust.context()
    assert trust.lazy
    plain = tmp_path / "plain"
    plain.mkdir()
    shutil.copy(tls.ca_file, plain / "ca.pem")
    unhashed = Trust(None, str(plain))
    unhashed.context()
    assert not unhashed.lazy
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.ca_file))  # a bundle of its own: loaded as a whole
    bundle = Trust(None, str(hashed))
    bundle.context()
    assert not bundle.lazy
    monkeypatch.setenv("SSL_CERT_FILE", ssl.get_default_verify_paths().openssl_cafile)  # the system's
    system = Trust(None, str(hashed))
    system.context()
    assert system.lazy


def test_a_bundle_changed_after_the_directory_is_loaded_as_a_whole(
    tmp_path: Path, tls: TlsMaterial, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CA appended to the bundle by hand leaves the hashed directory as it was."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    hashed = hashed_directory(tmp_path / "certs", Path(tls.ca_file))
    bundle = tmp_path / "ca-certificates.crt"
    bundle.write_text(Path(tls.ca_file).read_text())
    now = hashed.stat().st_mtime
    os.utime(bundle, (now - 60, now - 60))
    rebuilt = Trust(None, str(hashed), str(bundle))
    rebuilt.context()
    os.utime(bundle, (now + 60, now + 60))
    appended = Trust(None, str(hashed), str(bundle))
    appended.context()
    assert rebuilt.lazy and not appended.lazy


def test_a_deploy_without_a_ca_file_trusts_the_system_directory(
    tls: TlsMaterial,
    tmp_path: Path,
    gitops: CliRunner,
    git_identity_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The whole path: no --ca-file, the system's CAs (here SSL_CERT_DIR, the test CA hashed into it)."""
    for variable in ("SSL_CERT_FILE", "GITOPS_CA_FILE", "CI_SERVER_TLS_CA_FILE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("SSL_CERT_DIR", str(hashed_directory(tmp_path / "certs", Path(tls.ca_file))))
    monkeypatch.setenv("GITOPS_TOKEN", TOKEN)
    bare = make_bare_repo(tmp_path / "srv", "group/manifests.git", manifest_files(["app0"]))
    with GitLabContractServer(tls=tls) as gitlab:
        gitlab.add_user("ci-bot")
        gitlab.add_token(TOKEN, username="ci-bot", scopes=("api",))
        gitlab.add_project("group/manifests", bare)
        url = f"{gitlab.url}/group/manifests.git"
        result = gitops(
            "deploy", "--transport", "api", "--repo-url", url, "--branch", "main",
            "--app", "app0", "--env", "dev", "--image", "registry.example.com/shop/app0:2.0.0",
        )  # fmt: skip
    assert result.code == 0, result.err
    assert 'newTag: "2.0.0"' in read_blob(bare, "main", overlay("app0", "dev"))
