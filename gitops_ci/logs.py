"""Logging for the CLI: stderr, secrets masked everywhere, GitLab collapsible sections in CI.

Modules take their logger from `get_logger`. Nothing is installed on import: only the CLI configures logging
(`configure`), and the stderr handler is installed on the first use after that, so a command that never logs
(set-image) never pays for importing `logging`, and a library user keeps their own logging setup.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import logging

MASK = "[MASKED]"
ROOT = "gitops_ci"
_secrets: set[str] = set()


class _Setup:
    configured = False
    debug = False
    installed = False


def register_secret(value: str | None) -> None:
    """Hide `value` in every log line and error message from now on (short values are not worth masking)."""
    if value and len(value) >= 4:  # and as a repr or an escape would show a control character in it
        _secrets.update({value, repr(value)[1:-1], value.translate(_ALL_ESCAPED)})


def mask(text: str) -> str:
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def _escape(code: int) -> str:
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


# C0 and C1 controls, DEL, line and paragraph separators, bidi marks, embeddings, overrides and isolates
_CONTROLS = (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, 0x200E, 0x200F, *range(0x202A, 0x202F),
             *range(0x2066, 0x206A))  # fmt: skip
_ALL_ESCAPED = {code: _escape(code) for code in _CONTROLS}
_LINES_KEPT = {code: text for code, text in _ALL_ESCAPED.items() if code not in (0x09, 0x0A)}


def shown(text: str) -> str:
    """What may be written to the job log or stdout: secrets masked, and every control character but line
    breaks and tabs as a visible escape (`\\x1b`), so nothing a server or a repo sent can colour, move, hide
    or fold a line of the log, or mark a GitLab section."""
    return mask(text).translate(_LINES_KEPT)


def has_controls(text: str) -> bool:
    """Whether `text` holds a control character, a line break or a bidi mark (what `one_line` escapes)."""
    return text.translate(_ALL_ESCAPED) != text


def one_line(value: str, limit: int = 300) -> str:
    """`value` on one line, control characters (and bidi overrides) as `\\xNN`/`\\uNNNN`, cut at `limit`."""
    text = value.translate(_ALL_ESCAPED)
    return text if len(text) <= limit else text[:limit] + "…"


def _mask_record(record: logging.LogRecord) -> bool:
    record.msg = shown(record.getMessage())
    record.args = None
    return True


def configure(*, debug: bool = False) -> None:
    """Log to stderr at info (or debug) level; the handler is (re)installed when a logger is used."""
    _Setup.configured = True
    _Setup.debug = debug
    _Setup.installed = False
    if "logging" in sys.modules:
        _install()


def get_logger(name: str) -> logging.Logger:
    """`logging.getLogger(name)`, with gitops-ci's masking stderr handler once the CLI configured it."""
    import logging

    if _Setup.configured and not _Setup.installed:
        _install()
    return logging.getLogger(name)


def _install() -> None:
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_mask_record)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger(ROOT)
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if _Setup.debug else logging.INFO)
    root.propagate = False
    _Setup.installed = True


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


@contextmanager
def section(name: str, title: str) -> Iterator[None]:
    """A collapsible section in GitLab job logs (plain log lines elsewhere)."""
    log = get_logger(ROOT)
    if not in_ci():
        log.info("%s", title)
        yield
        return
    slug = "".join(c if c.isalnum() else "_" for c in name)
    sys.stderr.write(
        f"\x1b[0Ksection_start:{int(time.time())}:{slug}[collapsed=true]\r\x1b[0K{shown(title)}\n"
    )
    try:
        yield
    finally:
        sys.stderr.write(f"\x1b[0Ksection_end:{int(time.time())}:{slug}\r\x1b[0K\n")
