"""A wall-clock bound on one network exchange, from connect to the answer's last byte.

A socket timeout bounds each read; a server that trickles a byte per read never trips it. `answer_within`
interrupts the exchange when the whole of it takes longer: SIGALRM interrupts the blocked read and what the
handler raises propagates from it (PEP 475), through any client library. The timer repeats every second until
the block ends, so a library that swallows one interruption gets the next. Off the main thread (signals cannot
reach it there) only the socket timeouts apply.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType
from typing import Any

REPEAT_SECONDS = 1.0


class _Held:
    depth = 0
    missed = False


@contextmanager
def deadlines_held() -> Iterator[None]:
    """Let the block finish before a deadline that passes in it fires: it fires as the block ends. For work
    that must not stop halfway (an import cut in half leaves its package without its submodules)."""
    _Held.depth += 1
    try:
        yield
    finally:
        _Held.depth -= 1
    if _Held.depth == 0 and _Held.missed:
        _Held.missed = False
        raise AnswerTooSlow


class AnswerTooSlow(BaseException):
    """The exchange outlived its bound. A BaseException, so no library's `except Exception` swallows it; each
    boundary module turns it into our error."""


class answer_within:  # lowercase: it reads as what it does, `with answer_within(30):`
    """Raise AnswerTooSlow in the block once `seconds` have passed. An enclosing timer (a test runner's) that
    would fire first cuts the block the same way; its own handler and time are restored after the block."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._armed = False
        self._active = False
        self._handler: Any = signal.SIG_DFL
        self._outer = (0.0, 0.0)
        self._started = 0.0

    def __enter__(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        self._started = time.monotonic()
        previous = signal.signal(signal.SIGALRM, self._expire)
        self._handler = previous if previous is not None else signal.SIG_DFL  # None: not set from Python
        self._active = self._armed = True
        try:
            self._outer = signal.setitimer(signal.ITIMER_REAL, self._seconds, REPEAT_SECONDS)
            if 0 < self._outer[0] < self._seconds:
                signal.setitimer(signal.ITIMER_REAL, self._outer[0], REPEAT_SECONDS)
        except BaseException:
            self._disarm()
            raise

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        while self._active:
            try:
                self._disarm()
            except AnswerTooSlow:  # fired as the block ended; it has ended anyway
                continue

    def _expire(self, signum: int, frame: FrameType | None) -> None:
        if self._armed and _Held.depth:
            _Held.missed = True
        elif self._armed:
            raise AnswerTooSlow

    def _disarm(self) -> None:
        self._armed = False  # from here on a late signal is ignored
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self._handler)
        self._active = False
        delay, interval = self._outer
        if delay:
            remaining = delay - (time.monotonic() - self._started)
            signal.setitimer(signal.ITIMER_REAL, max(remaining, 1e-3), interval)
