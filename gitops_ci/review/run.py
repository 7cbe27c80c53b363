"""`gitops-ci review`: for a manifest-repo MR, what each changed overlay renders before and after, posted as
one MR note that re-runs edit in place.

Steps: resolve the merge base; list the changed paths; write the base tree to a temporary directory; find
the overlays that read a changed path, at the base or at the head (directly, or through a base or component
they include); build both sides; diff, collect image changes, validate the head; post or print the note.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gitops_ci import logs
from gitops_ci.errors import ConfigurationError
from gitops_ci.manifest_repo.credentials import Credentials, resolve_credentials
from gitops_ci.manifest_repo.git_checkout import ReviewCheckout
from gitops_ci.manifest_repo.gitlab import GitLabClient
from gitops_ci.manifest_repo.gitlab_connection import GITLAB_URL_OPTION, GitLabConnection
from gitops_ci.naming import SETTINGS_FILE, check_http_url, check_project_path, check_revision
from gitops_ci.review import DEFAULT_MAX_DIFF_LINES
from gitops_ci.review.diff import Render, diff_renders, image_changes, render_from_output
from gitops_ci.review.note import OverlayReview, app_and_env, is_review_note, render_note
from gitops_ci.validate.build import DEFAULT_TIMEOUT, BuildResult, KustomizeTool, find_tool
from gitops_ci.validate.findings import unique_sorted
from gitops_ci.validate.objects import ManifestFiles
from gitops_ci.validate.repo import RepoLayout, disk_reader, layout_of
from gitops_ci.validate.run import check_overlay, closure_findings, guarded_builds, timed
from gitops_ci.validate.schema import SchemaChecker

_JOB_SECRETS = ("CI_JOB_TOKEN", "GITOPS_TOKEN", "GITLAB_TOKEN", "CI_REGISTRY_PASSWORD", "GITOPS_PASSWORD")

log = logs.get_logger(__name__)
_LAYOUT_DIRS = ("clusters/", ".gitlab/agents/")  # what init and new-app write beside gitops-ci.yaml


@dataclass(frozen=True, kw_only=True)
class ReviewSettings:
    path: Path = Path()
    base: str | None = None  # CI_MERGE_REQUEST_DIFF_BASE_SHA
    gitlab_url: str | None = None  # CI_SERVER_URL
    project: str | None = None  # CI_PROJECT_PATH
    mr: int | None = None  # CI_MERGE_REQUEST_IID
    ca_file: str | None = None
    dry_run: bool = False
    kustomize: str | None = None
    build_options: tuple[str, ...] = ()
    build_timeout: float = DEFAULT_TIMEOUT
    jobs: int | None = None
    max_diff_lines: int = DEFAULT_MAX_DIFF_LINES


@dataclass(frozen=True)
class ReviewResult:
    base: str
    head: str
    changed_files: list[str]
    reviews: list[OverlayReview]
    unchanged: list[str]
    note: str
    action: str  # printed, created, updated, unchanged, skipped (no overlay changes and no note yet)
    note_id: int | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return sum(len(r.errors) + (r.after.present and not r.after.ok) for r in self.reviews)


def review(settings: ReviewSettings) -> ReviewResult:
    if not settings.base:
        raise ConfigurationError(
            "no base to compare with: pass --base (a branch or commit), or run in a merge request pipeline "
            "(CI_MERGE_REQUEST_DIFF_BASE_SHA)"
        )
    check_revision(settings.base, "--base")
    credentials = resolve_credentials()
    client = None if settings.dry_run else _client(settings, credentials)  # bad settings fail before a build
    checkout = ReviewCheckout(settings.path)
    head = checkout.commit("HEAD")
    base = checkout.merge_base(checkout.commit(settings.base), head)
    changed = checkout.changed_paths(base)
    timings: dict[str, float] = {}
    key = _fingerprint_key(credentials)
    reviews, unchanged = _render_changes(checkout, base, head, changed, settings, timings, key)
    laid_out = checkout.holds(head, SETTINGS_FILE) or SETTINGS_FILE in changed  # by gitops-ci init
    layout = [p for p in changed if laid_out and (p == SETTINGS_FILE or p.startswith(_LAYOUT_DIRS))]
    note = _masked(
        render_note(reviews, unchanged, base=base, head=head, changed_files=len(changed), layout=layout)
    )
    action, note_id = "printed", None
    if client is not None and settings.mr is not None:
        action, note_id = _post(client, settings.mr, note, bool(reviews or layout))
    rounded = {k: round(v, 3) for k, v in timings.items()}
    return ReviewResult(base, head, changed, reviews, unchanged, note, action, note_id, rounded)


def _render_changes(
    checkout: ReviewCheckout,
    base: str,
    head: str,
    changed: list[str],
    settings: ReviewSettings,
    timings: dict[str, float],
    key: bytes,
) -> tuple[list[OverlayReview], list[str]]:
    tool = find_tool(settings.kustomize, settings.build_options, settings.build_timeout)
    with tempfile.TemporaryDirectory(prefix="gitops-ci-review-") as scratch:
        with timed(timings, "discover_s"):
            # The head as committed: a file of the job's checkout that the merge request does not hold (an
            # earlier job's artifact, a cache) is no reference target, so no build reads it into the note.
            head_files, head_links = checkout.list_files(head)
            after = layout_of(checkout.root, head_files, None, disk_reader(checkout.root), links=head_links)
            # The base tree differs from the head only in the changed paths: list it, read only those.
            changed_paths = set(changed)
            files, links = checkout.list_files(base)  # a base symlink is followed only inside the repo
            before = layout_of(
                Path(scratch) / "base",
                files,
                None,
                lambda path: checkout.read_file(base, path),
                reuse=after,
                unchanged=lambda path: path not in changed_paths,
                links=links,
            )
            affected = sorted(set(after.affected_overlays(changed)) | set(before.affected_overlays(changed)))
        log.info("%d changed files; %d overlays to render", len(changed), len(affected))
        with timed(timings, "build_and_diff_s"):
            return _review_overlays(tool, checkout, base, before, after, affected, settings, timings, key)


def _masked(note: str) -> str:
    """The note without any token this job holds: a render is repo content, and kustomize reads what the
    repo points it at inside the checkout (the runner's clone keeps CI_JOB_TOKEN in .git/config)."""
    for name in _JOB_SECRETS:
        logs.register_secret(os.environ.get(name))
    return logs.mask(note)


def _post(client: GitLabClient, mr: int, note: str, changes: bool) -> tuple[str, int | None]:
    """Edit our note (the oldest with the marker written by the token's user), or create one if there is
    something to say. A marked note by anyone else (a quote, another bot) is never edited."""
    me = client.current_user_id()
    ours = [n for n in client.merge_request_notes(mr) if n.author_id == me and is_review_note(n.body)]
    if not ours:
        return ("created", client.upsert_note(mr, note, None)) if changes else ("skipped", None)
    oldest = min(ours, key=lambda n: n.id)
    if oldest.body == note:
        return "unchanged", oldest.id
    return "updated", client.upsert_note(mr, note, oldest.id)


def _review_overlays(
    tool: KustomizeTool,
    checkout: ReviewCheckout,
    base: str,
    before: RepoLayout,
    after: RepoLayout,
    affected: Sequence[str],
    settings: ReviewSettings,
    timings: dict[str, float],
    key: bytes,
) -> tuple[list[OverlayReview], list[str]]:
    old_builds = _build_base(tool, checkout, base, before, affected, settings.jobs, timings)
    files, checker = ManifestFiles(after), SchemaChecker()
    present = [o for o in affected if o in after.kustomizations]
    new_builds = guarded_builds(tool, files, present, settings.jobs)
    reviews, unchanged = [], []
    for overlay in affected:
        old, new = _render(old_builds.get(overlay), key), _render(new_builds.get(overlay), key)
        if old.ok and new.ok and old.present == new.present and old.text == new.text:
            unchanged.append(overlay)
            continue
        findings = []
        if overlay in new_builds:
            findings = (
                closure_findings(after, overlay) + check_overlay(files, new_builds[overlay], checker).findings
            )
        app, env = app_and_env(overlay)
        diff = diff_renders(overlay, old, new, settings.max_diff_lines)
        reviews.append(
            OverlayReview(overlay, app, env, old, new, diff, image_changes(old, new), unique_sorted(findings))
        )
    return reviews, unchanged


def _build_base(
    tool: KustomizeTool,
    checkout: ReviewCheckout,
    base: str,
    before: RepoLayout,
    affected: Sequence[str],
    jobs: int | None,
    timings: dict[str, float],
) -> dict[str, BuildResult]:
    """Build the affected overlays at the base from an export of only what they read; when one fails,
    export the whole tree and build it again (kustomize may read a file no kustomization names)."""
    overlays = [o for o in affected if o in before.kustomizations]
    if not overlays:
        return {}
    needed = set().union(*(before.read_paths(o) for o in overlays))
    with timed(timings, "export_base_s"):
        checkout.export(base, before.root, [f for f in before.files if _under(f, needed)])
    builds = guarded_builds(tool, ManifestFiles(before), overlays, jobs)
    failed = [o for o, b in builds.items() if not b.ok]
    if failed:
        log.info("%d base builds failed with a partial export; exporting the whole base tree", len(failed))
        with timed(timings, "export_base_s"):
            checkout.export(base, before.root)
        builds.update(guarded_builds(tool, ManifestFiles(before), failed, jobs))
    return builds


def _under(path: str, paths: set[str]) -> bool:
    while True:
        if path in paths:
            return True
        if "/" not in path:
            return "." in paths
        path = path.rpartition("/")[0]


def _render(build: BuildResult | None, key: bytes) -> Render:
    if build is None:
        return Render(present=False)
    if not build.ok:
        return Render(True, False, error=build.error)
    return render_from_output(build.output, key)


def _fingerprint_key(credentials: Credentials | None) -> bytes:
    """What the note's Secret fingerprints are keyed with: derived from the job's credential (GITOPS_TOKEN
    when the note is posted), so that a re-run shows the same fingerprints (and edits nothing) while no
    reader of the note can test a guess against one; a random key when there is none. A new token changes
    every fingerprint once."""
    if credentials is None:
        return os.urandom(32)
    return hashlib.sha256(b"gitops-ci review fingerprints\0" + credentials.token.encode()).digest()


def _client(settings: ReviewSettings, credentials: Credentials | None) -> GitLabClient:
    missing = [
        option
        for option, value in (
            ("--gitlab-url (CI_SERVER_URL)", settings.gitlab_url),
            ("--project (CI_PROJECT_PATH)", settings.project),
            ("--mr (CI_MERGE_REQUEST_IID)", settings.mr),
        )
        if not value
    ]
    if missing:
        raise ConfigurationError(
            f"set {', '.join(missing)} to post the review note (or use --dry-run to print it)"
        )
    check_http_url(str(settings.gitlab_url), GITLAB_URL_OPTION)
    check_project_path(str(settings.project), "--project (CI_PROJECT_PATH)")
    if credentials is None or credentials.variable == "CI_JOB_TOKEN":
        raise ConfigurationError(
            "posting a merge request note needs GITOPS_TOKEN: a project or group access token with the "
            "api scope (CI_JOB_TOKEN cannot write notes)"
        )
    connection = GitLabConnection(
        str(settings.gitlab_url).rstrip("/"),
        str(settings.project),
        credentials.token,
        credentials.variable,
        settings.ca_file,
    )
    return GitLabClient(connection)
