"""Logging for the CLI: stderr, secrets masked everywhere, GitLab collapsible sections in CI."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

MASK = "[MASKED]"
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Hide `value` in every log line and error message from now on (short values are not worth masking)."""
    if value and len(value) >= 4:
        _secrets.add(value)


def mask(text: str) -> str:
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


class MaskingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask(record.getMessage())
        record.args = None
        return True


def configure(*, debug: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(MaskingFilter())
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("gitops_ci")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    root.propagate = False


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


@contextmanager
def section(name: str, title: str) -> Iterator[None]:
    """A collapsible section in GitLab job logs (plain log lines elsewhere)."""
    log = logging.getLogger("gitops_ci")
    if not in_ci():
        log.info("%s", title)
        yield
        return
    slug = "".join(c if c.isalnum() else "_" for c in name)
    sys.stderr.write(
        f"\x1b[0Ksection_start:{int(time.time())}:{slug}[collapsed=true]\r\x1b[0K{mask(title)}\n"
    )
    try:
        yield
    finally:
        sys.stderr.write(f"\x1b[0Ksection_end:{int(time.time())}:{slug}\r\x1b[0K\n")
