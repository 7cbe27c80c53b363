"""The review note and the rendered diff it shows: pure functions, renders in, Markdown out."""

from __future__ import annotations

import difflib
import hashlib
import random
import time

import pytest

from gitops_ci.review.diff import (
    ImageChange,
    Render,
    diff_renders,
    image_changes,
    redact_secrets,
    render_from_output,
    unified_diff,
)
from gitops_ci.review.note import (
    MARKER,
    NOTE_BUDGET,
    NOTE_LIMIT,
    OverlayReview,
    app_and_env,
    is_review_note,
    render_note,
)
from gitops_ci.validate.findings import Finding, Severity

KEY = b"review fingerprint key of these tests"

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
spec:
  template:
    spec:
      containers:
      - image: registry.example.com/shop/shop:{tag}
        name: shop
      initContainers:
      - image: busybox:1.36
        name: init
"""
SERVICE = "apiVersion: v1\nkind: Service\nmetadata:\n  name: shop\nspec:\n  ports:\n  - port: {port}\n"
SECRET = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: {password}\n"


def stream(*docs: str) -> str:
    return "---\n".join(docs)


def review_of(overlay: str, before: Render, after: Render, max_lines: int = 300) -> OverlayReview:
    app, env = app_and_env(overlay)
    return OverlayReview(
        overlay,
        app,
        env,
        before,
        after,
        diff_renders(overlay, before, after, max_lines),
        image_changes(before, after),
    )


@pytest.mark.parametrize(
    ("overlay", "expected"),
    [
        ("kustomize/shop/overlays/prod", ("shop", "prod")),
        ("apps/shop/prod", ("shop", "prod")),
        ("prod", ("prod", "")),
    ],
)
def test_app_and_env(overlay: str, expected: tuple[str, str]) -> None:
    assert app_and_env(overlay) == expected


def test_diff_counts_lines_and_objects_and_images() -> None:
    before = render_from_output(stream(SERVICE.format(port=80), DEPLOYMENT.format(tag="1.0.0")), KEY)
    after = render_from_output(stream(SERVICE.format(port=8080), DEPLOYMENT.format(tag="2.0.0")), KEY)
    diff = diff_renders("kustomize/shop/overlays/prod", before, after, 300)
    assert (diff.added, diff.removed, diff.objects_changed, diff.objects_added, diff.objects_removed) == (
        2,
        2,
        2,
        0,
        0,
    )
    assert diff.text.startswith(
        "--- a/kustomize/shop/overlays/prod (target)\n+++ b/kustomize/shop/overlays/prod (merge request)\n"
    )
    image = "      - image: registry.example.com/shop/shop"
    assert f"-{image}:1.0.0\n+{image}:2.0.0\n" in diff.text
    assert diff.summary() == "2 objects changed (+2 −2)"
    changes = image_changes(before, after)
    assert [(c.workload, c.container, c.before, c.after) for c in changes] == [
        (
            "Deployment/shop",
            "shop",
            "registry.example.com/shop/shop:1.0.0",
            "registry.example.com/shop/shop:2.0.0",
        )
    ]


def test_diff_is_cut_at_max_lines_and_long_lines_are_cut() -> None:
    before = render_from_output(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n  a: x\n", KEY
    )
    lines = "".join(f"  k{i}: {'v' * (900 if i == 0 else 5)}\n" for i in range(100))
    after = render_from_output(
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n{lines}", KEY
    )
    diff = diff_renders("o", before, after, 20)
    assert diff.lines == 107 and diff.hidden == 87 and len(diff.text.splitlines()) == 20
    assert "… (407 more characters)" in diff.text


def test_secret_values_never_reach_the_diff() -> None:
    redacted = redact_secrets(stream(SERVICE.format(port=80), SECRET.format(password="hunter2")), KEY)
    assert "hunter2" not in redacted and "password: <redacted hmac:" in redacted
    plain = hashlib.sha256(b"hunter2").hexdigest()[:12]  # what a reader could look up
    assert plain not in redacted and redacted != redact_secrets(SECRET.format(password="hunter2"), b"other")
    assert redacted.startswith(SERVICE.format(port=80))
    before = render_from_output(SECRET.format(password="hunter2"), KEY)
    after = render_from_output(SECRET.format(password="swordfish"), KEY)
    diff = diff_renders("o", before, after, 300)
    assert "hunter2" not in diff.text and "swordfish" not in diff.text
    assert diff.added == diff.removed == 1  # the change still shows, as a different hash


def test_note_has_marker_table_and_collapsed_diffs() -> None:
    old = render_from_output(DEPLOYMENT.format(tag="1.0.0"), KEY)
    new = render_from_output(DEPLOYMENT.format(tag="2.0.0"), KEY)
    reviews = [
        review_of("kustomize/shop/overlays/prod", old, new),
        review_of("kustomize/shop/overlays/dev", old, new),
    ]
    note = render_note(
        reviews, ["kustomize/shop/overlays/staging"], base="a" * 40, head="b" * 40, changed_files=1
    )
    assert note.startswith(MARKER + "\n") and is_review_note(note)
    assert "This merge request changes **2** overlays (`aaaaaaaa` → `bbbbbbbb`, 1 file changed)." in note
    assert (
        "| `shop` | `prod` | `shop` `:1.0.0` → `:2.0.0` | 1 object changed (+1 −1) | ✅ valid (1 object) |"
        in note
    )
    assert note.count("<details><summary>Rendered diff: 1 object changed (+1 −1)</summary>") == 2
    assert note.count("```diff\n") == 2 and note.count("</details>") == 2
    image = "registry.example.com/shop/shop"
    assert f"- `Deployment/shop` `shop`: `{image}:1.0.0` → `{image}:2.0.0`" in note
    assert "Rendered again without change: `kustomize/shop/overlays/staging` (1)." in note


def test_note_shows_validation_and_build_failures() -> None:
    old = render_from_output(DEPLOYMENT.format(tag="1.0.0"), KEY)
    error = Finding(
        Severity.ERROR,
        "schema/wrong-type",
        "base/d.yaml",
        'expected integer, got string "3"',
        "spec.replicas",
        "Deployment/shop",
        line=8,
    )
    bad = review_of("apps/shop/prod", old, render_from_output(DEPLOYMENT.format(tag="2.0.0"), KEY))
    bad = OverlayReview(**{**bad.__dict__, "findings": [error]})
    broken = review_of(
        "apps/cart/prod", old, Render(True, False, error="accumulating resources: 'x' | missing")
    )
    note = render_note([bad, broken], [], base="a" * 40, head="b" * 40, changed_files=2)
    assert "| `shop` | `prod` |" in note and "| ❌ 1 error |" in note
    where = "`base/d.yaml:8` `Deployment/shop` `spec.replicas`"
    assert f'- error `schema/wrong-type` {where}: `expected integer, got string "3"`' in note
    assert "❌ does not build: `accumulating resources: 'x' \\| missing`" in note
    assert "Rendered diff: not available, the merge request's version does not build." in note


def test_added_and_removed_overlays() -> None:
    new = render_from_output(DEPLOYMENT.format(tag="1.0.0"), KEY)
    added = review_of("apps/shop/qa", Render(present=False), new)
    removed = review_of("apps/shop/old", new, Render(present=False))
    note = render_note([added, removed], [], base="a" * 40, head="b" * 40, changed_files=2)
    assert "1 object added (+13 −0) (new overlay)" in note
    assert "| `shop` | `old` | `init` `:1.36` → (none) (+1 more) | overlay removed (−13) | removed |" in note


def test_fences_outgrow_backticks_in_the_diff() -> None:
    old = render_from_output("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: md\ndata:\n  a: x\n", KEY)
    new = render_from_output(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: md\ndata:\n  a: '````'\n", KEY
    )
    note = render_note([review_of("o/p", old, new)], [], base="a" * 40, head="b" * 40, changed_files=1)
    assert "`````diff\n" in note


def test_note_stays_under_gitlabs_limit() -> None:
    big = "".join(f"  k{i}: {'v' * 400}\n" for i in range(1000))
    old = render_from_output("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n  a: b\n", KEY)
    new = render_from_output(f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n{big}", KEY)
    reviews = [review_of(f"apps/app{i}/prod", old, new, max_lines=3000) for i in range(3)]
    note = render_note(reviews, [], base="a" * 40, head="b" * 40, changed_files=3)
    assert len(note) < NOTE_BUDGET + 10_000
    assert "left out, this note reached GitLab's size limit" in note
    assert note.count("```diff") == 2


def test_a_note_of_thousands_of_image_changes_stays_under_gitlabs_limit() -> None:
    """Without diffs a section still lists images and a row per overlay: both are bounded, then the note."""
    images = [ImageChange(f"Deployment/w{i}", f"c{i}", f"r/i:{i}", f"r/i:{i + 1}") for i in range(2000)]
    empty = Render(True, True, "", "", ())
    diff = diff_renders("x", empty, empty, 10)
    reviews = [
        OverlayReview(f"apps/app{i}/prod", f"app{i}", "prod", empty, empty, diff, images) for i in range(3000)
    ]
    note = render_note(reviews, [], base="a" * 40, head="b" * 40, changed_files=3000)
    assert len(note) <= NOTE_LIMIT and note.startswith(MARKER)
    assert "- … and 1950 more" in note and note.rstrip().endswith("shows everything.")


def test_a_note_with_nothing_changed() -> None:
    note = render_note([], [], base="a" * 40, head="b" * 40, changed_files=1)
    assert is_review_note(note) and "changes no overlay's rendered manifests" in note
    assert not is_review_note("> " + note)


def test_a_render_nested_past_the_bound_is_a_failed_render_not_a_crash() -> None:
    nested = "[" * 150 + "]" * 150
    deep = f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: deep}}\ndata:\n  k: {nested}\n"
    render = render_from_output(deep, KEY)
    assert render.present and not render.ok and "not readable YAML" in render.error


def patched(old: list[str], diff: list[str]) -> list[str]:
    """`old` with a unified diff applied, hunk by hunk, checking every context and removed line."""
    out, at = [], 0
    for line in diff[2:]:
        if line.startswith("@@"):
            start = int(line.split()[1].lstrip("-").split(",")[0])
            skip_to = start - 1 if ",0 " not in line.split("+")[0] else start
            out += old[at:skip_to]
            at = skip_to
        elif line.startswith(("-", " ")):
            assert old[at] == line[1:], (old[at], line)
            out += [old[at]] if line.startswith(" ") else []
            at += 1
        else:
            out.append(line[1:])
    return out + old[at:]


def test_the_diff_takes_the_old_render_to_the_new_and_marks_what_changed() -> None:
    rng = random.Random(7)
    for _ in range(300):
        old = [f"{rng.choice('abcd')}\n" for _ in range(rng.randint(0, 30))]
        new = [line if rng.random() < 0.8 else f"{rng.choice('abce')}\n" for line in old]
        new[rng.randint(0, len(new)) : rng.randint(0, len(new))] = ["x\n"] * rng.randint(0, 3)
        diff = unified_diff(old, new, "a", "b")
        assert patched(old, diff) == new and (diff == []) == (old == new)
        plain = list(difflib.unified_diff(old, new, "a", "b", n=3))
        assert len(diff) <= len(plain) + 6  # as short as difflib's, give or take its choice among equals


def test_one_changed_line_in_a_huge_render_is_found_at_once() -> None:
    old = [f"  line{i}: {i}\n" for i in range(200_000)]
    new = [*old[:150_000], "  line150000: changed\n", *old[150_001:]]
    started = time.perf_counter()
    lines = unified_diff(old, new, "a", "b")
    assert time.perf_counter() - started < 2
    assert lines[2] == "@@ -149998,7 +149998,7 @@\n" and "-  line150000: 150000\n" in lines
