"""GitLab dotenv reports for later jobs: KEY=value lines, no secrets, within GitLab's two limits.

GitLab refuses the whole report (HTTP 400, and the job fails) when it has more than `dotenv_variables`
variables (20 by default on self-managed instances; 50-150 on GitLab.com) or more than `dotenv_size` bytes
(5 KB). The report is written after the change has landed, so it never fails the job: the variables later
jobs need come first, the optional ones follow while both limits allow, and one warning names what was left
out.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gitops_ci import logs
from gitops_ci.errors import ConfigurationError, OperationalError

log = logs.get_logger(__name__)
MAX_BYTES = 5 * 1024
MAX_VARIABLES = 20
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def env_key(name: str) -> str:
    """`staging-eu` → `STAGING_EU`, for per-environment variable names."""
    return re.sub(r"[^A-Za-z0-9_]", "_", name).upper()


def render_dotenv(
    values: Mapping[str, str],
    optional: Mapping[str, str] | None = None,
    *,
    max_bytes: int = MAX_BYTES,
    max_variables: int = MAX_VARIABLES,
) -> str:
    """`values` first, then `optional` ones in order, while the report has at most `max_variables` lines
    and `max_bytes` bytes (0: no limit); what does not fit, or cannot be written safely, is left out."""
    lines: list[str] = []
    size = 0
    left_out: list[str] = []
    for key, value in [*values.items(), *(optional or {}).items()]:
        line = _line(key, value)
        fits = (not max_variables or len(lines) < max_variables) and (
            not max_bytes or size + len(line.encode()) <= max_bytes
        )
        if line and fits:
            lines.append(line)
            size += len(line.encode())
        else:
            left_out.append(key)
    if left_out:
        shown = ", ".join(left_out[:5]) + (", ..." if len(left_out) > 5 else "")
        log.warning(
            "dotenv report: %d variable(s) left out to stay within GitLab's limits (%d variables, %d bytes; "
            "set --dotenv-max-variables and --dotenv-max-bytes to your instance's): %s",
            len(left_out), max_variables, max_bytes, shown,
        )  # fmt: skip
    return "".join(lines)


def _line(key: str, value: str) -> str:
    """The report's line for key=value, or "" for a value that must not or cannot be written."""
    if not _KEY.fullmatch(key):
        raise ConfigurationError(f"dotenv key {key!r} is not a valid variable name")
    if "\n" in value or "\r" in value:
        log.warning("dotenv report: %s spans lines, which GitLab refuses; left out", key)
        return ""
    if logs.mask(value) != value:
        log.warning("dotenv report: %s contains a secret; left out", key)
        return ""
    return f"{key}={value}\n"


@dataclass(frozen=True)
class DotenvReport:
    """Where to write the report, and the limits of the GitLab instance that reads it."""

    path: Path
    max_bytes: int = MAX_BYTES
    max_variables: int = MAX_VARIABLES

    def __post_init__(self) -> None:
        """Checked before the change: a report that cannot be written would fail a job whose change landed."""
        existing = next(p for p in (self.path, *self.path.absolute().parents) if p.exists())
        if existing == self.path and (not self.path.is_file() or not os.access(self.path, os.W_OK)):
            raise ConfigurationError(
                f"--dotenv {self.path} is not a writable file; name a file, e.g. deploy.env"
            )
        if existing != self.path and (not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK)):
            raise ConfigurationError(
                f"--dotenv {self.path}: cannot create it under {existing}; name a writable path"
            )


def write_dotenv(
    report: DotenvReport, values: Mapping[str, str], optional: Mapping[str, str] | None = None
) -> None:
    text = render_dotenv(values, optional, max_bytes=report.max_bytes, max_variables=report.max_variables)
    try:
        report.path.parent.mkdir(parents=True, exist_ok=True)
        report.path.write_text(text, encoding="utf-8")
    except OSError as err:
        raise OperationalError(f"{report.path}: cannot write the dotenv report: {err.strerror}") from None
