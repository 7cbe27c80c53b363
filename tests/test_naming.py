"""Names and templates that reach paths, git argument lists and messages."""

from __future__ import annotations

import pytest

from gitops_ci.errors import ConfigurationError
from gitops_ci.naming import check_name, check_ref_name, check_revision, render


@pytest.mark.parametrize("name", ["web", "web-1", "a", "shop.api", "staging_eu", "A1"])
def test_names_that_are_path_components_pass(name: str) -> None:
    assert check_name(name, "--app") == name


@pytest.mark.parametrize(
    "name",
    ["", ".", "..", "-x", "x-", "a/b", "a*", "a?", "[a]", "a\nb", "a\x00", "a b", "wеb", "a..b", "x" * 101],
)
def test_names_that_could_escape_glob_or_confuse_are_refused(name: str) -> None:
    with pytest.raises(ConfigurationError, match=r"--app .* is not a valid name"):
        check_name(name, "--app")


@pytest.mark.parametrize("ref", ["main", "release/1.2", "gitops/web/prod", "feature_x", "v1.0"])
def test_branch_names_git_accepts_pass(ref: str) -> None:
    assert check_ref_name(ref, "--branch") == ref


@pytest.mark.parametrize(
    "ref",
    [
        "master --origin=x",
        "--upload-pack=touch /tmp/x",
        "-b",
        "a..b",
        "a//b",
        "/main",
        "main/",
        "main.",
        "main.lock",
        ".hidden",
        "a/.b",
        "@",
        "a@{1}",
        "a~1",
        "a^",
        "a:b",
        "a?",
        "a*",
        "a[b",
        "a\\b",
        "a\x7f",
        "",
        "x" * 256,
    ],
)
def test_branch_names_that_git_refuses_or_reads_as_options_are_refused(ref: str) -> None:
    with pytest.raises(ConfigurationError, match=r"--branch .* is not a valid branch name"):
        check_ref_name(ref, "--branch")


@pytest.mark.parametrize("rev", ["main", "origin/main", "HEAD~1", "main^2", "a" * 40, "0123abc"])
def test_revisions_pass(rev: str) -> None:
    assert check_revision(rev, "--base") == rev


@pytest.mark.parametrize("rev", ["--upload-pack=cmd", "-x", "a b", "main..other", ""])
def test_revisions_that_are_options_or_ranges_are_refused(rev: str) -> None:
    with pytest.raises(ConfigurationError, match="--base"):
        check_revision(rev, "--base")


def test_templates_substitute_the_documented_names() -> None:
    assert render("kustomize/{app}/overlays/{env}", "--path-template", app="web", env="prod") == (
        "kustomize/web/overlays/prod"
    )
    assert render("{{literal}} {app}", "--message", app="web") == "{literal} web"


@pytest.mark.parametrize(
    ("template", "shown"),
    [
        ("{app.__init__.__globals__}", "{app.__init__.__globals__}"),
        ("{app:>99999999999}", "{app:>99999999999}"),
        ("{app!r}", "{app!r}"),
        ("{app[0]}", "{app[0]}"),
        ("{application}", "{application}"),
        ("{0}", "{0}"),
        ("{}", "{}"),
    ],
)
def test_templates_refuse_attribute_index_and_format_spec(template: str, shown: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        render(template, "--message", app="web", env="prod")
    assert f"uses {shown}" in str(caught.value) and "available: {app}, {env}" in str(caught.value)


@pytest.mark.parametrize("template", ["{app", "app}", "{app{env}}"])
def test_unbalanced_templates_are_refused(template: str) -> None:
    with pytest.raises(ConfigurationError, match="--message"):
        render(template, "--message", app="web", env="prod")


def test_overlong_templates_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="longer than"):
        render("{app}" * 1000, "--message", app="web")
