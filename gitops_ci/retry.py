"""Bounded retries with jittered exponential backoff, for steps that may fail transiently."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from gitops_ci import logs
from gitops_ci.errors import OperationalError, RetryableError

T = TypeVar("T")
log = logs.get_logger(__name__)
MAX_DELAY = 8.0


def backoff_delay(attempt: int, base: float, cap: float = MAX_DELAY) -> float:
    """Full jitter (AWS architecture blog): uniform in [0, min(cap, base * 2**attempt)]."""
    return random.uniform(0, min(cap, base * 2 ** min(attempt - 1, 32)))


def sleep_before_retry(attempt: int, base: float, reason: str, cap: float = MAX_DELAY) -> None:
    delay = backoff_delay(attempt, base, cap)
    log.info("%s; retrying in %.1fs (attempt %d)", reason, delay, attempt + 1)
    time.sleep(delay)


def with_retries(step: Callable[[], T], *, what: str, max_attempts: int, base: float) -> T:
    """Run `step`, retrying RetryableError up to `max_attempts` in all; other errors pass through."""
    for attempt in range(1, max_attempts + 1):
        try:
            return step()
        except RetryableError as err:
            if attempt == max_attempts:
                raise OperationalError(f"{what} failed after {max_attempts} attempts: {err}") from None
            sleep_before_retry(attempt, base, str(err))
    raise AssertionError("unreachable")
