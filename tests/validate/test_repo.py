"""validate_repo: which kustomizations are overlays, what they include, which overlays a change touches."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops_ci.validate.repo import RepoLayout, discover

KUSTOMIZATION = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: {kind}\n{body}"


def write(root: Path, files: dict[str, str]) -> None:
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)


def k(body: str, kind: str = "Kustomization") -> str:
    return KUSTOMIZATION.format(kind=kind, body=body)


@pytest.fixture
def layout(tmp_path: Path) -> RepoLayout:
    write(
        tmp_path,
        {
            "apps/shop/base/kustomization.yaml": k("resources:\n  - deployment.yaml\n  - ../../../common\n"),
            "apps/shop/base/deployment.yaml": "kind: Deployment\n",
            "apps/shop/base/extra/kustomization.yaml": k("resources:\n  - cm.yaml\n"),
            "apps/shop/base/extra/cm.yaml": "kind: ConfigMap\n",
            "apps/shop/overlays/prod/kustomization.yaml": k(
                "resources:\n  - ../../base\n  - ../../../../shared/ns.yaml\n"
                "components:\n  - ../../../../components/monitoring\n"
                "patches:\n  - path: replicas.yaml\n"
                "configMapGenerator:\n  - name: env\n    files:\n      - config=settings/app.env\n"
            ),
            "apps/shop/overlays/prod/replicas.yaml": "kind: Deployment\n",
            "apps/shop/overlays/prod/settings/app.env": "A=1\n",
            "apps/shop/overlays/dev/kustomization.yml": k(
                "resources:\n  - ../../base\n  - https://github.com/org/repo//deploy?ref=v1\n"
                "  - github.com/org/other/deploy?ref=main\n  - ../../missing\n  - ../../../../../outside\n"
            ),
            "apps/shop/overlays/both/kustomization.yaml": k(""),
            "apps/shop/overlays/both/Kustomization": k(""),
            "common/kustomization.yaml": k("resources:\n  - ns.yaml\n"),
            "common/ns.yaml": "kind: Namespace\n",
            "components/monitoring/kustomization.yaml": k("resources:\n  - sm.yaml\n", "Component"),
            "components/unused/kustomization.yaml": k("", "Component"),
            "shared/ns.yaml": "kind: Namespace\n",
            "broken/kustomization.yaml": "resources: [\n",
            ".git/kustomization.yaml": k(""),
        },
    )
    return discover(tmp_path)


def test_overlays_are_the_kustomizations_nothing_includes(layout: RepoLayout) -> None:
    assert layout.overlays == [
        "apps/shop/base/extra",
        "apps/shop/overlays/both",
        "apps/shop/overlays/dev",
        "apps/shop/overlays/prod",
        "broken",
    ]
    assert layout.unused_components == ["components/unused"]
    assert layout.duplicates == {
        "apps/shop/overlays/both": [
            "apps/shop/overlays/both/kustomization.yaml",
            "apps/shop/overlays/both/Kustomization",
        ]
    }


def test_closure_follows_resources_and_components(layout: RepoLayout) -> None:
    assert layout.closure("apps/shop/overlays/prod") == [
        "apps/shop/overlays/prod",
        "apps/shop/base",
        "common",
        "components/monitoring",
    ]


def test_references_are_resolved_and_classified(layout: RepoLayout) -> None:
    dev = {
        r.value: (r.field, r.kind, r.target)
        for r in layout.kustomizations["apps/shop/overlays/dev"].references
    }
    assert dev == {
        "../../base": ("resources[0]", "kustomization", "apps/shop/base"),
        "https://github.com/org/repo//deploy?ref=v1": ("resources[1]", "remote", ""),
        "github.com/org/other/deploy?ref=main": ("resources[2]", "remote", ""),
        "../../missing": ("resources[3]", "missing", "apps/shop/missing"),
        "../../../../../outside": ("resources[4]", "outside", "../outside"),
    }
    prod = {r.field: (r.kind, r.target) for r in layout.kustomizations["apps/shop/overlays/prod"].references}
    assert prod["resources[1]"] == ("file", "shared/ns.yaml")
    assert prod["patches[0].path"] == ("file", "apps/shop/overlays/prod/replicas.yaml")
    assert prod["configMapGenerator[0].files[0]"] == ("file", "apps/shop/overlays/prod/settings/app.env")
    assert layout.kustomizations["broken"].data is None
    assert "not valid YAML" in layout.kustomizations["broken"].error


@pytest.mark.parametrize(
    ("changed", "affected"),
    [
        (["apps/shop/base/deployment.yaml"], ["apps/shop/overlays/dev", "apps/shop/overlays/prod"]),
        (["common/ns.yaml"], ["apps/shop/overlays/dev", "apps/shop/overlays/prod"]),
        (["components/monitoring/sm.yaml"], ["apps/shop/overlays/prod"]),
        (["shared/ns.yaml"], ["apps/shop/overlays/prod"]),
        (["apps/shop/overlays/prod/settings/app.env"], ["apps/shop/overlays/prod"]),
        (["apps/shop/base/extra/cm.yaml"], ["apps/shop/base/extra"]),  # a nested kustomization is its own
        (["README.md", "components/unused/kustomization.yaml"], []),
    ],
)
def test_affected_overlays(layout: RepoLayout, changed: list[str], affected: list[str]) -> None:
    assert layout.affected_overlays(changed) == affected


def test_the_clones_git_directory_is_not_content(tmp_path: Path) -> None:
    """A generator naming .git/config would put the runner's clone URL (CI_JOB_TOKEN) into a render that
    review posts: any reference into .git is refused like one leaving the repo, inline generators too."""
    inline = "apiVersion: builtin\nkind: ConfigMapGenerator\nmetadata:\n  name: x\nfiles:\n  - .git/config\n"
    write(
        tmp_path,
        {
            ".git/config": "[remote]\n  url = https://gitlab-ci-token:glcbt-secret@gitlab/x.git\n",
            "kustomization.yaml": k(
                "configMapGenerator:\n  - name: c\n    files: [.git/config, key=sub/../.git/config]\n"
                f"generators:\n  - |\n{''.join('    ' + line + chr(10) for line in inline.splitlines())}"
            ),
        },
    )
    refs = {r.field: (r.kind, r.target) for r in discover(tmp_path).kustomizations["."].references}
    assert refs == {
        "configMapGenerator[0].files[0]": ("outside", ".git/config"),
        "configMapGenerator[0].files[1]": ("outside", ".git/config"),
        "generators[0].files[0]": ("outside", ".git/config"),
    }


def test_the_files_a_generator_config_file_reads_are_references(tmp_path: Path) -> None:
    """`generators: [gen.yaml]` names a builtin plugin's config, whose `files:` kustomize reads relative to
    the kustomization: each is resolved like configMapGenerator's own (no way around the .git refusal)."""
    write(
        tmp_path,
        {
            "overlay/kustomization.yaml": k("generators: [gen.yaml, missing.yaml]\n"),
            "overlay/gen.yaml": (
                "apiVersion: builtin\nkind: ConfigMapGenerator\nmetadata: {name: x}\n"
                "files: [app.env, ../.git/config, gone.env]\nenvs: [app.env]\n"
            ),
            "overlay/app.env": "A=1\n",
        },
    )
    refs = {r.field: (r.kind, r.target) for r in discover(tmp_path).kustomizations["overlay"].references}
    assert refs == {
        "generators[0]": ("file", "overlay/gen.yaml"),
        "generators[0].files[0]": ("file", "overlay/app.env"),
        "generators[0].files[1]": ("outside", ".git/config"),
        "generators[0].files[2]": ("missing", "overlay/gone.env"),
        "generators[0].envs[0]": ("file", "overlay/app.env"),
        "generators[1]": ("missing", "overlay/missing.yaml"),
    }
