"""What `gitops-ci validate` finds: one `Finding` per problem, and the report that collects them.

Pure data. Every finding names a rule id (stable: reports, `--ignore` and GitLab's code quality
fingerprints use it), a repo-relative file and, when there is one, the field path inside the object or the
kustomization (`spec.template.spec.containers[0].image`, `resources[1]`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from gitops_ci.logs import one_line


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


# Rule ids. The prefix groups them (`--ignore layout/` drops every layout rule).
KUSTOMIZATION_INVALID = "kustomization/invalid"
MISSING_REFERENCE = "kustomization/missing-reference"
OUTSIDE_REFERENCE = "kustomization/outside-repo"
REMOTE_REFERENCE = "kustomization/remote-reference"
YAML_REFUSED = "yaml/refused"
BUILD_FAILED = "build/failed"
SCHEMA_UNKNOWN_FIELD = "schema/unknown-field"
SCHEMA_WRONG_TYPE = "schema/wrong-type"
SCHEMA_MISSING_FIELD = "schema/missing-field"
SCHEMA_NOT_CHECKED = "schema/not-checked"
PLAINTEXT_SECRET = "secret/plaintext"
INVALID_IMAGE = "image/invalid-reference"
NESTED_BASE = "layout/nested-base"
OVERLAY_DUPLICATES_BASE = "layout/overlay-duplicates-base"
DUPLICATED_IN_OVERLAYS = "layout/duplicated-in-overlays"
UNUSED_COMPONENT = "layout/unused-component"
ARGOCD_NAME_COLLISION = "argocd/app-name-collision"
MISSING_APPLICATION = "layout/missing-application"
ORPHAN_APPLICATION = "layout/orphan-application"
WRONG_PROJECT = "layout/wrong-cluster"
FOREIGN_OBJECT = "layout/foreign-object"
UNCONFINED_ROOT = "layout/unconfined-root"
UNCONFINED_CHILD = "layout/unconfined-child"
ENGINE_OBJECT = "layout/engine-object"
OUTSIDE_ENVIRONMENT = "layout/outside-environment"


@dataclass(frozen=True)
class Finding:
    severity: Severity
    rule: str
    file: str  # repo-relative, posix
    message: str
    field: str = ""  # field path inside the object or kustomization
    object: str = ""  # "Kind/name" (or "Kind/namespace/name") of a manifest
    overlay: str = ""  # the overlay whose render showed it (empty for findings in repo files)
    line: int | None = None  # 1-based, when known

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file

    def sort_key(self) -> tuple[str, int, str, str, str]:
        return (self.file, self.line or 0, self.object, self.field, self.rule)

    def describe(self) -> str:
        """One line: `severity rule file:line [overlay] Kind/name field: message`."""
        parts = [self.severity.value, self.rule, self.location]
        if self.overlay and not self.file.startswith(self.overlay + "/"):
            parts.append(f"(in {self.overlay})")
        if self.object:
            parts.append(self.object)
        if self.field:
            parts.append(f"{self.field}:")
        parts.append(self.message)
        return one_line(" ".join(parts), limit=10_000)  # a repo's file name may hold a line break


@dataclass(frozen=True)
class OverlayResult:
    """One overlay: did it build, how many objects, and which kustomization dirs it includes."""

    path: str  # the overlay dir, repo-relative
    file: str  # its kustomization file
    built: bool
    objects: int
    seconds: float
    includes: tuple[str, ...] = ()  # kustomization dirs of its closure (itself included)
    error: str = ""
    # "overlay", or "base": a kustomization built on its own because no overlay that includes it builds
    role: str = "overlay"


@dataclass
class ValidationReport:
    root: str
    tool: str
    overlays: list[OverlayResult] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def count(self, severity: Severity) -> int:
        return sum(f.severity is severity for f in self.findings)

    @property
    def ok(self) -> bool:
        return self.count(Severity.ERROR) == 0

    def by_rule(self) -> dict[str, dict[str, int]]:
        counts: dict[str, Counter[str]] = {}
        for finding in self.findings:
            counts.setdefault(finding.rule, Counter())[finding.severity.value] += 1
        return {rule: dict(sorted(c.items())) for rule, c in sorted(counts.items())}

    def findings_of(self, overlay: OverlayResult) -> list[Finding]:
        """Findings of the overlay's render, plus those in files of the kustomizations it includes."""
        dirs = set(overlay.includes) or {overlay.path}
        return [f for f in self.findings if f.overlay in dirs or (not f.overlay and _dir(f.file) in dirs)]

    def unattached(self) -> list[Finding]:
        """Findings that belong to no overlay (files outside every overlay's kustomizations)."""
        attached: set[Finding] = set()
        for overlay in self.overlays:
            attached.update(self.findings_of(overlay))
        return [f for f in self.findings if f not in attached]


def _dir(path: str) -> str:
    head, _, _ = path.rpartition("/")
    return head or "."


def unique_sorted(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(set(findings), key=Finding.sort_key)


def drop_ignored(findings: Sequence[Finding], ignore: Sequence[str]) -> list[Finding]:
    """`--ignore` takes rule ids or prefixes (`layout/`, `schema/not-checked`)."""
    if not ignore:
        return list(findings)
    return [
        f
        for f in findings
        if not any(f.rule == i or (i.endswith("/") and f.rule.startswith(i)) for i in ignore)
    ]
