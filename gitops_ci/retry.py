"""Bounded retries with jittered exponential backoff, for steps that may fail transiently."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, TypeVar

from gitops_ci import logs
from gitops_ci.errors import OperationalError, RetryableError

T = TypeVar("T")
log = logs.get_logger(__name__)
MAX_DELAY = 8.0


class Clock(Protocol):
    """Time as the runner of a change sees it; tests inject one that does not sleep."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...

    def jitter(self, high: float) -> float:
        """A uniform random delay in [0, high]."""
        ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def jitter(self, high: float) -> float:
        import random  # only a retry needs it: not imported on the way to the first request

        return random.uniform(0, high)


SYSTEM_CLOCK: Clock = SystemClock()


def backoff_delay(attempt: int, base: float, cap: float = MAX_DELAY, clock: Clock = SYSTEM_CLOCK) -> float:
    """Full jitter (AWS architecture blog): uniform in [0, min(cap, base * 2**attempt)]."""
    return clock.jitter(min(cap, base * 2 ** min(attempt - 1, 32)))


def sleep_before_retry(
    attempt: int, base: float, reason: str, cap: float = MAX_DELAY, clock: Clock = SYSTEM_CLOCK
) -> None:
    delay = backoff_delay(attempt, base, cap, clock)
    log.info("%s; retrying in %.1fs (attempt %d)", reason, delay, attempt + 1)
    clock.sleep(delay)


def with_retries(
    step: Callable[[], T], *, what: str, max_attempts: int, base: float, clock: Clock = SYSTEM_CLOCK
) -> T:
    """Run `step`, retrying RetryableError up to `max_attempts` in all; other errors pass through."""
    for attempt in range(1, max_attempts + 1):
        try:
            return step()
        except RetryableError as err:
            if attempt == max_attempts:
                raise OperationalError(f"{what} failed after {max_attempts} attempts: {err}") from None
            sleep_before_retry(attempt, base, str(err), clock=clock)
    raise AssertionError("unreachable")
