"""Bounded retries with full-jitter backoff, on an injected clock (nothing here sleeps)."""

from __future__ import annotations

import pytest
from clock import FakeClock

from gitops_ci.errors import OperationalError, RetryableError
from gitops_ci.retry import backoff_delay, with_retries


def test_backoff_grows_exponentially_up_to_its_cap() -> None:
    clock = FakeClock()  # jitter returns the upper bound
    assert [backoff_delay(n, 0.5, cap=8.0, clock=clock) for n in range(1, 7)] == [
        0.5,
        1.0,
        2.0,
        4.0,
        8.0,
        8.0,
    ]


def test_a_transient_failure_is_retried_then_given_up_with_the_last_reason() -> None:
    clock, calls = FakeClock(), []

    def flaky() -> str:
        calls.append(clock.now)
        if len(calls) < 3:
            raise RetryableError("HTTP 503")
        return "done"

    assert with_retries(flaky, what="fetch", max_attempts=3, base=0.5, clock=clock) == "done"
    assert clock.slept == [0.5, 1.0]

    def broken() -> str:
        raise RetryableError("HTTP 502")

    with pytest.raises(OperationalError, match="fetch failed after 2 attempts: HTTP 502"):
        with_retries(broken, what="fetch", max_attempts=2, base=0.5, clock=FakeClock())


def test_other_errors_are_not_retried() -> None:
    clock = FakeClock()

    def refused() -> None:
        raise OperationalError("401")

    with pytest.raises(OperationalError, match="401"):
        with_retries(refused, what="push", max_attempts=5, base=0.5, clock=clock)
    assert clock.slept == []
