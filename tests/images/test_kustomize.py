"""The pure editing core: semantics, refusals, and the data-level safety net."""

from __future__ import annotations

import pytest

from gitops_ci.errors import KustomizationError
from gitops_ci.images import yamlconf
from gitops_ci.images.kustomize import read_images, set_images
from gitops_ci.images.reference import parse_image_arguments


def edit(text: str, *args: str, strict: bool = False) -> str:
    return set_images(text, parse_image_arguments(args), strict=strict).text


def test_untouched_when_already_set() -> None:
    text = "images:\n- name: app\n  newTag: '1.0'  # c\n"
    result = set_images(text, parse_image_arguments(["app:1.0"]))
    assert result.text == text
    assert not result.changed


def test_unquoted_numeric_tag_is_rewritten_as_string_even_if_equal() -> None:
    text = "images:\n- name: app\n  newTag: 11\n"
    assert edit(text, "app:11") == 'images:\n- name: app\n  newTag: "11"\n'


def test_name_form_keeps_new_name_unlike_kustomize_4375() -> None:
    text = "images:\n- name: app\n  newName: reg.io/team/app\n  newTag: v1\n"
    assert edit(text, "app:v2") == "images:\n- name: app\n  newName: reg.io/team/app\n  newTag: v2\n"


def test_duplicate_entries_are_all_updated() -> None:
    text = "images:\n- name: pg\n  newName: a/pg\n- name: pg\n  newName: b/pg\n  newTag: '1'\n"
    after = edit(text, "pg=*:2")
    assert read_images(after) == [
        {"name": "pg", "newName": "a/pg", "newTag": "2"},
        {"name": "pg", "newName": "b/pg", "newTag": "2"},
    ]


def test_unknown_fields_are_kept() -> None:
    text = "images:\n- name: c\n  newTag: v1\n  tagSuffix: -x\n  newDigest: sha256:1 # marker\n"
    assert edit(text, "c:v2") == text.replace("v1", "v2")


def test_removing_every_field_of_an_entry() -> None:
    text = "images:\n- digest: sha256:" + "a" * 64 + "\n  newTag: x\n  name: app\n- name: b\n"
    assert edit(text, "app=") == "images:\n- name: app\n- name: b\n"


def test_flow_entry_field_removal_and_insertion() -> None:
    digest = "sha256:" + "c" * 64
    text = "images:\n- {name: a, newTag: '1', newName: x.io/a}\n"
    assert edit(text, f"a@{digest}") == f"images:\n- {{name: a, newName: x.io/a, digest: {digest}}}\n"


def test_flow_sequence_gets_flow_entry() -> None:
    assert edit("images: [{name: a, newTag: '1'}]\n", "b:2") == (
        "images: [{name: a, newTag: '1'}, {name: b, newTag: '2'}]\n"
    )


def test_null_images_becomes_a_list() -> None:
    assert edit("images:\nresources:\n- a.yaml\n", "a:1") == (
        'images:\n- name: a\n  newTag: "1"\nresources:\n- a.yaml\n'
    )


def test_empty_file_gets_images() -> None:
    assert edit("", "a:v1") == "images:\n- name: a\n  newTag: v1\n"
    assert edit("# only a comment\n", "a:v1") == "# only a comment\nimages:\n- name: a\n  newTag: v1\n"


def test_block_scalar_value_is_replaced_and_following_lines_kept() -> None:
    text = "images:\n- name: a\n  newTag: |\n    v1\n\nfoo: 1\n"
    assert edit(text, "a:v2") == "images:\n- name: a\n  newTag: v2\n\nfoo: 1\n"


def test_strict_refuses_unknown_names() -> None:
    with pytest.raises(KustomizationError, match="no images entry is named 'nope' \\(--strict\\)"):
        edit("images:\n- name: a\n", "nope:1", strict=True)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("images: [\n", "kustomization.yaml:2:1: "),
        ("a: 1\n  b: 2\n", "kustomization.yaml:2:4: "),
        ("- a\n- b\n", "the top level is not a mapping"),
        ("images: {name: a}\n", "kustomization.yaml:1:9: images must be a list"),
        ("images:\n- newTag: v1\n", "kustomization.yaml:2:3: images entry 1 has no name"),
        ("images:\n- app\n", "images entry 1 is not a mapping"),
        ("images:\n- name: a\n  newTag: [1]\n", "newTag must be a string"),
        ("images: []\nimages: []\n", "kustomization.yaml:2:1: duplicate key 'images'"),
        ("a: 1\n---\nb: 2\n", "kustomization.yaml:2:1: "),
    ],
)
def test_refusals_are_one_line_with_position(text: str, message: str) -> None:
    with pytest.raises(KustomizationError) as info:
        edit(text, "a:2")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_result_always_parses_to_intended_data() -> None:
    text = "images:\n  - name: a # x\n    newTag: v1\n  - {name: b}\nkind: Kustomization\n"
    after = edit(text, "a=r.io/a:v2", "b@sha256:" + "d" * 64, "c=r.io/c:1")
    data = yamlconf.load(after)
    assert data["kind"] == "Kustomization"
    assert [dict(e) for e in data["images"]] == [
        {"name": "a", "newName": "r.io/a", "newTag": "v2"},
        {"name": "b", "digest": "sha256:" + "d" * 64},
        {"name": "c", "newName": "r.io/c", "newTag": "1"},
    ]
    assert "# x" in after


def test_changes_report_before_and_after_once_per_entry() -> None:
    result = set_images(
        "images:\n- name: a\n  newTag: v1\n", parse_image_arguments(["a:v2", "a=r.io/a", "n:1"])
    )
    assert [(c.name, c.before, c.after) for c in result.changes] == [
        ("a", {"newTag": "v1"}, {"newName": "r.io/a", "newTag": "v2"}),
        ("n", None, {"newTag": "1"}),
    ]
