"""Reading GitLab's answers field by field: a body without a field, or with one of another type, is not
GitLab's answer (a retryable operational failure naming the request), never a KeyError or TypeError."""

from __future__ import annotations

from typing import Any

import pytest

from gitops_ci.errors import RetryableError
from gitops_ci.manifest_repo.gitlab_answers import Answer, NotGitLabError

SOURCE = "reading kustomize/web/overlays/dev/kustomization.yaml: https://gitlab.example.com"


def answer(body: Any) -> Answer:
    return Answer(200, body, {}, SOURCE)


def test_a_field_is_read_at_its_path_with_its_type() -> None:
    commit = answer({"commit": {"id": "abc", "parent_ids": ["p"]}, "size": 12})
    assert commit.value("commit", "id", kind=str) == "abc"
    assert commit.value("commit", "parent_ids", kind=list) == ["p"]
    assert commit.value("size", kind=int) == 12


@pytest.mark.parametrize(
    ("body", "keys", "kind", "wanted"),
    [
        (None, ("commit_id",), str, "without commit_id:"),  # not JSON at all: a proxy's page
        ([], ("commit_id",), str, "without commit_id:"),
        ({"commit": "abc"}, ("commit", "id"), str, "without commit / id:"),
        ({"size": "12"}, ("size",), int, "without size as int:"),
        ({"size": True}, ("size",), int, "without size as int:"),  # a bool is no size, though Python says int
        ({"id": None}, ("id",), str, "without id as str:"),
    ],
)
def test_a_body_without_the_field_is_not_gitlabs_answer(
    body: Any, keys: tuple[str, ...], kind: type, wanted: str
) -> None:
    with pytest.raises(NotGitLabError) as raised:
        answer(body).value(*keys, kind=kind)
    assert isinstance(raised.value, RetryableError)
    assert str(raised.value).startswith(f"{SOURCE} answered 200 {wanted} not GitLab's answer")


def test_a_listing_is_a_list_of_objects_with_their_fields() -> None:
    page = [{"type": "blob", "name": "a", "path": "x/a"}]
    assert answer(page).records("type", "name", "path") == page
    for body in ({"type": "blob"}, [{"type": "blob", "name": "a"}], ["a"], None):
        with pytest.raises(NotGitLabError, match="without a list of objects with type, name, path"):
            answer(body).records("type", "name", "path")
