"""After a commit POST whose answer was lost: did it land? The branch's history says, not its content.

GitLab made the commit, so its SHA is unknown. Every commit that changed the first file since we read it is
listed (Commits API, newest first, down to the file's `last_commit_id` as read); ours is the one with our
message (its trailers name the pipeline) that holds our content in every file. Content alone would not do:
another job may have deployed the same overlay on top of ours, and ours must then be found, not planned
again (which would roll the newer deploy back). A commit of another job with our message and content made
the same change, so reporting it as ours is true of the branch. The author is not compared: git rewrites
some names (a final '.' is dropped).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from gitops_ci.errors import OperationalError
from gitops_ci.manifest_repo.gitlab_rest import GitLabRest

PER_PAGE = 20
MAX_PAGES = 25  # 500 commits changed the overlay since it was read: something pushes in a loop
TextAt = Callable[[str, str], str | None]  # (path, commit) → the file's text there


def find_landed(
    rest: GitLabRest,
    branch: str,
    files: Mapping[str, str],
    message: str,
    read_since: Mapping[str, str | None],
    text_at: TextAt,
) -> str | None:
    """The SHA of our commit on `branch`, or None. `read_since`: each file's last commit when it was read
    (None: the file was created)."""
    path = next((p for p in files if read_since.get(p)), next(iter(files)))
    stop = read_since.get(path)
    for page in range(1, MAX_PAGES + 1):
        params = {"ref_name": branch, "path": path, "per_page": PER_PAGE, "page": page}
        answer = rest.get("/repository/commits", params, what=f"reading the history of {path}")
        if answer.status == 404:
            return None
        records = answer.records("id", "message")
        for record in records:
            if record["id"] == stop:
                return None
            if _ours(record, message) and all(
                text_at(p, str(record["id"])) == text for p, text in files.items()
            ):
                return str(record["id"])
        if len(records) < PER_PAGE or not answer.headers.get("X-Next-Page"):
            return None
    raise OperationalError(
        f"{branch}: more than {MAX_PAGES * PER_PAGE} commits changed {path} since gitops-ci read it, so it "
        "cannot tell whether its commit (whose answer was lost) landed; look at the branch before running "
        "again"
    )


def _ours(record: Mapping[str, object], message: str) -> bool:
    """Our message (the author is not compared: git trims "crud" such as a final '.' from names)."""
    return str(record["message"]).strip() == message.strip()
