"""The last `window` decisions of one policy, kept as running histogram counts over the reference's bins.

Every decision becomes one row of small integers, a *slot* per monitored value: the bin of
each input (or its category, `other`, missing, or unobserved when the input was invalid),
the score's bin (or "no score": a fallback has none), the outcome, and whether it fell
back. A ring buffer holds the last `window` rows; one array holds the count of every slot.
A row entering adds one to its slots; the row it replaces subtracts one from its own.
Counts are never recomputed from the ring.

`observe` only queues the decision: every `batch` decisions the queue is binned with numpy
and the counts updated at once, which costs about a third of binning each decision in
Python. Each decision is still binned once on the way in and counted once on the way out:
O(1) per decision. `report()` takes the queue in first, so it is exact; `score_in_alert()`
answers from the last batch, so it may lag the decisions by up to `batch` of them.

Not thread-safe: observe and report from one thread (the event loop).
Pure: imports the stdlib, numpy and the monitor modules only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from itertools import repeat
from operator import is_, itemgetter
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from guardrails.monitor.config import MonitorConfig
from guardrails.monitor.reference import CategoricalProfile, InputProfile, NumericProfile, shares
from guardrails.monitor.report import MonitorReport, WindowCounts, judge, score_status

Slots = npt.NDArray[np.int32]
Values = Sequence[Mapping[str, Any]]
Binner = Callable[[Sequence[Any], int], Slots]
MAX_BATCH = 256


class Window:
    """Streaming statistics of one policy's last `config.spec.window` decisions."""

    def __init__(self, config: MonitorConfig, batch: int | None = None) -> None:
        self.config = config
        self.size = config.spec.window
        self.batch = max(1, min(self.size, batch if batch is not None else min(MAX_BATCH, self.size // 8)))
        self._binners: list[Binner] = []
        self._inputs: list[tuple[str, int, int]] = []  # (name, first slot, slots counted) per input
        self._unobserved: list[int] = []  # each input's "not observed" slot
        width = 0
        self._names = tuple(config.reference.inputs)
        self._getter = itemgetter(*self._names) if self._names else None
        for name, profile in config.reference.inputs.items():
            binner, used = _binner(profile, width)
            self._binners.append(binner)
            self._inputs.append((name, width, used))
            self._unobserved.append(width + used)
            width += used + 1
        score = config.reference.score
        self._score = None if score is None else (width, len(score.proportions))
        self._score_edges = np.asarray([] if score is None else score.edges, dtype=np.float64)
        if score is not None:
            width += len(score.proportions) + 1  # the last one: no score
        self._outcome_slot = {outcome: width + i for i, outcome in enumerate(config.outcomes)}
        self._outcomes = width
        self._fallback = width + len(config.outcomes)
        self._slots = self._fallback + 2
        columns = len(self._binners) + (score is not None) + 2
        self._ring: Slots = np.zeros((self.size, columns), dtype=np.int32)
        self._counts = np.zeros(self._slots, dtype=np.int64)
        self._filled = 0
        self._next = 0
        self._values: list[Mapping[str, Any] | None] = []  # the queue, one list per argument of observe
        self._scores: list[float | None] = []
        self._decided: list[str] = []
        self._fell_back: list[bool] = []
        self._score_alert = False

    def observe(self, values: Mapping[str, Any] | None, score: float | None, outcome: str, fallback: bool) -> None:
        """Count one decision.

        `values` is the validated input (as `InputSchema` returns it), or None when the input
        was invalid; `score` is the model's score, None when there is none; `outcome` is one of
        the policy's outcomes; `fallback` is whether the decision is the policy's fallback.
        A decision that fell back because the score drifted (`on_alert: fallback`) still passes
        the model's score: the window must keep seeing the scores to notice their recovery.
        """
        queue = self._values  # runs once per decision: four appends, nothing else until the batch is full
        queue.append(values)
        self._scores.append(score)
        self._decided.append(outcome)
        self._fell_back.append(fallback)
        if len(queue) >= self.batch:
            self.flush()

    def flush(self) -> None:
        """Count the queued decisions now."""
        if not self._values:
            return
        values, scores, outcomes, fallbacks = self._values, self._scores, self._decided, self._fell_back
        self._values, self._scores, self._decided, self._fell_back = [], [], [], []
        rows = self._rows(values, scores, outcomes, fallbacks)
        first = min(len(rows), self.size - self._next)
        self._write(rows[:first])
        if first < len(rows):
            self._write(rows[first:])
        score = self._score_counts()
        if score is not None:
            self._score_alert = score_status(self.config, self._filled, score) == "alert"

    def report(self) -> MonitorReport:
        """The window judged against the reference: drift, rates, status and reasons."""
        self.flush()
        counts = self._counts.tolist()
        inputs = {name: counts[start : start + used] for name, start, used in self._inputs}
        outcomes = counts[self._outcomes : self._fallback]
        window = WindowCounts(self._filled, inputs, self._score_counts(), outcomes, counts[self._fallback + 1])
        return judge(self.config, window)

    def score_in_alert(self) -> bool:
        """Whether the score's drift is at alert (as of the last batch): what `on_alert: fallback` acts on."""
        return self._score_alert

    @property
    def decisions(self) -> int:
        """Decisions in the window, queued ones included."""
        return min(self.size, self._filled + len(self._values))

    def counts(self) -> list[int]:
        """The running count of every slot (for tests: equal to counting the ring from scratch)."""
        self.flush()
        return [int(c) for c in self._counts]

    def ring(self) -> list[list[int]]:
        """The rows of the decisions in the window, oldest first."""
        self.flush()
        if self._filled < self.size:
            return [[int(s) for s in row] for row in self._ring[: self._filled]]
        return [[int(s) for s in row] for row in np.roll(self._ring, -self._next, axis=0)]

    def _score_counts(self) -> list[int] | None:
        if self._score is None:
            return None
        start, bins = self._score
        return [int(c) for c in self._counts[start : start + bins]]

    def _write(self, rows: Slots) -> None:
        """Put `rows` at the ring's next position (they fit before its end), evicting what was there."""
        at = slice(self._next, self._next + len(rows))
        if self._filled == self.size:
            self._counts -= np.bincount(self._ring[at].ravel(), minlength=self._slots)
        else:
            self._filled += len(rows)
        self._counts += np.bincount(rows.ravel(), minlength=self._slots)
        self._ring[at] = rows
        self._next = (self._next + len(rows)) % self.size

    def _columns(self, values: Values) -> list[Sequence[Any]]:
        """Each input's values over the batch, in one C-level pass (a value left out is missing)."""
        if len(self._names) < 2:
            return [[v.get(name) for v in values] for name in self._names]
        try:
            return list(zip(*map(self._getter, values), strict=True))  # type: ignore[arg-type]
        except KeyError:
            return [[v.get(name) for v in values] for name in self._names]

    def _rows(
        self,
        values: Sequence[Mapping[str, Any] | None],
        scores: Sequence[float | None],
        outcomes: Sequence[str],
        fallbacks: Sequence[bool],
    ) -> Slots:
        n = len(values)
        rows: Slots = np.empty((n, self._ring.shape[1]), dtype=np.int32)
        unobserved = None
        if None in values:  # inputs not observed (invalid): binned as blank, then marked
            unobserved = np.fromiter(map(is_, values, repeat(None)), dtype=bool, count=n)
            values = [_BLANK if v is None else v for v in values]
        for j, (binner, given) in enumerate(zip(self._binners, self._columns(cast(Values, values)), strict=True)):
            rows[:, j] = binner(given, n)
            if unobserved is not None:
                rows[unobserved, j] = self._unobserved[j]
        column = len(self._binners)
        if self._score is not None:
            start, bins = self._score
            rows[:, column] = _numeric_slots(np.array(scores, dtype=np.float64), self._score_edges, start, start + bins)
            column += 1
        try:
            rows[:, column] = np.fromiter(map(self._outcome_slot.__getitem__, outcomes), dtype=np.int32, count=n)
        except KeyError as exc:
            known = ", ".join(self.config.outcomes)
            raise ValueError(f"outcome {exc} is not an outcome of policy {self.config.policy} ({known})") from None
        rows[:, column + 1] = self._fallback + np.array(fallbacks, dtype=bool)
        return rows


class _Blank(dict[str, Any]):
    """The values of an unobserved decision: every input missing (its slot is then overwritten)."""

    def __missing__(self, key: str) -> None:
        return None


_BLANK = _Blank()


def _binner(profile: InputProfile, start: int) -> tuple[Binner, int]:
    """A function from one input's values over a batch to its slots, and how many slots it counts."""
    # Each runs once per batch over every decision in it: C-level map chains, no Python loop per value.
    used = len(shares(profile))
    missing = start + used - 1
    if isinstance(profile, NumericProfile):
        edges = np.asarray(profile.edges, dtype=np.float64)

        def numeric(column: Sequence[Any], n: int) -> Slots:
            try:  # numpy 2 reads None as NaN here; older versions refuse it
                floats = np.fromiter(column, dtype=np.float64, count=n)
            except TypeError:
                floats = np.array(column, dtype=np.float64)
            return _numeric_slots(floats, edges, start, missing)

        return numeric, used
    if isinstance(profile, CategoricalProfile):
        lookup: dict[Any, int] = {category: start + i for i, category in enumerate(profile.categories)}
        lookup[None] = missing
        other = start + len(profile.categories)

        def categorical(column: Sequence[Any], n: int) -> Slots:
            return np.fromiter(map(lookup.get, column, repeat(other)), dtype=np.int32, count=n)

        return categorical, used

    def presence(column: Sequence[Any], n: int) -> Slots:
        absent = np.fromiter(map(is_, column, repeat(None)), dtype=bool, count=n)
        return (start + absent).astype(np.int32)

    return presence, used


def _numeric_slots(values: npt.NDArray[np.float64], edges: npt.NDArray[np.float64], start: int, missing: int) -> Slots:
    """Bin i holds edges[i-1] < v <= edges[i]; NaN (None on the way in) is missing."""
    slots = np.searchsorted(edges, values, side="left").astype(np.int32) + start
    slots[np.isnan(values)] = missing
    return slots
