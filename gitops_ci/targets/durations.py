"""Durations as options give them (`10m`, `90s`, `1h30m`, seconds) and as messages show them. Pure, and light:
the CLI imports it for every command."""

from __future__ import annotations

import re

from gitops_ci.errors import ConfigurationError

MAX_SECONDS = 7 * 24 * 3600
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?")


def parse_duration(text: str) -> float:
    """`10m`, `90s`, `1h`, `1h30m`, `2.5` (seconds) → seconds; zero and negative are refused."""
    value = text.strip().lower()
    try:
        seconds = float(value)
    except ValueError:
        match = _DURATION.fullmatch(value)
        if not value or match is None:
            raise ConfigurationError(
                f"duration {text!r} is invalid; use e.g. 90s, 10m, 1h or seconds"
            ) from None
        h, m, s = (float(g) if g else 0.0 for g in match.groups())
        seconds = h * 3600 + m * 60 + s
    if not seconds > 0:
        raise ConfigurationError(f"duration {text!r} must be positive")
    if not seconds <= MAX_SECONDS:  # NaN and inf too: a bound must end, and a timer overflows past 292 years
        raise ConfigurationError(f"duration {text!r} is more than a week; give a bound a job can reach")
    return seconds


def format_duration(seconds: float) -> str:
    return f"{seconds / 60:g}m" if seconds >= 60 and seconds % 60 == 0 else f"{seconds:g}s"
