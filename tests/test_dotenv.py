"""GitLab dotenv reports: required variables always, optional ones within GitLab's 5 KB."""

from __future__ import annotations

import logging

import pytest

from gitops_ci import logs
from gitops_ci.dotenv import MAX_BYTES, MAX_VARIABLES, render_dotenv
from gitops_ci.errors import ConfigurationError


def test_optional_variables_fill_the_budget_in_order_and_the_rest_is_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    required = {"GITOPS_STATUS": "pushed"}
    optional = {f"GITOPS_IMAGE_APP{i:03}_PROD": "r.example.com/shop/app:" + "9" * 60 for i in range(100)}
    logger = logs.get_logger("gitops_ci.dotenv")
    logger.addHandler(caplog.handler)
    try:
        text = render_dotenv(required, optional, max_variables=0)
    finally:
        logger.removeHandler(caplog.handler)
    lines = text.splitlines()
    assert lines[0] == "GITOPS_STATUS=pushed"
    kept = [line.split("=", 1)[0] for line in lines[1:]]
    assert kept == list(optional)[: len(kept)] and 0 < len(kept) < len(optional)
    assert len(text.encode()) <= MAX_BYTES
    (warning,) = {r.getMessage() for r in caplog.records if r.levelno == logging.WARNING}
    assert f"{len(optional) - len(kept)} variable(s) left out" in warning
    assert f"instance's): GITOPS_IMAGE_APP{len(kept):03}_PROD, " in warning


def test_the_variable_count_limit_keeps_the_required_ones_first(caplog: pytest.LogCaptureFixture) -> None:
    """GitLab refuses a report of more than `dotenv_variables` (20 on self-managed) variables outright."""
    required = {f"GITOPS_R{i}": "x" for i in range(7)}
    optional = {f"GITOPS_IMAGE_ENV{i}": "r.example.com/app:1" for i in range(30)}
    logger = logs.get_logger("gitops_ci.dotenv")
    logger.addHandler(caplog.handler)
    try:
        text = render_dotenv(required, optional)
        unlimited = render_dotenv(required, optional, max_variables=0)
    finally:
        logger.removeHandler(caplog.handler)
    keys = [line.split("=", 1)[0] for line in text.splitlines()]
    assert len(keys) == MAX_VARIABLES == 20
    assert keys == [*required, *list(optional)[:13]]
    assert len(unlimited.splitlines()) == 37
    warning = next(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "17 variable(s) left out" in warning and "GITOPS_IMAGE_ENV13" in warning


def test_a_report_over_the_limits_never_fails_the_job_whose_change_landed() -> None:
    text = render_dotenv({"GITOPS_STATUS": "pushed", "GITOPS_CHANGED_FILES": "x" * MAX_BYTES})
    assert text == "GITOPS_STATUS=pushed\n"


def test_the_limits_follow_the_instance() -> None:
    values = {f"GITOPS_V{i}": "y" * 100 for i in range(60)}
    assert len(render_dotenv(values, max_variables=50, max_bytes=0).splitlines()) == 50
    assert len(render_dotenv(values, max_variables=0, max_bytes=1000).splitlines()) == 9


def test_an_invalid_key_is_a_bug_of_ours() -> None:
    with pytest.raises(ConfigurationError, match="not a valid variable name"):
        render_dotenv({"9LIVES": "x"})


def test_a_value_gitlab_would_refuse_is_left_out() -> None:
    assert (
        render_dotenv({"GITOPS_STATUS": "pushed"}, {"GITOPS_MESSAGE": "two\nlines"})
        == "GITOPS_STATUS=pushed\n"
    )


def test_a_secret_is_never_written() -> None:
    logs.register_secret("glpat-very-secret-token")
    text = render_dotenv({"GITOPS_STATUS": "pushed", "GITOPS_REPO_URL": "https://x/glpat-very-secret-token"})
    assert text == "GITOPS_STATUS=pushed\n"
