"""Contract tests of the GitLab REST contract server, driven only through python-gitlab.

What is checked is what docs.gitlab.com documents (api/merge_requests.md, api/notes.md,
api/projects.md, api/rest/_index.md) and what python-gitlab makes of it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gitlab
import pytest
from gitlab.v4.objects import Project, ProjectMergeRequest

from servers.gitlab_api import GitLabContractServer

if TYPE_CHECKING:  # imported by pytest_plugins below; importing it here first would skip assert rewriting
    from servers.gitlab_fixtures import GitLabProject

    MakeProject = Callable[..., GitLabProject]
    App = tuple[GitLabProject, Project]

pytest_plugins = ["servers.gitlab_fixtures"]
pytestmark = pytest.mark.integration
KUSTOMIZATION = "overlays/prod/kustomization.yaml"
BASE_FILES = {KUSTOMIZATION: "images:\n- name: app\n  newTag: v1\n", "README.md": "hi\n"}


def client(
    server: GitLabContractServer,
    *,
    private_token: str | None = None,
    oauth_token: str | None = None,
    job_token: str | None = None,
) -> gitlab.Gitlab:
    return gitlab.Gitlab(
        server.url,
        private_token=private_token,
        oauth_token=oauth_token,
        job_token=job_token,
        retry_transient_errors=False,
        timeout=10,
    )


def message(error: gitlab.GitlabError) -> Any:
    """The decoded ``message``/``error`` of the answer (a list for validation errors)."""
    return error.error_message


def bump(tag: str) -> dict[str, str]:
    return {KUSTOMIZATION: f"images:\n- name: app\n  newTag: {tag}\n"}


def poll_until(
    project: Project, iid: int, done: Callable[[ProjectMergeRequest], bool], max_polls: int = 10
) -> ProjectMergeRequest:
    """GET the merge request until ``done`` holds, as a client waiting for GitLab would."""
    for _ in range(max_polls):
        mr = project.mergerequests.get(iid)
        if done(mr):
            return mr
    raise AssertionError(f"merge request !{iid} never reached the expected state")


def open_mr(project: Project, source: str, **extra: Any) -> ProjectMergeRequest:
    return project.mergerequests.create(
        {"source_branch": source, "target_branch": "main", "title": f"Deploy {source}", **extra}
    )


@pytest.fixture
def app(gitlab_api: GitLabContractServer, gitlab_token: str, gitlab_project: MakeProject) -> App:
    """``group/sub/app`` with a ``deploy-v2`` branch that bumps the image tag, and its API view."""
    repo = gitlab_project("group/sub/app", BASE_FILES)
    repo.commit("deploy-v2", bump("v2"), base="main", message="Deploy v2\n")
    return repo, client(gitlab_api, private_token=gitlab_token).projects.get(repo.path)


def test_get_project_by_url_encoded_path_and_by_id(
    gitlab_api: GitLabContractServer, gitlab_token: str, gitlab_project: MakeProject
) -> None:
    repo = gitlab_project("group/sub/app", BASE_FILES, has_pipelines=True)
    gl = client(gitlab_api, private_token=gitlab_token)

    by_path = gl.projects.get("group/sub/app")
    by_id = gl.projects.get(repo.id)

    assert by_path.id == by_id.id == repo.id
    assert by_path.path_with_namespace == "group/sub/app"
    assert by_path.default_branch == "main"
    assert by_path.http_url_to_repo.endswith("/group/sub/app.git")
    assert gitlab_api.calls[0].path == "/api/v4/projects/group%2Fsub%2Fapp"
    branch = by_path.branches.get("main")
    assert branch.commit["id"] == repo.branch_sha("main")
    assert branch.default is True


def test_unknown_project_and_branch_are_404(
    app: App, gitlab_api: GitLabContractServer, gitlab_token: str
) -> None:
    _, project = app
    gl = client(gitlab_api, private_token=gitlab_token)

    with pytest.raises(gitlab.GitlabGetError) as missing_project:
        gl.projects.get("group/nope")
    with pytest.raises(gitlab.GitlabGetError) as missing_branch:
        project.branches.get("feature/nope")

    assert missing_project.value.response_code == 404
    assert missing_project.value.error_message == "404 Project Not Found"
    assert missing_branch.value.response_code == 404
    assert missing_branch.value.error_message == "404 Branch Not Found"


def test_bad_token_is_401_and_no_token_is_ever_recorded(app: App, gitlab_api: GitLabContractServer) -> None:
    gl = client(gitlab_api, private_token="glpat-wrong")

    with pytest.raises(gitlab.GitlabAuthenticationError) as bad:
        gl.projects.get("group/sub/app")
    with pytest.raises(gitlab.GitlabAuthenticationError):
        client(gitlab_api, oauth_token="also-wrong").auth()

    assert bad.value.response_code == 401
    assert bad.value.error_message == "401 Unauthorized"
    assert "glpat-wrong" not in repr(gitlab_api.calls)
    assert "glpat-contract" not in repr(gitlab_api.calls)


def test_bearer_token_and_users_endpoints(gitlab_api: GitLabContractServer, gitlab_token: str) -> None:
    gl = client(gitlab_api, oauth_token=gitlab_token)  # sent as "Authorization: Bearer <t>"

    gl.auth()
    found = gl.users.list(username="ci-bot")

    assert gl.user is not None and gl.user.username == "ci-bot"
    assert [user.username for user in found] == ["ci-bot"]


def test_read_api_scope_cannot_create_merge_request(app: App, gitlab_api: GitLabContractServer) -> None:
    gitlab_api.add_token("glpat-reader", username="reader", scopes=("read_api",))
    project = client(gitlab_api, private_token="glpat-reader").projects.get("group/sub/app")

    with pytest.raises(gitlab.GitlabCreateError) as refused:
        open_mr(project, "deploy-v2")

    assert refused.value.response_code == 403
    assert refused.value.error_message == "insufficient_scope"
    assert gitlab_api.merge_requests("group/sub/app") == []


def test_job_token_reads_its_project_but_cannot_create_mr_or_note(
    app: App, gitlab_api: GitLabContractServer
) -> None:
    _, owner_view = app
    existing = open_mr(owner_view, "deploy-v2")
    gitlab_api.add_job_token("job-123", project="group/sub/app")
    project = client(gitlab_api, job_token="job-123").projects.get("group/sub/app")

    listed = project.mergerequests.list(state="opened")
    with pytest.raises(gitlab.GitlabCreateError) as mr_refused:
        open_mr(project, "deploy-v2", title="again")
    with pytest.raises(gitlab.GitlabCreateError) as note_refused:
        project.mergerequests.get(existing.iid, lazy=True).notes.create({"body": "from CI"})

    assert [mr.iid for mr in listed] == [existing.iid]
    assert mr_refused.value.response_code == 403
    assert note_refused.value.response_code == 403
    assert gitlab_api.notes("group/sub/app", existing.iid) == []


def test_create_merge_request_is_201_with_documented_fields(
    app: App, gitlab_api: GitLabContractServer
) -> None:
    repo, project = app

    mr = open_mr(
        project, "deploy-v2", description="bump", labels=["gitops", "prod"], remove_source_branch=True
    )

    assert (mr.iid, mr.state, mr.project_id) == (1, "opened", repo.id)
    assert mr.sha == repo.branch_sha("deploy-v2")
    assert (mr.merge_status, mr.detailed_merge_status, mr.has_conflicts) == ("unchecked", "checking", False)
    assert mr.labels == ["gitops", "prod"]
    assert mr.force_remove_source_branch is True
    assert mr.author["username"] == "ci-bot"
    assert mr.references == {"short": "!1", "relative": "!1", "full": "group/sub/app!1"}
    assert mr.web_url.endswith("/group/sub/app/-/merge_requests/1")
    assert mr.head_pipeline is None and mr.merged_at is None and mr.merge_commit_sha is None
    create = [call for call in gitlab_api.calls if call.method == "POST"]
    assert create[0].body["source_branch"] == "deploy-v2"


def test_duplicate_merge_request_is_409_and_bad_branches_are_4xx(app: App) -> None:
    _, project = app
    first = open_mr(project, "deploy-v2")

    with pytest.raises(gitlab.GitlabCreateError) as duplicate:
        open_mr(project, "deploy-v2", title="Again")
    with pytest.raises(gitlab.GitlabCreateError) as no_branch:
        open_mr(project, "no-such-branch")
    with pytest.raises(gitlab.GitlabCreateError) as no_title:
        project.mergerequests.create({"source_branch": "deploy-v2", "target_branch": "main", "title": ""})

    assert duplicate.value.response_code == 409
    assert message(duplicate.value) == [
        f"Another open merge request already exists for this source branch: !{first.iid}"
    ]
    assert no_branch.value.response_code == 422
    assert message(no_branch.value) == ['Source branch "no-such-branch" does not exist']
    assert no_title.value.response_code == 400
    assert no_title.value.error_message == "title is missing"


def test_list_filters_and_pagination(app: App) -> None:
    repo, project = app
    repo.commit("deploy-v3", bump("v3"), base="main")
    first, second = open_mr(project, "deploy-v2", labels="prod"), open_mr(project, "deploy-v3")

    by_source = project.mergerequests.list(source_branch="deploy-v3", state="opened")
    by_label = project.mergerequests.list(labels=["prod"])
    page = project.mergerequests.list(iterator=True, per_page=1)
    everything = project.mergerequests.list(per_page=1, get_all=True)

    assert [mr.iid for mr in by_source] == [second.iid]
    assert [mr.iid for mr in by_label] == [first.iid]
    assert (page.total, page.total_pages, page.per_page, page.next_page) == (2, 2, 1, 2)
    assert [mr.iid for mr in everything] == [second.iid, first.iid]  # newest first by default


def test_update_title_description_labels_and_state(app: App) -> None:
    _, project = app
    mr = open_mr(project, "deploy-v2", labels=["gitops"])

    mr.title = "Deploy v2 to prod"
    mr.description = "updated by CI"
    mr.save()
    project.mergerequests.update(mr.iid, {"add_labels": "prod", "remove_source_branch": True})
    closed = project.mergerequests.update(mr.iid, {"state_event": "close"})
    reopened = project.mergerequests.update(mr.iid, {"state_event": "reopen"})

    fresh = project.mergerequests.get(mr.iid)
    assert (fresh.title, fresh.description) == ("Deploy v2 to prod", "updated by CI")
    assert fresh.labels == ["gitops", "prod"]
    assert fresh.force_remove_source_branch is True
    assert closed["state"] == "closed" and closed["detailed_merge_status"] == "not_open"
    assert reopened["state"] == "opened"
    with pytest.raises(gitlab.GitlabUpdateError) as empty:
        project.mergerequests.update(mr.iid, {})
    assert empty.value.response_code == 400


def test_merge_while_checking_is_405_then_real_merge_in_bare_repo(app: App) -> None:
    repo, project = app
    mr = open_mr(project, "deploy-v2")
    old_main = repo.branch_sha("main")

    with pytest.raises(gitlab.GitlabMRClosedError) as checking:
        mr.merge()
    ready = poll_until(project, mr.iid, lambda m: m.detailed_merge_status == "mergeable")
    ready.merge(should_remove_source_branch=True)

    assert checking.value.response_code == 405
    assert ready.state == "merged" and ready.merged_at is not None
    assert ready.merge_commit_sha == repo.branch_sha("main")
    merge_parents = repo.repo.run("rev-list", "--parents", "-n", "1", "main").stdout.split()[1:]
    assert merge_parents == [old_main, mr.sha]
    assert repo.read("main", KUSTOMIZATION) == bump("v2")[KUSTOMIZATION]
    assert repo.branch_sha("deploy-v2") is None  # source branch removed as requested


def test_squash_merge_and_sha_guard(app: App) -> None:
    repo, project = app
    repo.commit("deploy-v2", {"README.md": "second commit\n"})
    mr = open_mr(project, "deploy-v2")
    poll_until(project, mr.iid, lambda m: m.detailed_merge_status == "mergeable")

    with pytest.raises(gitlab.GitlabMRClosedError) as stale:
        mr.merge(sha="0" * 40)
    mr.merge(squash=True, squash_commit_message="Deploy v2 (squashed)\n")

    assert stale.value.response_code == 409
    assert mr.squash_commit_sha is not None and mr.merge_commit_sha == repo.branch_sha("main")
    subject = repo.repo.run("log", "-1", "--format=%s", mr.squash_commit_sha).stdout.strip()
    assert subject == "Deploy v2 (squashed)"
    assert repo.read("main", "README.md") == "second commit\n"


def test_auto_merge_waits_for_the_pipeline(
    gitlab_api: GitLabContractServer, gitlab_token: str, gitlab_project: MakeProject
) -> None:
    repo = gitlab_project("group/sub/app", BASE_FILES, has_pipelines=True)
    gitlab_api.set_pipeline(repo.id, polls_until_done=2, final_status="success")
    repo.commit("deploy-v2", bump("v2"), base="main")
    project = client(gitlab_api, private_token=gitlab_token).projects.get(repo.id)
    mr = open_mr(project, "deploy-v2")

    mr.merge(merge_when_pipeline_succeeds=True)
    seen = [project.mergerequests.get(mr.iid) for _ in range(2)]
    merged = poll_until(project, mr.iid, lambda m: m.state == "merged", max_polls=3)

    assert mr.state == "opened" and mr.merge_when_pipeline_succeeds is True
    assert mr.head_pipeline["status"] == "running" and mr.head_pipeline["sha"] == mr.sha
    assert [m.detailed_merge_status for m in seen] == ["checking", "ci_still_running"]
    assert merged.head_pipeline["status"] == "success"
    assert repo.read("main", KUSTOMIZATION) == bump("v2")[KUSTOMIZATION]


def test_failed_pipeline_blocks_merge(
    gitlab_api: GitLabContractServer, gitlab_token: str, gitlab_project: MakeProject
) -> None:
    repo = gitlab_project(
        "group/sub/app", BASE_FILES, has_pipelines=True, pipeline_polls=0, pipeline_final_status="failed"
    )
    repo.commit("deploy-v2", bump("v2"), base="main")
    project = client(gitlab_api, private_token=gitlab_token).projects.get(repo.path)
    mr = open_mr(project, "deploy-v2")

    blocked = poll_until(project, mr.iid, lambda m: m.detailed_merge_status != "checking")
    with pytest.raises(gitlab.GitlabMRClosedError) as refused:
        blocked.merge(auto_merge=True)

    assert blocked.detailed_merge_status == "ci_must_pass"
    assert blocked.head_pipeline["status"] == "failed"
    assert refused.value.response_code == 405
    assert repo.read("main", "README.md") == "hi\n"
    assert gitlab_api.merge_requests(repo.id)[0]["state"] == "opened"


def test_source_push_restarts_checks_and_pipeline(
    gitlab_api: GitLabContractServer, gitlab_token: str, gitlab_project: MakeProject
) -> None:
    repo = gitlab_project("group/sub/app", BASE_FILES, has_pipelines=True, pipeline_polls=0)
    repo.commit("deploy-v2", bump("v2"), base="main")
    project = client(gitlab_api, private_token=gitlab_token).projects.get(repo.id)
    mr = open_mr(project, "deploy-v2")
    before = poll_until(project, mr.iid, lambda m: m.detailed_merge_status == "mergeable")

    pushed = repo.commit("deploy-v2", bump("v3"))
    after = project.mergerequests.get(mr.iid)

    assert after.sha == pushed != before.sha
    assert after.detailed_merge_status == "checking"
    assert after.head_pipeline["sha"] == pushed and after.head_pipeline["id"] != before.head_pipeline["id"]


def test_notes_create_list_get_and_update(app: App, gitlab_api: GitLabContractServer) -> None:
    _, project = app
    mr = open_mr(project, "deploy-v2")

    first = mr.notes.create({"body": "Rendered diff: 1 file"})
    second = mr.notes.create({"body": "Sync pending"})
    second.body = "Synced to prod"
    second.save()
    newest_first = mr.notes.list(get_all=True)
    oldest_first = mr.notes.list(sort="asc", order_by="created_at", get_all=True)
    single = mr.notes.get(first.id)

    assert [n.id for n in newest_first] == [second.id, first.id]
    assert [n.body for n in oldest_first] == ["Rendered diff: 1 file", "Synced to prod"]
    assert (single.noteable_type, single.noteable_iid, single.system) == ("MergeRequest", mr.iid, False)
    assert single.author["username"] == "ci-bot"
    assert [n["body"] for n in gitlab_api.notes("group/sub/app", mr.iid)] == [
        "Rendered diff: 1 file",
        "Synced to prod",
    ]
    assert project.mergerequests.get(mr.iid).user_notes_count == 2


def test_conflicting_merge_request_reports_conflict(app: App) -> None:
    repo, project = app
    mr = open_mr(project, "deploy-v2")
    repo.commit("main", bump("v9"), message="Hotfix on main\n")  # same line, different value

    conflicted = poll_until(project, mr.iid, lambda m: m.detailed_merge_status != "checking")
    with pytest.raises(gitlab.GitlabMRClosedError) as refused:
        conflicted.merge()

    assert conflicted.detailed_merge_status == "conflict"
    assert conflicted.merge_status == "cannot_be_merged" and conflicted.has_conflicts is True
    assert refused.value.response_code == 405
    assert repo.read("main", KUSTOMIZATION) == bump("v9")[KUSTOMIZATION]


def test_unknown_route_is_404_and_wrong_method_is_405(
    app: App, gitlab_api: GitLabContractServer, gitlab_token: str
) -> None:
    gl = client(gitlab_api, private_token=gitlab_token)

    with pytest.raises(gitlab.GitlabHttpError) as unknown:
        gl.http_get("/projects/1/no_such_thing")
    with pytest.raises(gitlab.GitlabHttpError) as wrong_method:
        gl.http_delete("/projects/1/merge_requests")

    assert (unknown.value.response_code, unknown.value.error_message) == (404, "404 Not Found")
    assert wrong_method.value.response_code == 405
