"""`gitops-ci validate`: every overlay of a manifest repo builds, and what it renders is valid — offline.

Steps: discover the kustomizations (one walk), check each file (references, images), build every overlay in
a small pool, check each render as it arrives (schema, plaintext Secrets), then the repo-wide rules
(plaintext Secrets in any file, the seed's layout, Argo CD names). `check_overlay` is shared with review.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from gitops_ci import logs
from gitops_ci.errors import ConfigurationError
from gitops_ci.validate import yaml_files as validate_yaml
from gitops_ci.validate.build import DEFAULT_TIMEOUT, BuildResult, KustomizeTool, find_tool, iter_builds
from gitops_ci.validate.engine_objects import engine_objects
from gitops_ci.validate.findings import (
    BUILD_FAILED,
    SCHEMA_MISSING_FIELD,
    YAML_REFUSED,
    Finding,
    OverlayResult,
    Severity,
    ValidationReport,
    drop_ignored,
    unique_sorted,
)
from gitops_ci.validate.kustomizations import build_blocker, check_kustomization
from gitops_ci.validate.layout import (
    argocd_collisions,
    duplicated_content,
    is_argocd_application,
    nested_bases,
    redundant_patches,
    unused_components,
)
from gitops_ci.validate.objects import Document, ManifestFiles, check_rendered, scan_repo_secrets
from gitops_ci.validate.onboarding import layout_rules
from gitops_ci.validate.repo import RepoLayout, discover
from gitops_ci.validate.schema import SchemaChecker

log = logs.get_logger(__name__)


@dataclass(frozen=True, kw_only=True)
class ValidateSettings:
    path: Path = Path()
    kustomize: str | None = None  # a kustomize or kubectl executable; default: found on PATH
    build_options: tuple[str, ...] = ()
    build_timeout: float = DEFAULT_TIMEOUT  # extra flags for every build (SAFE_BUILD_OPTIONS)
    jobs: int | None = None  # builds at a time (default 2-4)
    ignore: tuple[str, ...] = ()  # rule ids or prefixes to drop


@dataclass(frozen=True)
class CheckedOverlay:
    result: OverlayResult
    findings: list[Finding]
    objects: list[Document]


def validate(settings: ValidateSettings) -> ValidationReport:
    root = repo_root(settings.path)
    tool = find_tool(settings.kustomize, settings.build_options, settings.build_timeout)
    timings: dict[str, float] = {}
    with timed(timings, "discover_s"):
        layout = discover(root)
        files = ManifestFiles(layout)
    log.info("%s: %d kustomizations, %d overlays", root, len(layout.kustomizations), len(layout.overlays))
    findings = [f for k in layout.kustomizations.values() for f in check_kustomization(layout, k)]
    with timed(timings, "secret_scan_s"):
        repo_secrets = scan_repo_secrets(files)
    run = _Run(files, tool, SchemaChecker(), {(f.file, f.object) for f in repo_secrets}, settings.jobs)
    with timed(timings, "build_and_check_s"):
        run.build(layout.overlays, "overlay")
        covered = {d for o in run.overlays if o.built for d in o.includes}
        # A base whose overlays all fail is still checked, on its own (and a broken overlay does not hide it).
        run.build([d for d in layout.kustomizations if d not in covered and d not in run.done], "base")
    timings["schema_import_s"] = run.checker.import_seconds
    with timed(timings, "layout_s"):
        findings += run.findings + repo_secrets + _repo_rules(files, run.apps)
    built = sum(o.built for o in run.overlays)
    log.info("%d built, %d with broken references not built", built, run.skipped)
    return ValidationReport(
        root=str(root),
        tool=f"{tool.name} ({tool.version})",
        overlays=sorted(run.overlays, key=lambda o: (o.role != "overlay", o.path)),
        findings=drop_ignored(unique_sorted(findings), settings.ignore),
        timings={k: round(v, 3) for k, v in timings.items()},
    )


@dataclass
class _Run:
    """Builds and checks of one validation, accumulated."""

    files: ManifestFiles
    tool: KustomizeTool
    checker: SchemaChecker
    flagged: set[tuple[str, str]]
    jobs: int | None
    overlays: list[OverlayResult] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    apps: list[tuple[str, str, Document]] = field(default_factory=list)
    done: set[str] = field(default_factory=set)
    skipped: int = 0

    def build(self, directories: Sequence[str], role: str) -> None:
        layout = self.files.layout
        buildable = []
        for directory in directories:
            self.done.add(directory)
            problem = build_blocker(self.files, directory)
            if problem is None:
                buildable.append(directory)
            else:
                self.skipped += 1  # the finding at the broken reference says it better than kustomize would
                k = layout.kustomizations[directory]
                includes = tuple(layout.closure(directory))
                self.overlays.append(OverlayResult(directory, k.file, False, 0, 0.0, includes, problem, role))
        builds = iter_builds(self.tool, layout.root, buildable, jobs=self.jobs)
        for checked in check_overlays(self.files, builds, self.checker, self.flagged):
            result = replace(checked.result, role=role)
            self.overlays.append(result)
            # A base that fails on its own as well adds nothing to its overlays' failures.
            self.findings += [
                _as_base(f) if role == "base" else f
                for f in checked.findings
                if result.built or role == "overlay"
            ]
            self.apps += [(result.path, result.file, o) for o in checked.objects if is_argocd_application(o)]


def _repo_rules(files: ManifestFiles, rendered_apps: list[tuple[str, str, Document]]) -> list[Finding]:
    layout = files.layout
    apps = rendered_apps + [
        (path, path, doc)
        for path in files.yaml_files("Application")
        for doc in files.documents(path)
        if is_argocd_application(doc)
    ]
    return (
        nested_bases(layout)
        + duplicated_content(files)
        + redundant_patches(files)
        + unused_components(layout)
        + argocd_collisions(apps)
        + layout_rules(files)
        + [
            Finding(Severity.ERROR, YAML_REFUSED, path, f"not read or built: {reason}")
            for path, reason in sorted(files.refused.items())
        ]
    )


def check_overlays(
    files: ManifestFiles, builds: Iterable[BuildResult], checker: SchemaChecker, flagged: set[tuple[str, str]]
) -> Iterator[CheckedOverlay]:
    for build in builds:
        log.debug("%s: %s in %.2f s", build.overlay, "built" if build.ok else "failed", build.seconds)
        yield check_overlay(files, build, checker, flagged)


def check_overlay(
    files: ManifestFiles,
    build: BuildResult,
    checker: SchemaChecker,
    flagged: set[tuple[str, str]] | None = None,
) -> CheckedOverlay:
    """The result and findings of one overlay's render (its kustomization files are checked separately)."""
    layout = files.layout
    overlay, file = build.overlay, layout.kustomizations[build.overlay].file
    includes = tuple(layout.closure(overlay))
    if not build.ok:
        failure = Finding(Severity.ERROR, BUILD_FAILED, file, build.error, overlay=overlay)
        return CheckedOverlay(
            OverlayResult(overlay, file, False, 0, build.seconds, includes, build.error), [failure], []
        )
    try:
        docs = [d for d in validate_yaml.load_all(build.output) if isinstance(d, dict)]
    except validate_yaml.YAMLError as err:
        message = f"the render is not valid YAML ({validate_yaml.describe_error(err)})"
        failure = Finding(Severity.ERROR, BUILD_FAILED, file, message, overlay=overlay)
        return CheckedOverlay(
            OverlayResult(overlay, file, False, 0, build.seconds, includes, message), [failure], []
        )
    findings = check_rendered(files, overlay, docs, checker, flagged or set()) + engine_objects(
        files, overlay, docs
    )
    return CheckedOverlay(
        OverlayResult(overlay, file, True, len(docs), build.seconds, includes), findings, docs
    )


def _as_base(finding: Finding) -> Finding:
    """A base built on its own may lack what every overlay adds (a selector from `labels`, say)."""
    if finding.rule != SCHEMA_MISSING_FIELD or finding.severity is not Severity.ERROR:
        return finding
    message = f"{finding.message} (building the base on its own; its overlays may add it)"
    return replace(finding, severity=Severity.WARNING, message=message)


def guarded_builds(
    tool: KustomizeTool, files: ManifestFiles, overlays: Sequence[str], jobs: int | None
) -> dict[str, BuildResult]:
    """Build the overlays that are safe to build; the others fail with the reason (review's both sides)."""
    blocked = {o: problem for o in overlays if (problem := build_blocker(files, o)) is not None}
    builds = {o: BuildResult(o, False, "", f"not built: {p}", 0.0) for o, p in blocked.items()}
    safe = [o for o in overlays if o not in blocked]
    builds.update({r.overlay: r for r in iter_builds(tool, files.layout.root, safe, jobs=jobs)})
    return builds


def closure_findings(layout: RepoLayout, overlay: str) -> list[Finding]:
    """File-level findings of the kustomizations an overlay includes."""
    return [f for d in layout.closure(overlay) for f in check_kustomization(layout, layout.kustomizations[d])]


def repo_root(path: Path) -> Path:
    if not path.is_dir():
        raise ConfigurationError(f"{path}: no such directory; give the manifest repo's path")
    return path.resolve()


@contextmanager
def timed(timings: dict[str, float], key: str) -> Iterator[None]:
    """Add the seconds the block takes to `timings[key]` (review and validate report where time went)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[key] = timings.get(key, 0.0) + time.perf_counter() - start
