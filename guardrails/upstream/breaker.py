"""A circuit breaker per upstream: a small state machine with the clock passed in.

closed -> (after `failures` consecutive failures) -> open -> (after `reset_after_s`) ->
half-open, which lets exactly one probe through: its success closes the circuit, its
failure opens it again for another `reset_after_s`.

Pure: no clock, no I/O; the caller passes `now` (monotonic seconds).
"""

from __future__ import annotations

from typing import Literal

State = Literal["closed", "open", "half_open"]
STATE_VALUES: dict[State, int] = {"closed": 0, "half_open": 1, "open": 2}


class CircuitBreaker:
    def __init__(self, failures: int, reset_after_s: float) -> None:
        self.failure_limit = failures
        self.reset_after_s = reset_after_s
        self.consecutive_failures = 0
        self.opened_at: float | None = None
        self.probe_in_flight = False

    def state(self, now: float) -> State:
        if self.opened_at is None:
            return "closed"
        return "half_open" if now - self.opened_at >= self.reset_after_s else "open"

    def allow(self, now: float) -> bool:
        """May a request go out now? In half-open, only the first caller gets a yes."""
        state = self.state(now)
        if state == "closed":
            return True
        if state == "half_open" and not self.probe_in_flight:
            self.probe_in_flight = True
            return True
        return False

    def record_success(self) -> None:
        self.consecutive_failures = 0
        self.opened_at = None
        self.probe_in_flight = False

    def record_failure(self, now: float) -> None:
        self.consecutive_failures += 1
        if self.probe_in_flight or self.consecutive_failures >= self.failure_limit:
            self.opened_at = now
        self.probe_in_flight = False
