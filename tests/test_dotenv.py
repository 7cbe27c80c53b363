"""GitLab dotenv reports: required variables always, optional ones within GitLab's 5 KB."""

from __future__ import annotations

import logging

import pytest

from gitops_ci import logs
from gitops_ci.dotenv import MAX_BYTES, render_dotenv
from gitops_ci.errors import ConfigurationError


def test_optional_variables_fill_the_budget_in_order_and_the_rest_is_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    required = {"GITOPS_STATUS": "pushed"}
    optional = {f"GITOPS_IMAGE_APP{i:03}_PROD": "r.example.com/shop/app:" + "9" * 60 for i in range(100)}
    logger = logs.get_logger("gitops_ci.dotenv")
    logger.addHandler(caplog.handler)
    try:
        text = render_dotenv(required, optional)
    finally:
        logger.removeHandler(caplog.handler)
    lines = text.splitlines()
    assert lines[0] == "GITOPS_STATUS=pushed"
    kept = [line.split("=", 1)[0] for line in lines[1:]]
    assert kept == list(optional)[: len(kept)] and 0 < len(kept) < len(optional)
    assert len(text.encode()) <= MAX_BYTES
    (warning,) = {r.getMessage() for r in caplog.records if r.levelno == logging.WARNING}
    assert f"{len(optional) - len(kept)} variables left out" in warning
    assert f"(first: GITOPS_IMAGE_APP{len(kept):03}_PROD)" in warning


def test_required_variables_over_the_limit_are_an_error() -> None:
    with pytest.raises(ConfigurationError, match="at most 5 KB"):
        render_dotenv({"GITOPS_CHANGED_FILES": "x" * MAX_BYTES})


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"9LIVES": "x"}, "not a valid variable name"),
        ({"GITOPS_MESSAGE": "two\nlines"}, "spans lines"),
    ],
)
def test_invalid_variables_are_refused(values: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        render_dotenv({}, values)


def test_a_secret_is_never_written() -> None:
    logs.register_secret("glpat-very-secret-token")
    with pytest.raises(ConfigurationError, match="contains a secret"):
        render_dotenv({"GITOPS_REPO_URL": "https://x/glpat-very-secret-token"})
