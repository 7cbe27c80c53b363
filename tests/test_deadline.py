"""answer_within: a wall-clock bound on a block, which leaves an enclosing bound (pytest-timeout's) intact."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator

import pytest

from gitops_ci.deadline import AnswerTooSlow, answer_within


@pytest.fixture
def outer_bound() -> Iterator[list[int]]:
    """A known enclosing timer (60 s) and handler, as a test runner sets them; yields what the handler saw."""
    fired: list[int] = []
    handler = signal.signal(signal.SIGALRM, lambda signum, frame: fired.append(signum))
    delay, _ = signal.setitimer(signal.ITIMER_REAL, 60)
    yield fired
    signal.setitimer(signal.ITIMER_REAL, delay)
    signal.signal(signal.SIGALRM, handler)


def test_a_block_that_outlives_its_bound_is_interrupted(outer_bound: list[int]) -> None:
    started = time.monotonic()
    with pytest.raises(AnswerTooSlow), answer_within(0.2):
        time.sleep(5)  # a blocked read, as far as signals go
    assert time.monotonic() - started < 1.5
    assert outer_bound == []


def test_a_block_within_its_bound_leaves_the_enclosing_timer_and_handler(outer_bound: list[int]) -> None:
    handler = signal.getsignal(signal.SIGALRM)
    with answer_within(5):
        time.sleep(0.01)
    remaining, _ = signal.getitimer(signal.ITIMER_REAL)
    assert 55 < remaining <= 60
    assert signal.getsignal(signal.SIGALRM) is handler
    assert outer_bound == []


def test_an_earlier_enclosing_bound_is_kept(outer_bound: list[int]) -> None:
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    started = time.monotonic()
    with pytest.raises(AnswerTooSlow), answer_within(10):  # the block is cut at the enclosing 0.3 s
        time.sleep(5)
    assert time.monotonic() - started < 1.5
    time.sleep(0.1)
    assert outer_bound == [signal.SIGALRM]  # and the enclosing handler still fires, just after


def test_off_the_main_thread_it_bounds_nothing_and_breaks_nothing() -> None:
    outcome: list[str] = []

    def worker() -> None:
        with answer_within(0.05):
            time.sleep(0.2)
        outcome.append("finished")

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert outcome == ["finished"]


def test_an_interruption_swallowed_by_a_library_is_followed_by_another(outer_bound: list[int]) -> None:
    started, swallowed = time.monotonic(), []
    with pytest.raises(AnswerTooSlow), answer_within(0.1):
        try:
            time.sleep(5)
        except AnswerTooSlow:  # a library's `except BaseException: pass`
            swallowed.append(time.monotonic() - started)
        time.sleep(5)
    assert len(swallowed) == 1 and time.monotonic() - started < 2
    assert outer_bound == []
