"""`gitops-ci review --dry-run` in real git repos in tmp dirs, rendered with the real kubectl."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from conftest import CliResult, CliRunner
from manifests import DEPLOYMENT, manifest_files, overlay

if TYPE_CHECKING:
    from servers.git_fixtures import GitArgvRecorder

pytest_plugins = ["servers.git_fixtures"]

APPS = ["app0", "app1", "app2"]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def write(repo: Path, files: dict[str, str | None]) -> None:
    for path, text in files.items():
        target = repo / path
        if text is None:
            target.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)


def commit(repo: Path, files: dict[str, str | None], message: str = "change") -> str:
    write(repo, files)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The seed's layout on main, and an MR branch `change` checked out at the same commit."""
    root = tmp_path / "manifests"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    commit(root, dict(manifest_files(APPS)), "initial")
    git(root, "checkout", "-q", "-b", "change")
    return root


def tag(app: str, env: str, new: str) -> dict[str, str | None]:
    return {
        overlay(app, env): manifest_files([app])[overlay(app, env)].replace(
            'newTag: "1.0.0"', f'newTag: "{new}"'
        )
    }


def base_deployment(app: str, **replace: str) -> dict[str, str | None]:
    text = DEPLOYMENT.format(app=app)
    for old, new in replace.items():
        text = text.replace(old, new)
    return {f"kustomize/{app}/base/deployment.yaml": text}


def review(gitops: CliRunner, repo: Path, *args: str) -> CliResult:
    return gitops("review", repo, "--base", "main", "--dry-run", *args)


def as_json(result: CliResult) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(result.out)
    return data


def test_a_tag_change_and_a_base_change(gitops: CliRunner, repo: Path) -> None:
    head = commit(
        repo,
        {
            **tag("app0", "prod", "2.0.0"),
            **base_deployment("app1", **{"spec:\n  selector": "spec:\n  replicas: 2\n  selector"}),
        },
    )
    result = review(gitops, repo)
    assert result.code == 0, result.err
    note = result.out
    assert "This merge request changes **4** overlays (" in note and "2 files changed" in note
    sections = [line for line in note.splitlines() if line.startswith("#### ")]
    expected = [(0, "prod"), (1, "dev"), (1, "prod"), (1, "staging")]
    assert sections == [f"#### `app{a}` / `{e}`" for a, e in expected]
    registry = "registry.example.com/shop"
    assert f"- `Deployment/prod/app0` `app0`: `{registry}/app0:1.0.0` → `{registry}/app0:2.0.0`" in note
    assert note.count("+  replicas: 2\n") == 3
    assert note.count("<details><summary>Rendered diff: 1 object changed (+1 −1)</summary>") == 1
    assert note.count("<details><summary>Rendered diff: 1 object changed (+1 −0)</summary>") == 3
    assert f"at `{head[:8]}`" in note
    # The checkout is untouched: same HEAD, clean tree, no extra worktree.
    assert git(repo, "rev-parse", "HEAD").strip() == head
    assert git(repo, "status", "--porcelain") == ""
    assert len(git(repo, "worktree", "list").splitlines()) == 1


def test_json_output(gitops: CliRunner, repo: Path) -> None:
    commit(repo, tag("app2", "staging", "1.1.0"))
    data = as_json(review(gitops, repo, "--format", "json"))
    assert data["action"] == "printed" and data["changed_files"] == [overlay("app2", "staging")]
    (only,) = data["overlays"]
    assert (only["overlay"], only["app"], only["env"], only["status"]) == (
        "kustomize/app2/overlays/staging",
        "app2",
        "staging",
        "changed",
    )
    assert only["images"] == [
        {
            "workload": "Deployment/staging/app2",
            "container": "app2",
            "before": "registry.example.com/shop/app2:1.0.0",
            "after": "registry.example.com/shop/app2:1.1.0",
        }
    ]
    assert only["diff"]["added"] == only["diff"]["removed"] == 1 and only["errors"] == 0
    assert data["note"].startswith("<!-- gitops-ci:review -->")


def test_a_change_outside_the_overlays(gitops: CliRunner, repo: Path) -> None:
    commit(repo, {"README.md": "# manifests, documented\n"})
    data = as_json(review(gitops, repo, "--format", "json"))
    assert data["overlays"] == [] and data["unchanged_overlays"] == []
    assert "changes no overlay's rendered manifests" in data["note"]


def test_a_change_that_renders_the_same(gitops: CliRunner, repo: Path) -> None:
    text = manifest_files(["app0"])["kustomize/app0/base/kustomization.yaml"]
    commit(repo, {"kustomize/app0/base/kustomization.yaml": "# a comment only\n" + text})
    data = as_json(review(gitops, repo, "--format", "json"))
    assert data["overlays"] == []
    assert data["unchanged_overlays"] == [f"kustomize/app0/overlays/{e}" for e in ("dev", "prod", "staging")]


def test_added_and_removed_overlays(gitops: CliRunner, repo: Path) -> None:
    qa = manifest_files(["app0"])[overlay("app0", "dev")].replace("dev", "qa")
    commit(repo, {overlay("app0", "qa"): qa, overlay("app1", "dev"): None})
    data = as_json(review(gitops, repo, "--format", "json"))
    assert [(o["overlay"], o["status"]) for o in data["overlays"]] == [
        ("kustomize/app0/overlays/qa", "added"),
        ("kustomize/app1/overlays/dev", "removed"),
    ]


def test_the_target_branch_moving_on_does_not_count(gitops: CliRunner, repo: Path) -> None:
    commit(repo, tag("app0", "dev", "1.1.0"))
    git(repo, "checkout", "-q", "main")
    commit(repo, tag("app2", "dev", "9.9.9"), "meanwhile on main")
    git(repo, "checkout", "-q", "change")
    data = as_json(review(gitops, repo, "--format", "json"))
    assert [o["overlay"] for o in data["overlays"]] == ["kustomize/app0/overlays/dev"]
    assert data["base"] == git(repo, "merge-base", "main", "HEAD").strip()


def test_errors_in_the_merge_request_exit_1(gitops: CliRunner, repo: Path) -> None:
    commit(repo, base_deployment("app1", **{"spec:\n  selector": 'spec:\n  replicas: "2"\n  selector'}))
    result = review(gitops, repo)
    assert result.code == 1
    assert "| `app1` | `prod` | — | 1 object changed (+1 −0) | ❌ 1 error |" in result.out
    where = "`kustomize/app1/base/deployment.yaml:6` `Deployment/prod/app1` `spec.replicas`"
    assert f'error `schema/wrong-type` {where}: `expected integer, got string "2"`' in result.out


def test_an_overlay_that_stops_building(gitops: CliRunner, repo: Path) -> None:
    broken = manifest_files(["app2"])[overlay("app2", "prod")].replace("../../base", "../../bsae")
    commit(repo, {overlay("app2", "prod"): broken})
    result = review(gitops, repo)
    assert result.code == 1
    assert "| `app2` | `prod` | — | — | ❌ does not build: " in result.out
    assert (
        "- error `kustomization/missing-reference` `kustomize/app2/overlays/prod/kustomization.yaml:6`"
        in result.out
    )


def test_an_overlay_that_starts_building_again(gitops: CliRunner, repo: Path) -> None:
    fixed = manifest_files(["app2"])[overlay("app2", "prod")]
    git(repo, "checkout", "-q", "main")
    commit(repo, {overlay("app2", "prod"): fixed.replace("../../base", "../../bsae")}, "break it")
    git(repo, "checkout", "-q", "-B", "change")
    commit(repo, {overlay("app2", "prod"): fixed}, "fix it")
    result = review(gitops, repo)
    assert result.code == 0, result.err
    assert (
        "| `app2` | `prod` | — | 1 object added (+17 −0) (the target branch's version does not build) | ✅"
        in result.out
    )
    assert "exporting the whole base tree" in result.err


def test_path_limits_the_review_to_one_directory(gitops: CliRunner, repo: Path) -> None:
    """The manifests under `deploy/` of a repo that holds more (here: a broken overlay under `other/`)."""
    files = {f"deploy/{path}": text for path, text in manifest_files(["app0"]).items()}
    broken = {"other/kustomization.yaml": "resources:\n  - missing.yaml\n"}
    git(repo, "checkout", "-q", "main")
    commit(repo, {**files, **broken}, "more trees")
    git(repo, "checkout", "-q", "-B", "change")
    bumped = files[f"deploy/{overlay('app0', 'dev')}"].replace('newTag: "1.0.0"', 'newTag: "1.1.0"')
    commit(repo, {f"deploy/{overlay('app0', 'dev')}": bumped, "other/kustomization.yaml": "resources: []\n"})
    data = as_json(gitops("review", repo / "deploy", "--base", "main", "--dry-run", "--format", "json"))
    assert data["changed_files"] == [overlay("app0", "dev")]
    assert [(o["overlay"], o["status"]) for o in data["overlays"]] == [
        ("kustomize/app0/overlays/dev", "changed")
    ]


def test_secret_values_stay_out_of_the_note(
    gitops: CliRunner, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generator = "secretGenerator:\n  - name: token\n    literals:\n      - token={value}\n"
    dev = manifest_files(["app0"])[overlay("app0", "dev")]
    git(repo, "checkout", "-q", "main")
    commit(repo, {overlay("app0", "dev"): dev + generator.format(value="hunter2")})
    git(repo, "checkout", "-q", "-B", "change")
    commit(repo, {overlay("app0", "dev"): dev + generator.format(value="swordfish")})
    monkeypatch.delenv("GITOPS_TOKEN", raising=False)
    result, again = review(gitops, repo), review(gitops, repo)
    assert "hunter2" not in result.out and "swordfish" not in result.out
    assert "<redacted hmac:" in result.out and result.out != again.out  # no token: a key of its own each run
    monkeypatch.setenv("GITOPS_TOKEN", "glpat-review")
    keyed, same = review(gitops, repo), review(gitops, repo)
    assert keyed.out == same.out  # keyed from the token: a re-run finds its note up to date
    # base64 of "swordfish" under the plain sha256 the note used to show, which anyone could look up
    assert hashlib.sha256(b"c3dvcmRmaXNo").hexdigest()[:12] not in keyed.out


def test_a_file_the_merge_request_does_not_hold_is_never_read(gitops: CliRunner, repo: Path) -> None:
    """The job's checkout may hold more than the merge request (an earlier job's artifact, a cache): only
    committed files are reference targets, so the render cannot carry an untracked file into the note."""
    dev = overlay("app0", "dev")
    generated = (
        manifest_files(["app0"])[dev] + "configMapGenerator:\n  - name: leak\n    envs: [deploy.env]\n"
    )
    commit(repo, {dev: generated})
    write(repo, {"kustomize/app0/overlays/dev/deploy.env": "DEPLOY_TOKEN=artifact-of-another-job\n"})
    assert "deploy.env" not in git(repo, "ls-files")
    result = review(gitops, repo)
    assert result.code == 1 and "artifact-of-another-job" not in result.out + result.err
    assert "| `app0` | `dev` | — | — | ❌ does not build: " in result.out
    assert f"- error `kustomization/missing-reference` `{dev}:" in result.out


PATCH = "apiVersion: builtin\nkind: PatchTransformer\nmetadata: {name: p}\npath: untracked.yaml\n"
LABEL = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: app0, labels: {leaked: UNTRACKED}}\n"
GENERATOR = "apiVersion: builtin\nkind: ConfigMapGenerator\nmetadata: {name: leak}\nenvs: [untracked.env]\n"


@pytest.mark.parametrize(
    ("field", "committed", "untracked"),
    [
        # a builtin transformer's config names the untracked patch
        ("transformers: [t.yaml]", {"t.yaml": PATCH}, {"untracked.yaml": LABEL}),
        # a plugin directory whose kustomization is untracked
        (
            "transformers: [tdir]",
            {"tdir/t.yaml": PATCH},
            {"tdir/kustomization.yaml": "resources: [t.yaml]\n", "untracked.yaml": LABEL},
        ),
        # a kustomization of generator configs: their files resolve against the overlay
        (
            "generators: [gendir]",
            {"gendir/kustomization.yaml": "resources: [gen.yaml]\n", "gendir/gen.yaml": GENERATOR},
            {"untracked.env": "LEAKED=UNTRACKED\n"},
        ),
    ],
)
def test_no_plugin_config_reads_an_untracked_file(
    gitops: CliRunner, repo: Path, field: str, committed: dict[str, str], untracked: dict[str, str]
) -> None:
    dev = overlay("app0", "dev")
    where = "kustomize/app0/overlays/dev"
    commit(
        repo,
        {
            dev: manifest_files(["app0"])[dev] + field + "\n",
            **{f"{where}/{p}": t for p, t in committed.items()},
        },
    )
    write(repo, {f"{where}/{p}": t for p, t in untracked.items()})
    result = review(gitops, repo)
    assert result.code == 1 and "UNTRACKED" not in result.out + result.err, result.out
    assert "| `app0` | `dev` | — | — | ❌ does not build: " in result.out


@pytest.mark.parametrize("odd", ["\n", "\r", "\udcff"])  # a line break, a CR git strips, not UTF-8
def test_the_base_tree_is_read_through_one_git_process(
    gitops: CliRunner, repo: Path, git_argv_recorder: GitArgvRecorder, odd: str
) -> None:
    """The base side reads every file the merge request changed (thousands, for a change across the repo)
    through one long-lived `git cat-file --batch`. A name with a line break cannot go through its line
    protocol, so that one file is read by a process of its own."""
    files: dict[str, str | None] = {}
    for app in APPS:
        dev = overlay(app, "dev")
        where = dev.rsplit("/", 1)[0]
        files[dev] = manifest_files([app])[dev] + "generators: [gen.yaml]\n"
        files[f"{where}/gen.yaml"] = GENERATOR.replace("leak", "settings").replace("untracked.env", "app.env")
        files[f"{where}/app.env"] = f"APP={app}\n"
    odd_overlay = overlay("app2", "dev").replace("/dev/", f"/odd{odd}name/")
    odd_text = files[odd_overlay] = manifest_files(["app2"])[overlay("app2", "dev")]
    commit(repo, files, "generated config")
    git(repo, "branch", "-f", "main", "HEAD")
    renamed = {p: t.replace("settings", "settings-v2") for p, t in files.items() if t and "settings" in t}
    commit(repo, {**renamed, odd_overlay: odd_text + "commonLabels: {tier: web}\n"})
    git_argv_recorder.clear()
    result = review(gitops, repo, "--format", "json")
    assert result.code == 0, result.out + result.err
    reviewed = sorted((o["app"], o["env"]) for o in as_json(result)["overlays"])
    assert reviewed == [*((app, "dev") for app in APPS), ("app2", f"odd{odd}name")]
    reads = [argv[argv.index("cat-file") :] for argv in git_argv_recorder.calls() if "cat-file" in argv]
    assert [argv[:2] for argv in reads] == [["cat-file", "--batch"], ["cat-file", "blob"]], reads
    assert reads[1][-1].endswith(f"odd{odd}name/kustomization.yaml")


def test_a_change_to_what_the_roots_apply_is_called_out(gitops: CliRunner, repo: Path) -> None:
    """In a repo laid out by init, clusters/ and gitops-ci.yaml decide what each cluster's root applies with
    the engine's rights (and which namespaces environments get): the note says so even when no overlay's
    render changes."""
    commit(
        repo, {"gitops-ci.yaml": "version: 1\n", "clusters/dev/apps/dev-app0.yaml": "kind: Kustomization\n"}
    )
    git(repo, "branch", "-f", "main", "HEAD")
    commit(repo, {"clusters/dev/apps/dev-app0.yaml": "kind: Kustomization\nspec: {}\n"})
    result = review(gitops, repo)
    assert result.code == 0, result.err
    assert (
        "⚠️ **It changes what the clusters' roots apply with the GitOps engine's own rights:** " in result.out
    )
    assert "`clusters/dev/apps/dev-app0.yaml`" in result.out


def test_a_settings_file_the_merge_request_does_not_hold_switches_no_warning_on(
    gitops: CliRunner, repo: Path
) -> None:
    """Laid out by init is what the head commit says: a gitops-ci.yaml left in the job's checkout (an earlier
    job's artifact) is not."""
    git(repo, "branch", "-f", "main", "HEAD")
    commit(repo, {"clusters/dev/apps/notes.txt": "not applied: no init here\n"})
    (repo / "gitops-ci.yaml").write_text("version: 1\n")
    result = review(gitops, repo)
    assert result.code == 0, result.err
    assert "roots apply" not in result.out


def test_the_base_comes_from_gitlabs_variable(
    gitops: CliRunner, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = git(repo, "rev-parse", "main").strip()
    commit(repo, tag("app0", "dev", "1.1.0"))
    monkeypatch.setenv("CI_MERGE_REQUEST_DIFF_BASE_SHA", base)
    data = as_json(gitops("review", repo, "--dry-run", "--format", "json"))
    assert data["base"] == base and [o["overlay"] for o in data["overlays"]] == [
        "kustomize/app0/overlays/dev"
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--dry-run",), "no base to compare with: pass --base"),
        (("--base", "no-such-branch", "--dry-run"), "'no-such-branch' is not a commit in this clone"),
        (
            ("--base", "main"),
            "set --gitlab-url (CI_SERVER_URL), --project (CI_PROJECT_PATH), --mr (CI_MERGE_REQUEST_IID)",
        ),
    ],
)
def test_bad_input_exits_2(gitops: CliRunner, repo: Path, args: tuple[str, ...], message: str) -> None:
    result = gitops("review", repo, *args)
    assert result.code == 2 and message in result.err, result.err


def test_the_job_token_cannot_post_notes(
    gitops: CliRunner, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI_JOB_TOKEN", "job-token-value")
    result = gitops(
        "review",
        repo,
        "--base",
        "main",
        "--gitlab-url",
        "https://gitlab.invalid",
        "--project",
        "g/p",
        "--mr",
        "1",
    )
    assert result.code == 2 and "needs GITOPS_TOKEN" in result.err


def test_outside_a_git_clone(gitops: CliRunner, tmp_path: Path) -> None:
    result = gitops("review", tmp_path, "--base", "main", "--dry-run")
    assert result.code == 2 and "is not inside a git clone" in result.err
