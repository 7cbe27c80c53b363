"""Checks of each kustomization file on its own: it parses, its local references exist, its images and
replica counts are valid.

A broken path shows up here at the field that names it (`resources[1]` of the file that has it), before the
build of the overlays that include it fails with kustomize's less direct message.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from gitops_ci.errors import ImageArgumentError
from gitops_ci.images.reference import validate_digest, validate_repository, validate_tag
from gitops_ci.naming import MAX_REPLICAS
from gitops_ci.validate import yaml_files as validate_yaml
from gitops_ci.validate.findings import (
    INVALID_IMAGE,
    KUSTOMIZATION_INVALID,
    MISSING_REFERENCE,
    OUTSIDE_REFERENCE,
    REMOTE_REFERENCE,
    Finding,
    Severity,
)
from gitops_ci.validate.objects import ManifestFiles
from gitops_ci.validate.references import Reference
from gitops_ci.validate.repo import Kustomization, RepoLayout

_RULES = {"outside": OUTSIDE_REFERENCE, "remote": REMOTE_REFERENCE}
_BLOCKING = {
    "outside": "leaves the repository",
    "remote": "is remote (never fetched)",
    "missing": "does not resolve",
    "dir": "does not resolve",
}


def check_kustomization(layout: RepoLayout, k: Kustomization) -> list[Finding]:
    findings: list[Finding] = []
    if k.dir in layout.duplicates:
        names = " and ".join(f.rpartition("/")[2] for f in layout.duplicates[k.dir])
        findings.append(
            Finding(
                Severity.ERROR,
                KUSTOMIZATION_INVALID,
                k.file,
                f"both {names} exist; kustomize refuses that, remove one",
            )
        )
    if k.data is None:
        findings.append(Finding(Severity.ERROR, KUSTOMIZATION_INVALID, k.file, k.error))
        return findings
    findings.extend(_reference_findings(k))
    findings.extend(_image_findings(k))
    findings.extend(_replica_findings(k))
    return findings


def _reference_findings(k: Kustomization) -> Iterator[Finding]:
    for ref in k.references:
        message = _reference_problem(ref)
        if message is None:
            continue
        rule = _RULES.get(ref.kind, MISSING_REFERENCE)
        yield Finding(Severity.ERROR, rule, k.file, message, field=ref.field, line=_line(k, ref.field))


def _reference_problem(ref: Reference) -> str | None:
    if ref.kind == "missing":
        return f"{ref.value!r} does not exist (resolves to {ref.target})"
    if ref.kind == "dir" and ref.includes:  # resources, bases, components and plugin entries build it
        return f"{ref.value!r} is a directory without a kustomization file"
    if ref.kind == "outside":
        return (
            f"{ref.value!r} resolves outside the repository's content (through '..', a symlink or into "
            ".git); it is not read or built: CI and Argo CD only see the repository"
        )
    if ref.kind == "remote":
        return (
            f"{ref.value!r} is a remote reference; validate and review never fetch anything: vendor it "
            "into the repository (or --ignore kustomization/remote-reference to skip the overlays using it)"
        )
    return None


def _image_findings(k: Kustomization) -> Iterator[Finding]:
    images = k.data.get("images") if k.data else None
    if images is None:
        return
    if not isinstance(images, list):
        yield _image_finding(k, "images", "images is not a list")
        return
    for i, entry in enumerate(images):
        if not isinstance(entry, dict):
            yield _image_finding(
                k, f"images[{i}]", "an images entry must be a mapping with name, newName, newTag"
            )
            continue
        for key, problem in _entry_problems(entry):
            yield _image_finding(k, f"images[{i}].{key}", problem)


def _entry_problems(entry: dict[str, Any]) -> Iterator[tuple[str, str]]:
    if "name" not in entry:
        yield "name", "the entry has no name; kustomize matches images by name"
    checks = {
        "name": lambda v: validate_repository(v, "name"),
        "newName": validate_repository,
        "newTag": validate_tag,
        "digest": validate_digest,
    }
    for key, check in checks.items():
        value = entry.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            yield key, f"{key} {value!r} is not a string; kustomize refuses it: quote it"
            continue
        try:
            check(value)
        except ImageArgumentError as err:
            yield key, str(err)


def _replica_findings(k: Kustomization) -> Iterator[Finding]:
    """kustomize reads a missing count as 0 (the Deployment scales to zero) and passes any int64 on."""
    replicas = k.data.get("replicas") if k.data else None
    if replicas is None:
        return
    if not isinstance(replicas, list):
        yield _replica_finding(k, "replicas", "replicas is not a list of name and count")
        return
    for i, entry in enumerate(replicas):
        field = f"replicas[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            yield _replica_finding(k, field, "a replicas entry must be a mapping with name and count")
            continue
        count = entry.get("count")
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_REPLICAS:
            shown = "missing (kustomize sets 0)" if count is None else repr(count)
            yield _replica_finding(
                k, f"{field}.count", f"count {shown} is not a whole number from 0 to {MAX_REPLICAS}"
            )


def _replica_finding(k: Kustomization, field: str, message: str) -> Finding:
    return Finding(Severity.ERROR, KUSTOMIZATION_INVALID, k.file, message, field=field, line=_line(k, field))


def _image_finding(k: Kustomization, field: str, message: str) -> Finding:
    return Finding(Severity.ERROR, INVALID_IMAGE, k.file, message, field=field, line=_line(k, field))


def _line(k: Kustomization, field: str) -> int | None:
    return validate_yaml.line_of(k.text, 0, parse_field(field))


def parse_field(field: str) -> list[str | int]:
    """`images[2].newTag` → ["images", 2, "newTag"]."""
    parts: list[str | int] = []
    for piece in field.replace("]", "").split("."):
        name, *indexes = piece.split("[")
        if name:
            parts.append(name)
        parts.extend(int(i) for i in indexes if i.isdigit())
    return parts


def build_blocker(files: ManifestFiles, directory: str) -> str | None:
    """Why `directory` must not be built: a blocking problem of its closure, or a YAML file kustomize would
    parse that is an alias bomb or nests too deep (kustomize would expand it in memory)."""
    layout = files.layout
    problem = blocking_problem(layout, directory)
    if problem is not None:
        return problem
    for d in layout.closure(directory):
        for ref in layout.kustomizations[d].references:
            if ref.kind == "file" and not ref.data:
                files.documents(ref.target)
                if ref.target in files.refused:
                    return f"{ref.target} is not built: {files.refused[ref.target]}"
    return None


def blocking_problem(layout: RepoLayout, directory: str) -> str | None:
    """Why a build of `directory` must fail, known without running it (an invalid kustomization or a local
    path that does not exist in its closure); None when it may build."""
    for d in layout.closure(directory):
        k = layout.kustomizations[d]
        if k.data is None:
            return f"{k.file} is not a valid kustomization"
        for ref in k.references:
            if _reference_problem(ref) is not None:
                return f"{k.file}: {ref.field} {ref.value!r} {_BLOCKING[ref.kind]}"
    return None
