"""Untrusted values in GitLab Markdown: no quick action, mention, reference or broken table can come out of
them, in the review note and the merge request description alike."""

from __future__ import annotations

import re

import pytest

from gitops_ci.errors import InternalError
from gitops_ci.logs import one_line
from gitops_ci.review.diff import ImageChange, Render, diff_renders
from gitops_ci.review.markdown import check_note, code
from gitops_ci.review.note import MARKER, OverlayReview, render_note
from gitops_ci.validate.findings import Finding, Severity

INJECTIONS = [
    "x\n/approve\n/merge",
    "x\r/approve",
    "x\u2028/approve",
    "@all please look",
    "#1 !2 ~label %milestone $3 &4",
    "<!-- gitops-ci:review -->",
    "</details></td>|| --- |",
    "a | b | c",
    "``` `` ` ````",
    "<script>alert(1)</script>",
    "\u202egnp.exe",
    "x\x00\x1b[31m",
]
_FENCE = re.compile(r"^(`{3,})[^\n]*\n.*?^\1\s*$", re.MULTILINE | re.DOTALL)
_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)")


def prose(note: str) -> str:
    """The note without its code: what GitLab would scan for mentions and references."""
    return _SPAN.sub("", _FENCE.sub("", note))


@pytest.mark.parametrize("value", INJECTIONS)
def test_code_keeps_any_value_on_one_line_inside_one_span(value: str) -> None:
    span = code(value, cell=True)
    assert "\n" not in span and "\r" not in span and "\u2028" not in span
    assert prose(span) == ""


def test_code_escapes_control_characters_visibly() -> None:
    assert one_line("a\nb\x00\u202e") == "a\\x0ab\\x00\\u202e"
    assert code("") == "(empty)"
    assert code("`x`") == "`` `x` ``"


def test_check_note_refuses_a_line_that_starts_a_quick_action() -> None:
    for line_break in ("\n", "\r", "\u2028"):
        with pytest.raises(InternalError, match="quick action"):
            check_note(f"fine{line_break}/merge\n")
    assert check_note("fine `/merge`\n") == "fine `/merge`\n"
    # GitLab's extractor matches `^\/` only: an indented path in a diff's context line is content, not a bug
    indented = "```diff\n     /usr/bin/env true\n+    /merge\n```\n"
    assert check_note(indented) == indented


def hostile_review(value: str) -> OverlayReview:
    before = Render(True, True, "kind: X\nname: x\n", objects=())
    render = Render(True, True, f"kind: X\nname: {value}\n", objects=())
    diff = diff_renders(value, before, render, 300)
    finding = Finding(Severity.ERROR, "schema/wrong-type", value, value, field=value, object=value)
    return OverlayReview(
        overlay=f"kustomize/{value}/overlays/{value}",
        app=value,
        env=value,
        before=before,
        after=render,
        diff=diff,
        images=[ImageChange(value, value, value, value)],
        findings=[finding],
    )


@pytest.mark.parametrize("value", INJECTIONS)
def test_no_field_of_the_review_note_can_inject(value: str) -> None:
    broken = hostile_review(value)
    broken_after = Render(True, False, error=value)
    reviews = [
        hostile_review(value),
        OverlayReview(
            broken.overlay, value, value, broken.before, broken_after, broken.diff, [], broken.findings
        ),
    ]
    note = render_note(reviews, [value, f"{value}/x"], base="a" * 40, head="b" * 40, changed_files=3)
    lines = re.split("\r\n|[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]", note)
    assert not [line for line in lines if line.lstrip().startswith("/")]
    text = prose(note)
    assert note.startswith(MARKER) and text.count("<!--") == 1
    assert text.count("<details>") == text.count("</details>") == text.count("</summary>")
    for token in ("@all", "/approve", "#1", "!2", "~label", "<script>", "\u202e", "\x00"):
        assert token not in text, token
    table = [line for line in note.splitlines() if line.startswith("| ")]
    assert all(len(re.split(r"(?<!\\)\|", row)) == 7 for row in table)


@pytest.mark.parametrize("value", INJECTIONS)
def test_the_merge_request_description_shows_repo_values_as_code(value: str) -> None:
    from pathlib import Path

    from gitops_ci.change.merge_request import describe
    from gitops_ci.change.model import EnvironmentChange, Target
    from gitops_ci.images.files import OverlayEdit
    from gitops_ci.images.kustomize import EntryChange

    entry = EntryChange(value, {"newName": value, "newTag": value}, {"newTag": "2.0"})
    edit = OverlayEdit(Path("o"), Path("o/kustomization.yaml"), "a", "b", (entry,))
    target = Target(app="web", environment="prod", path="kustomize/web/overlays/prod", updates=())
    text = describe(target, EnvironmentChange(app="web", environment="prod", path=target.path, edit=edit))
    lines = re.split("\r\n|[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]", text)
    assert not [line for line in lines if line.lstrip().startswith("/")]
    assert "@all" not in prose(text) and "#1" not in prose(text)
    (row,) = [line for line in text.splitlines() if line.startswith("| `web`")]
    assert len(re.split(r"(?<!\\)\|", row)) == 6
