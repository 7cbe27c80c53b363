"""A wall-clock bound on one network exchange, from connect to the answer's last byte.

A socket timeout bounds each read; a server that trickles a byte per read never trips it. `answer_within`
interrupts the exchange when the whole of it takes longer: SIGALRM interrupts the blocked read and what the
handler raises propagates from it (PEP 475), through any client library. Off the main thread (signals cannot
reach it there) only the socket timeouts apply.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class AnswerTooSlow(BaseException):
    """The exchange outlived its bound. A BaseException, so no library's `except Exception` swallows it; each
    boundary module turns it into our error."""


def _raise(signum: int, frame: FrameType | None) -> None:
    raise AnswerTooSlow


@contextmanager
def answer_within(seconds: float) -> Iterator[None]:
    """Raise AnswerTooSlow in the block once `seconds` have passed; an enclosing bound (a test runner's, say)
    keeps its own time and handler."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    started = time.monotonic()
    handler = signal.signal(signal.SIGALRM, _raise)
    outer, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    if 0 < outer < seconds:  # the enclosing bound comes first: keep it
        signal.setitimer(signal.ITIMER_REAL, outer)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, handler)
        if outer:
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - started), 1e-3))
