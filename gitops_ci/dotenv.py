"""GitLab dotenv reports for later jobs: KEY=value lines, no secrets, at most 5 KB (GitLab's limit)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from gitops_ci import logs
from gitops_ci.errors import ConfigurationError, OperationalError

log = logs.get_logger(__name__)
MAX_BYTES = 5 * 1024
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def env_key(name: str) -> str:
    """`staging-eu` → `STAGING_EU`, for per-environment variable names."""
    return re.sub(r"[^A-Za-z0-9_]", "_", name).upper()


def render_dotenv(values: Mapping[str, str], optional: Mapping[str, str] | None = None) -> str:
    """`values` always; `optional` ones in order while the report stays within GitLab's 5 KB (a warning
    names how many were left out: the change has landed by now, so a big report must not fail the job)."""
    lines = [_line(key, value) for key, value in values.items()]
    size = sum(len(line.encode()) for line in lines)
    if size > MAX_BYTES:
        raise ConfigurationError(f"dotenv report would be {size} bytes; GitLab accepts at most 5 KB")
    left_out = []
    for key, value in (optional or {}).items():
        line = _line(key, value)
        if size + len(line.encode()) <= MAX_BYTES:
            lines.append(line)
            size += len(line.encode())
        else:
            left_out.append(key)
    if left_out:
        log.warning(
            "dotenv report: %d variables left out to stay within GitLab's 5 KB (first: %s); "
            "--format json prints them all",
            len(left_out),
            left_out[0],
        )
    return "".join(lines)


def _line(key: str, value: str) -> str:
    if not _KEY.fullmatch(key):
        raise ConfigurationError(f"dotenv key {key!r} is not a valid variable name")
    if "\n" in value or "\r" in value:
        raise ConfigurationError(f"dotenv value of {key} spans lines; GitLab dotenv reports cannot hold that")
    if logs.mask(value) != value:
        raise ConfigurationError(f"dotenv value of {key} contains a secret; refusing to write it")
    return f"{key}={value}\n"


def write_dotenv(path: Path, values: Mapping[str, str], optional: Mapping[str, str] | None = None) -> None:
    text = render_dotenv(values, optional)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as err:
        raise OperationalError(f"{path}: cannot write the dotenv report: {err.strerror}") from None
