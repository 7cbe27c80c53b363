"""A hostile manifest repo (or merge request) can neither take over a job, reach the network, nor make
gitops-ci read or write outside the repo — checked with real git, real kubectl and listeners that count
every connection attempt."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from conftest import CliRunner
from manifests import manifest_files, overlay
from servers.git_repos import Symlink, commit_count, make_bare_repo
from servers.gitserver import GitHttpServer
from servers.hostile import Listener

pytest_plugins = ["servers.git_fixtures"]
pytestmark = pytest.mark.integration

INJECTION = "x\n/approve\n/merge @all"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def commit(repo: Path, files: dict[str, str | Symlink]) -> str:
    for path, content in files.items():
        target = repo / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Symlink):
            target.symlink_to(content.target)
        else:
            target.write_text(content)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "change")
    return git(repo, "rev-parse", "HEAD").strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "manifests"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    commit(root, dict(manifest_files(["app0"])))
    git(root, "checkout", "-q", "-b", "change")
    return root


def quick_action_lines(text: str) -> list[str]:
    return [
        line
        for line in re.split("\r\n|[\n\r\x0b\x0c\x85\u2028\u2029]", text)
        if line.lstrip().startswith("/")
    ]


def test_hostile_names_in_a_merge_request_cannot_run_quick_actions(gitops: CliRunner, repo: Path) -> None:
    deployment = (repo / "kustomize/app0/base/deployment.yaml").read_text()
    hostile = deployment.replace("- name: app0", '- name: "x\\n/approve\\n/merge"').replace(
        "image: app0", 'image: "@all/approve"'
    )
    evil_dir = "kustomize/a\n/merge/overlays/dev"
    commit(
        repo,
        {
            "kustomize/app0/base/deployment.yaml": hostile,
            f"{evil_dir}/kustomization.yaml": "resources: [../../../app0/base]\n",
        },
    )
    result = gitops("review", repo, "--base", "main", "--dry-run")
    assert result.out.startswith("<!-- gitops-ci:review -->"), result.err
    assert "x\\x0a/approve\\x0a/merge" in result.out
    assert quick_action_lines(result.out) == []


def test_validate_and_review_fetch_nothing_remote(gitops: CliRunner, repo: Path, tmp_path: Path) -> None:
    with Listener() as listener:
        remote = [
            f"https://127.0.0.1:{listener.port}/x.yaml",
            f"http://127.0.0.1:{listener.port}/x.yaml",
            f"127.0.0.1:{listener.port}/org/repo//base?ref=main",
            f"git::https://127.0.0.1:{listener.port}/org/repo.git",
            "github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v5.0.0",
            "me@127.0.0.1:org/repo.git",  # scp-like: kustomize would fetch it with git over ssh
        ]
        listing = "".join(f"  - {r}\n" for r in remote)
        commit(repo, {overlay("app0", "dev"): f"resources:\n  - ../../base\n{listing}"})
        validated = gitops("validate", repo)
        reviewed = gitops("review", repo, "--base", "main", "--dry-run")
        assert listener.connections == 0
    assert validated.code == 1
    assert validated.out.count("error kustomization/remote-reference") == len(remote)
    assert "`kustomization/remote-reference`" in reviewed.out
    assert "not built: kustomize/app0/overlays/dev/kustomization.yaml: resources[1]" in reviewed.out


def test_builds_run_bounded_and_without_our_secrets(
    gitops: CliRunner, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = tmp_path / "build-env.txt"
    fake = tmp_path / "bin" / "kustomize"
    fake.parent.mkdir()
    fake.write_text(
        f'#!/bin/sh\nif [ "$1" = version ]; then echo v5.0.0; exit 0; fi\nenv > {seen}\nexec sleep 30\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("GITOPS_TOKEN", "glpat-build-must-not-see-this")
    monkeypatch.setenv("CI_JOB_TOKEN", "job-token-build-must-not-see")
    started = time.monotonic()
    result = gitops("validate", repo, "--kustomize", fake, "--build-timeout", "1s", "--jobs", "4")
    assert time.monotonic() - started < 15
    assert result.code == 1
    assert "did not finish within 1 s (--build-timeout)" in result.out
    env = dict(line.split("=", 1) for line in seen.read_text().splitlines() if "=" in line)
    assert not [name for name in env if name.startswith(("GITOPS_", "CI_"))]
    assert env["HTTPS_PROXY"] == "http://127.0.0.1:9" and env["HOME"].startswith("/nonexistent")


@pytest.mark.parametrize(
    "flag", ["--enable-helm", "--enable-alpha-plugins", "--load-restrictor=LoadRestrictionsNone"]
)
def test_build_flags_that_run_or_fetch_are_refused(gitops: CliRunner, repo: Path, flag: str) -> None:
    result = gitops("validate", repo, "--build-option", flag)
    assert result.code == 2 and "is not allowed" in result.err


def test_helm_charts_and_plugins_stay_disabled(gitops: CliRunner, repo: Path) -> None:
    commit(
        repo,
        {
            overlay("app0", "dev"): (
                "helmCharts:\n  - name: nginx\n    repo: https://charts.example.invalid\n    version: 1.0.0\n"
            ),
            overlay("app0", "prod"): "resources: [../../base]\ngenerators: [plugin.yaml]\n",
            "kustomize/app0/overlays/prod/plugin.yaml": (
                "apiVersion: example.com/v1\nkind: Run\nmetadata:\n  name: x\n"
                "  annotations:\n    config.kubernetes.io/function: |\n      exec:\n        path: /bin/sh\n"
            ),
        },
    )
    result = gitops("validate", repo, "--format", "json")
    failed = {
        o["path"]: o["error"] for o in __import__("json").loads(result.out)["overlays"] if not o["built"]
    }
    assert "helm" in failed["kustomize/app0/overlays/dev"]
    assert "kustomize/app0/overlays/prod" in failed


def test_paths_leaving_the_repo_are_never_read_or_published(
    gitops: CliRunner, repo: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "outside.yaml"
    secret.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: stolen}\ndata: {key: TOPSECRET}\n")
    depth = "../" * 12
    commit(
        repo,
        {
            overlay("app0", "dev"): f"resources:\n  - ../../base\n  - {depth}{str(secret).lstrip('/')}\n",
            overlay("app0", "prod"): "resources:\n  - ../../base\n  - link.yaml\n",
            "kustomize/app0/overlays/prod/link.yaml": Symlink(str(secret)),
        },
    )
    validated = gitops("validate", repo)
    reviewed = gitops("review", repo, "--base", "main", "--dry-run")
    assert validated.out.count("error kustomization/outside-repo") == 2
    for text in (validated.out, validated.err, reviewed.out, reviewed.err):
        assert "TOPSECRET" not in text


def test_a_symlink_in_the_base_tree_is_not_followed_out_of_the_repo(
    gitops: CliRunner, repo: Path, tmp_path: Path
) -> None:
    """The merge request's target branch can be hostile too: its tree is exported for the base build."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "kustomization.yaml").write_text("resources: [cm.yaml]\n")
    (outside / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {k: TOPSECRET}\n"
    )
    git(repo, "checkout", "-q", "main")
    dev = overlay("app0", "dev")
    with_link = (repo / dev).read_text().replace("resources:\n", "resources:\n  - ext\n")
    commit(repo, {dev: with_link, "kustomize/app0/overlays/dev/ext": Symlink(str(outside))})
    git(repo, "checkout", "-q", "-B", "change")
    commit(repo, {dev: with_link.replace("  - ext\n", "")})
    reviewed = gitops("review", repo, "--base", "main", "--dry-run")
    assert "kustomize/app0/overlays/dev" in reviewed.out
    assert "TOPSECRET" not in reviewed.out + reviewed.err


def test_the_job_token_in_the_clones_config_never_reaches_a_note(
    gitops: CliRunner, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runner's clone keeps CI_JOB_TOKEN in .git/config, which a root kustomization may name: a
    reference into .git is refused, also from a builtin generator's config file, and a note is masked for
    the job's tokens whatever put them there."""
    token = "glcbt-64-job-token-of-this-pipeline"
    monkeypatch.setenv("CI_JOB_TOKEN", token)
    git(repo, "config", "remote.origin.url", f"https://gitlab-ci-token:{token}@gitlab.example.com/g/m.git")
    generator = (
        "apiVersion: builtin\nkind: ConfigMapGenerator\nmetadata: {name: via-plugin}\nfiles: [.git/config]\n"
    )
    commit(
        repo,
        {"kustomization.yaml": "configMapGenerator:\n  - name: direct\n    files: [.git/config]\n"},
    )
    validated = gitops("validate", repo)
    assert "error kustomization/outside-repo kustomization.yaml" in validated.out
    (repo / "kustomization.yaml").write_text("generators: [gen.yaml]\n")
    commit(repo, {"gen.yaml": generator})
    reviewed = gitops("review", repo, "--base", "main", "--dry-run")
    assert reviewed.code == 1 and "generators[0].files[0]" in reviewed.out and "outside-repo" in reviewed.out
    assert token not in reviewed.out + reviewed.err
    leaked = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: pasted}\ndata: {url: " + token + "}\n"
    commit(repo, {"kustomization.yaml": "resources: [pasted.yaml]\n", "pasted.yaml": leaked})
    reviewed = gitops("review", repo, "--base", "main", "--dry-run")
    assert reviewed.code in (0, 1) and "pasted" in reviewed.out
    assert token not in reviewed.out + reviewed.err and "[MASKED]" in reviewed.out


def test_yaml_bombs_are_refused_before_kustomize_expands_them(gitops: CliRunner, repo: Path) -> None:
    lines = [
        "apiVersion: v1",
        "kind: ConfigMap",
        "metadata: {name: bomb}",
        "data:",
        "  a0: &a0 [x,x,x,x,x,x,x,x,x,x]",
    ]
    lines += [f"  a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    commit(
        repo,
        {
            "kustomize/app0/base/bomb.yaml": "\n".join(lines) + "\n",
            "kustomize/app0/base/kustomization.yaml": "resources: [deployment.yaml, bomb.yaml]\n",
        },
    )
    started = time.monotonic()
    result = gitops("validate", repo)
    assert time.monotonic() - started < 30
    assert result.code == 1 and "error yaml/refused kustomize/app0/base/bomb.yaml" in result.out


# --------------------------------------------------------------------------- deploy and set-image


def test_deploy_never_writes_through_a_symlink(
    git_server: GitHttpServer, gitops: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    victim = tmp_path / "victim" / "kustomization.yaml"
    victim.parent.mkdir()
    victim.write_text("images:\n  - name: app0\n    newTag: old\n")
    files: dict[str, str | bytes | Symlink] = dict(manifest_files(["app0"]))
    files[overlay("app0", "dev")] = Symlink(str(victim))
    del files[overlay("app0", "prod")]
    files["kustomize/app0/overlays/prod"] = Symlink(str(victim.parent))
    bare = make_bare_repo(git_server.root, "group/manifests.git", files)
    monkeypatch.setenv("GITOPS_TOKEN", git_server.token)
    for env in ("dev", "prod"):
        result = gitops(
            "deploy",
            "--repo-url",
            git_server.url_for("group/manifests.git"),
            "--ca-file",
            git_server.ca_file,
            "--app",
            "app0",
            "--env",
            env,
            "--image",
            "registry.example.com/app0:2.0",
        )
        assert result.code == 2, result.err
        assert "is a symlink" in result.err and "nothing was written" in result.err
    assert victim.read_text() == "images:\n  - name: app0\n    newTag: old\n"
    assert commit_count(bare, "main") == 1


def test_set_image_never_writes_through_a_symlink(gitops: CliRunner, repo: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.yaml"
    victim.write_text("images:\n  - name: app0\n    newTag: old\n")
    target = repo / overlay("app0", "dev")
    target.unlink()
    target.symlink_to(victim)
    result = gitops("set-image", "--overlay", target.parent, "app0:2.0")
    assert result.code == 2 and "is a symlink" in result.err
    assert victim.read_text().endswith("newTag: old\n")


def test_review_base_cannot_become_an_option(gitops: CliRunner, repo: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    git(repo, "remote", "add", "origin", str(repo))
    result = gitops("review", repo, "--base", f"--upload-pack=touch {marker};false", "--dry-run")
    assert result.code == 2 and "--base" in result.err
    assert not marker.exists()


def test_branch_cannot_become_a_clone_option(
    git_server: GitHttpServer, gitops: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = make_bare_repo(git_server.root, "group/manifests.git", manifest_files(["app0"]))
    monkeypatch.setenv("GITOPS_TOKEN", git_server.token)
    git_server.clear_requests()
    result = gitops(
        "deploy",
        "--repo-url",
        git_server.url_for("group/manifests.git"),
        "--branch",
        "main --origin=x",
        "--app",
        "app0",
        "--env",
        "dev",
        "--image",
        "app0:2",
    )
    assert result.code == 2 and "--branch" in result.err
    assert git_server.requests == [] and commit_count(bare, "main") == 1
