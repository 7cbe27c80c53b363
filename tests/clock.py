"""A clock for tests of retries and deadlines: time moves only when the code under test sleeps."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FakeClock:
    now: float = 1000.0
    slept: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def jitter(self, high: float) -> float:
        return high  # the longest delay backoff allows: deadlines are reached soonest
