"""Untrusted values in GitLab Markdown (review notes, merge request descriptions). Pure.

GitLab runs quick actions from note and description lines that start with `/` (`/approve`, `/merge`),
notifies on mentions (`@all`) and cross-references `#1`, `!2`, `~label` anywhere in text — but not inside
code. So every value that comes from the manifest repo, a render or a server is shown as inline code on one
line: control characters and line breaks become visible escapes, and the backtick fence is longer than any
run of backticks inside. `check_note` then proves that no line of the finished text can start a quick action.
"""

from __future__ import annotations

import re

from gitops_ci.errors import InternalError
from gitops_ci.logs import one_line

_BACKTICKS = re.compile(r"`+")
_LINE_BREAKS = re.compile("\r\n|[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")


def code(value: str, *, cell: bool = False, limit: int = 300) -> str:
    """`value` as an inline code span: shown literally, never a mention, a reference or a quick action.
    In a table `cell`, `|` is escaped (GitLab keeps `\\|` inside code spans in tables)."""
    text = one_line(value, limit)
    if not text:
        return "(empty)"
    if cell:
        text = text.replace("|", "\\|")
    fence = "`" * (longest_backtick_run(text) + 1)
    pad = " " if text[0] in "` " or text[-1] in "` " else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def fence_for(text: str) -> str:
    """A backtick fence no line of `text` can close early."""
    return "`" * max(3, longest_backtick_run(text) + 1)


def block_lines(text: str) -> str:
    """Lines for a fenced code block: each line's control characters made visible, so no character
    inside a line can end it."""
    return "\n".join(one_line(line, limit=10_000) for line in text.split("\n"))


def longest_backtick_run(text: str) -> int:
    return max((len(m) for m in _BACKTICKS.findall(text)), default=0)


def check_note(text: str) -> str:
    """`text` unchanged, or InternalError (a bug: nothing is posted) when a line could run a quick action.
    GitLab runs one only from a `/` in a line's first column (Gitlab::QuickActions::Extractor matches `^/`):
    an indented `/usr/bin/env` in a diff's context line is content."""
    for number, line in enumerate(_LINE_BREAKS.split(text), 1):
        if line.startswith("/"):
            raise InternalError(
                f"line {number} of the note would start a GitLab quick action ({line[:40]!r}); "
                "nothing was posted: this is a gitops-ci bug"
            )
    return text
