"""`gitops-ci validate` on a real repo in a tmp dir: tests/data/validate/seeded, where each app under
kustomize/ carries one seeded defect (shop carries none), built with the real kubectl."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from conftest import CliRunner
from gitops_ci.cli import run

SEEDED = Path(__file__).parents[1] / "data" / "validate" / "seeded"
pytestmark = pytest.mark.skipif(
    not (
        shutil.which("kubectl")
        or shutil.which("kustomize")
        or (Path(sys.executable).parent / "kubectl").exists()
    ),
    reason="neither kubectl nor kustomize is installed",
)


def make_repo(root: Path) -> Path:
    """The seeded tree as a git repo (validate does not need git; a manifest repo is one)."""
    shutil.copytree(SEEDED, root)
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    subprocess.run(["git", "-C", str(root), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(root), "commit", "-q", "-m", "seeded"], check=True)
    return root


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "manifests")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """One `validate --format json --junit --code-quality` run of the seeded repo, shared by the module."""
    reports = tmp_path_factory.mktemp("reports")
    repo = make_repo(tmp_path_factory.mktemp("seeded") / "manifests")
    out = io.StringIO()
    with redirect_stdout(out), redirect_stderr(io.StringIO()):
        code = run(["validate", str(repo), "--format", "json", "--junit", str(reports / "junit.xml"),
                    "--code-quality", str(reports / "cq.json")])  # fmt: skip
    assert code == 1
    data: dict[str, Any] = json.loads(out.getvalue())
    return data, reports


@pytest.fixture
def report(seeded: tuple[dict[str, Any], Path]) -> dict[str, Any]:
    return seeded[0]


@pytest.fixture
def reports(seeded: tuple[dict[str, Any], Path]) -> Path:
    return seeded[1]


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def findings(report: dict[str, Any], rule: str) -> list[dict[str, Any]]:
    return [f for f in report["findings"] if f["rule"] == rule]


def test_seeded_defects_are_found_at_the_right_path(report: dict[str, Any]) -> None:
    k, c0 = "kustomize", "spec.template.spec.containers[0]"
    token = "Secret/dev/api-token-278k5fk6d2"
    expected = {
        ("secret/plaintext", f"{k}/secrets/base/secret.yaml", "Secret/db-credentials", "stringData"),
        ("secret/plaintext", f"{k}/secrets/overlays/dev/kustomization.yaml", token, "secretGenerator[0]"),
        ("schema/wrong-type", f"{k}/types/base/deployment.yaml", "Deployment/dev/types", "spec.replicas"),
        ("schema/wrong-type", f"{k}/types/base/deployment.yaml", "Deployment/prod/types", "spec.replicas"),
        (
            "schema/unknown-field",
            f"{k}/unknown/base/deployment.yaml",
            "Deployment/dev/unknown",
            f"{c0}.imagePullPolicyy",
        ),
        (
            "schema/unknown-field",
            f"{k}/unknown/base/deployment.yaml",
            "Deployment/prod/unknown",
            f"{c0}.imagePullPolicyy",
        ),
        (
            "schema/missing-field",
            f"{k}/required/base/deployment.yaml",
            "Deployment/dev/required",
            f"{c0}.name",
        ),
        (
            "schema/missing-field",
            f"{k}/required/base/deployment.yaml",
            "Deployment/prod/required",
            f"{c0}.name",
        ),
        (
            "kustomization/missing-reference",
            f"{k}/broken/overlays/prod/kustomization.yaml",
            "",
            "resources[0]",
        ),
        ("image/invalid-reference", f"{k}/images/overlays/prod/kustomization.yaml", "", "images[0].newName"),
    }
    errors = {
        (f["rule"], f["file"], f["object"], f["field"])
        for f in report["findings"]
        if f["severity"] == "error"
    }
    assert errors == expected
    assert report["counts"]["error"] == len(expected) and not report["ok"]


def test_findings_carry_lines_and_overlays(report: dict[str, Any]) -> None:
    (types_dev,) = [f for f in findings(report, "schema/wrong-type") if f["overlay"].endswith("dev")]
    assert types_dev["line"] == line_of(SEEDED / "kustomize/types/base/deployment.yaml", "replicas:")
    assert types_dev["overlay"] == "kustomize/types/overlays/dev"
    assert types_dev["message"] == 'expected integer, got string "3"'
    (unknown,) = [f for f in findings(report, "schema/unknown-field") if f["overlay"].endswith("prod")]
    assert unknown["line"] == line_of(SEEDED / "kustomize/unknown/base/deployment.yaml", "imagePullPolicyy")
    assert '(did you mean "imagePullPolicy"?)' in unknown["message"]
    (broken,) = findings(report, "kustomization/missing-reference")
    assert broken["line"] == 5 and "'../../bsae' does not exist" in broken["message"]
    (image,) = findings(report, "image/invalid-reference")
    assert image["line"] == line_of(SEEDED / "kustomize/images/overlays/prod/kustomization.yaml", "newName:")


def test_layout_rules_are_warnings(report: dict[str, Any]) -> None:
    warnings = {(f["rule"], f["file"], f["field"]) for f in report["findings"] if f["severity"] == "warning"}
    prod, c0 = "kustomize/layout/overlays/prod", "spec.template.spec.containers[0]"
    assert warnings == {
        ("layout/nested-base", "kustomize/layout/base/kustomization.yaml", "resources[1]"),
        ("layout/overlay-duplicates-base", f"{prod}/deployment-patch.yaml", f"{c0}.image"),
        ("argocd/app-name-collision", "kustomize/argocd/overlays/dev/application.yaml", "metadata.name"),
        ("argocd/app-name-collision", "kustomize/argocd/overlays/prod/application.yaml", "metadata.name"),
    }  # fmt: skip
    (patch,) = findings(report, "layout/overlay-duplicates-base")
    assert "repeats 2 value(s)" in patch["message"]


def test_sealed_secrets_are_fine_and_reported_as_not_checked(report: dict[str, Any]) -> None:
    assert not [f for f in findings(report, "secret/plaintext") if "shop" in f["file"]]
    infos = {
        (f["file"], f["message"].split(" not checked")[0]) for f in findings(report, "schema/not-checked")
    }
    assert (
        "kustomize/shop/overlays/prod/kustomization.yaml",
        "1 object(s) of bitnami.com/v1alpha1 SealedSecret",
    ) in infos


def test_every_overlay_is_reported(report: dict[str, Any]) -> None:
    overlays = {o["path"]: o for o in report["overlays"]}
    apps = ("shop", "secrets", "types", "unknown", "required", "broken", "images", "layout", "argocd")
    assert set(overlays) == {f"kustomize/{a}/overlays/{e}" for a in apps for e in ("dev", "prod")}
    assert not overlays["kustomize/broken/overlays/prod"]["built"]
    assert "bsae" in overlays["kustomize/broken/overlays/prod"]["error"]
    assert all(o["built"] for path, o in overlays.items() if path != "kustomize/broken/overlays/prod")
    assert overlays["kustomize/shop/overlays/dev"]["objects"] == 3
    assert overlays["kustomize/shop/overlays/dev"]["includes"] == [
        "kustomize/shop/overlays/dev",
        "kustomize/shop/base",
    ]


def test_junit_has_one_testcase_per_overlay(report: dict[str, Any], reports: Path) -> None:
    suites = ET.parse(reports / "junit.xml").getroot()
    cases = {c.get("name"): c for c in suites.iter("testcase")}
    assert set(cases) == {o["path"] for o in report["overlays"]}
    assert cases["kustomize/shop/overlays/prod"].find("failure") is None
    failure = cases["kustomize/types/overlays/prod"].find("failure")
    assert failure is not None and failure.get("type") == "schema/wrong-type"
    assert "spec.replicas" in (failure.text or "")
    broken = cases["kustomize/broken/overlays/prod"].find("failure")
    assert broken is not None and broken.get("type") == "kustomization/missing-reference"
    assert suites.get("failures") == str(sum(c.find("failure") is not None for c in cases.values())) == "10"


def test_code_quality_report(report: dict[str, Any], reports: Path) -> None:
    issues = json.loads((reports / "cq.json").read_text())
    assert len(issues) == len(report["findings"])
    assert len({i["fingerprint"] for i in issues}) == len(issues)
    secret = next(i for i in issues if i["location"]["path"] == "kustomize/secrets/base/secret.yaml")
    assert secret["severity"] == "critical" and secret["check_name"] == "secret/plaintext"
    assert secret["location"]["lines"]["begin"] == line_of(
        SEEDED / "kustomize/secrets/base/secret.yaml", "stringData"
    )
    types = next(i for i in issues if i["check_name"] == "schema/wrong-type")
    assert types["severity"] == "major"
    assert types["description"].startswith("Deployment/") and "spec.replicas" in types["description"]
    assert {i["severity"] for i in issues} == {"critical", "major", "minor", "info"}


def test_text_output_groups_a_base_defect_across_overlays(gitops: CliRunner, repo: Path) -> None:
    result = gitops("validate", repo)
    assert result.code == 1
    lines = result.out.splitlines()
    replicas = [line for line in lines if "spec.replicas" in line]
    assert replicas == [
        "error schema/wrong-type kustomize/types/base/deployment.yaml:8 (in 2 overlays: "
        "kustomize/types/overlays/dev, kustomize/types/overlays/prod) Deployment/types spec.replicas: "
        'expected integer, got string "3"'
    ]
    assert lines[-2].startswith("18 overlays (17 built; ") and lines[-1] == "invalid: fix the errors above"
    assert "bitnami.com/v1alpha1 SealedSecret" not in result.out  # notes only with --verbose
    assert "bitnami.com/v1alpha1 SealedSecret" in gitops("validate", repo, "--verbose").out


def test_a_name_with_terminal_controls_reaches_the_log_escaped(gitops: CliRunner, tmp_path: Path) -> None:
    """A repo's file names are printed: an escape sequence or carriage return in one could rewrite the job
    log's line ("all good") instead of showing the name."""
    overlay = tmp_path / "repo" / "apps" / "web" / "overlays" / "dev\x1b[2K\rall good"
    overlay.mkdir(parents=True)
    (overlay / "kustomization.yaml").write_text("resources:\n- ../../base\n")
    result = gitops("validate", tmp_path / "repo")
    assert result.code == 1
    assert "apps/web/overlays/dev\\x1b[2K\\x0dall good/kustomization.yaml:2" in result.out, result.out
    assert "\x1b" not in result.out + result.err and "\r" not in result.out + result.err


def test_a_clean_repo_exits_0(gitops: CliRunner, repo: Path) -> None:
    for app in ("secrets", "types", "unknown", "required", "broken", "images", "layout", "argocd"):
        shutil.rmtree(repo / "kustomize" / app)
    result = gitops("validate", repo)
    assert result.code == 0, result.out
    assert result.out.endswith("valid\n") and "0 errors" in result.out


def test_replica_counts_kubernetes_or_kustomize_would_get_wrong_are_errors(
    gitops: CliRunner, repo: Path
) -> None:
    """kustomize passes any int64 on (Kubernetes' replicas is an int32) and reads a missing count as 0."""
    overlay = repo / "kustomize" / "shop" / "overlays" / "prod" / "kustomization.yaml"
    entries = ["{name: shop, count: 3}", "{name: shop, count: 2147483648}", "{name: shop}",
               "{name: shop, count: '2'}", "shop"]  # fmt: skip
    overlay.write_text(overlay.read_text() + "replicas:\n" + "".join(f"  - {e}\n" for e in entries))
    result = gitops("validate", repo, "--format", "json")
    found = sorted(
        (f["field"], f["line"])
        for f in json.loads(result.out)["findings"]
        if f["rule"] == "kustomization/invalid" and f["file"].endswith("prod/kustomization.yaml")
    )
    first = line_of(overlay, "count: 3")
    assert found == [
        ("replicas[1].count", first + 1),
        ("replicas[2].count", first + 2),
        ("replicas[3].count", first + 3),
        ("replicas[4]", first + 4),
    ], result.out


def test_ignore_drops_rules_by_id_or_prefix(gitops: CliRunner, repo: Path) -> None:
    result = gitops(
        "validate", repo, "--format", "json", "--ignore", "schema/", "--ignore", "secret/plaintext"
    )
    rules = {f["rule"] for f in json.loads(result.out)["findings"]}
    assert not any(r.startswith(("schema/", "secret/")) for r in rules)
    assert "image/invalid-reference" in rules


def test_a_base_is_validated_when_no_overlay_that_includes_it_builds(
    gitops: CliRunner, tmp_path: Path
) -> None:
    shutil.copytree(SEEDED / "kustomize/types", tmp_path / "types")
    overlay = tmp_path / "types/overlays/dev/kustomization.yaml"
    overlay.write_text(overlay.read_text() + "patches:\n  - path: gone.yaml\n")
    shutil.rmtree(tmp_path / "types/overlays/prod")
    data = json.loads(gitops("validate", tmp_path, "--format", "json").out)
    assert [(o["path"], o["role"], o["built"]) for o in data["overlays"]] == [
        ("types/overlays/dev", "overlay", False),
        ("types/base", "base", True),
    ]
    (wrong,) = findings(data, "schema/wrong-type")
    assert (wrong["file"], wrong["overlay"]) == ("types/base/deployment.yaml", "types/base")


def test_a_build_failure_is_an_error_with_kustomizes_message(gitops: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app/kustomization.yaml").write_text("resources:\n  - cm.yaml\n  - cm.yaml\n")
    (tmp_path / "app/cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n")
    result = gitops("validate", tmp_path, "--format", "json")
    assert result.code == 1
    (failure,) = json.loads(result.out)["findings"]
    assert failure["rule"] == "build/failed" and failure["file"] == "app/kustomization.yaml"
    assert "already registered" in failure["message"] or "may not add resource" in failure["message"]
    assert "\n" not in failure["message"] and str(tmp_path) not in failure["message"]


def test_a_missing_kustomize_binary_is_bad_input(
    gitops: CliRunner, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = gitops("validate", repo, "--kustomize", tmp_path / "nowhere" / "kubectl")
    assert result.code == 2 and "install kubectl or kustomize" in result.err
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    result = gitops("validate", repo)
    assert result.code == 2
    assert "neither kustomize nor kubectl is on PATH: install kubectl or kustomize" in result.err


def test_a_missing_directory_is_bad_input(gitops: CliRunner, tmp_path: Path) -> None:
    result = gitops("validate", tmp_path / "absent")
    assert result.code == 2 and "no such directory" in result.err


def test_a_file_name_with_a_line_break_cannot_forge_a_line_or_break_the_junit_report(
    gitops: CliRunner, tmp_path: Path
) -> None:
    odd = tmp_path / "manifests" / "kustomize" / "web" / "overlays" / "x\n\x1b[31mFAKE: all valid"
    odd.mkdir(parents=True)
    (odd / "kustomization.yaml").write_text("images:\n- name: web\n  newTag: 'bad tag!'\n")
    result = gitops("validate", tmp_path / "manifests", "--junit", tmp_path / "junit.xml")
    assert result.code == 1, result.err
    assert not any(line.startswith(("FAKE", "\x1b", "\\x1b")) for line in result.out.splitlines()), result.out
    suites = ET.parse(tmp_path / "junit.xml").getroot()  # well-formed XML 1.0
    assert any("FAKE" in (case.get("name") or "") for case in suites.iter("testcase"))
