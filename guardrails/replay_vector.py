"""Replay a chunk of recorded decisions at once: columns from the stored inputs, then `decide_vector`.

Each input becomes one column, checked against the candidate's `inputs:` with numpy (types,
ranges, allowed values, lengths, required inputs, defaults), which settles each row as one of:
DECIDED over the columns by `decide_vector`; INVALID (the candidate refuses a known value: its
`input_invalid` fallback, or a rejection); FALLBACK (a recorded upstream or output failure:
the candidate's fallback, same cause); NOT_REPLAYABLE (it reads a hashed or absent input, or
there is no model output). A row the columns cannot settle (an integer past 2**53) is replayed
ONE_BY_ONE with `replay_record`, the reference: `ChunkReplay.result(i)` gives, for every row,
exactly what `replay_record` gives (the tests hold the two together).

Pure: imports the stdlib, msgspec, numpy and the policy modules only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from guardrails.decide import Decision, fallback
from guardrails.decide_vector import VectorDecisions, decide_vector
from guardrails.policy.expr_vector import Categorical, Column
from guardrails.policy.inputs import InputField
from guardrails.replay_record import (
    NotReplayable,
    Plan,
    Rejected,
    Replayed,
    as_cause,
    is_unknown_value,
    replay_record,
    split_input,
)
from guardrails.scores import ScoreFields

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.intp]

NOT_REPLAYABLE_CODE = -1
EXACT = 2.0**53  # integers beyond this are not all exact as float64: such rows are replayed one by one
_NONE, _UNSET = type(None), type(msgspec.UNSET)
_EMPTY = msgspec.Raw(b"[]")
_USUAL_TYPES: dict[str, frozenset[type]] = {
    "float": frozenset((float, int, _NONE)),
    "int": frozenset((int, _NONE)),
    "bool": frozenset((bool, _NONE)),
    "str": frozenset((str, _NONE)),
}


def record_type(input_names: Iterable[str]) -> type[msgspec.Struct]:
    """The narrow struct a stored record is decoded into; an input it does not name fails the decoding."""
    inputs = msgspec.defstruct(
        "RecordedInput",
        [(name, Any, msgspec.UNSET) for name in input_names],
        forbid_unknown_fields=True,
        gc=False,
    )
    return msgspec.defstruct(
        "RecordedDecision",
        [
            ("policy_version", str),
            ("input", inputs),
            ("score", float | None, None),
            ("confidence", float | None, None),
            ("margin", float | None, None),
            ("label", str | None, None),
            ("outcome", str | None, None),
            ("reasons", msgspec.Raw, _EMPTY),  # counted by their JSON text, decoded once per distinct list
            ("rules", msgspec.Raw, _EMPTY),
            ("fallback", str | None, None),
        ],
        gc=False,
    )


def input_dict(recorded_input: Any) -> dict[str, Any]:
    """A decoded record's input as a dict, without the fields it does not hold."""
    return {k: v for k, v in msgspec.structs.asdict(recorded_input).items() if v is not msgspec.UNSET}


def score_fields(record: Any) -> ScoreFields | None:
    if record.score is None or record.confidence is None or record.margin is None:
        return None
    return ScoreFields(record.score, record.confidence, record.margin, record.label)


# What the columns settle for each row.
DECIDED, INVALID, FALLBACK, NOT_REPLAYABLE, ONE_BY_ONE = range(5)


@dataclass(frozen=True, slots=True)
class ChunkReplay:
    """What the candidate decides for each row of a chunk of decoded records."""

    plan: Plan
    records: Sequence[Any]
    kind: npt.NDArray[np.int8]  # per row: DECIDED, INVALID, FALLBACK, NOT_REPLAYABLE or ONE_BY_ONE
    decided: IndexArray  # the DECIDED rows, ascending: the rows of `vector`
    vector: VectorDecisions | None
    unknown: dict[str, tuple[BoolArray, BoolArray]]  # input the candidate reads -> (hashed, dropped) per row
    unscored: BoolArray  # per row: no model output (recorded as invalid input, or no score fields)
    versions: dict[str, int]  # recorded version id -> rows
    one_by_one: dict[int, Replayed]  # the ONE_BY_ONE rows, replayed with replay_record

    @property
    def rows(self) -> int:
        return len(self.records)

    def result(self, i: int) -> Replayed:
        """Row `i`, as `replay_record` gives it."""
        kind = self.kind[i]
        if kind == ONE_BY_ONE:
            return self.one_by_one[i]
        if kind == DECIDED:
            assert self.vector is not None
            return self.vector.decision(int(np.searchsorted(self.decided, i)))
        if kind == NOT_REPLAYABLE:
            hashed = tuple(name for name, (h, _) in self.unknown.items() if h[i])
            dropped = tuple(name for name, (_, d) in self.unknown.items() if d[i])
            return NotReplayable(hashed, dropped, bool(self.unscored[i]))
        record = self.records[i]
        if kind == FALLBACK:
            return fallback(self.plan.candidate, as_cause(record.fallback))
        return self._invalid(record)

    def _invalid(self, record: Any) -> Replayed:
        """An INVALID row, with its errors (found now: only a sample of rows is ever shown)."""
        known, unknown = split_input(self.plan, record.policy_version, input_dict(record.input))
        errors = self.plan.schema_without(frozenset(unknown)).check_all(known)
        if not errors:
            raise AssertionError(f"columns found {known!r} invalid, but the candidate's inputs accept it")
        if self.plan.candidate.on_invalid == "reject":
            return Rejected(errors)
        return fallback(self.plan.candidate, "input_invalid", errors=errors)

    def outcome_codes(self) -> npt.NDArray[np.int64]:
        """Per row: the candidate's outcome as an index into its outcomes, len(outcomes) for a
        rejection, NOT_REPLAYABLE_CODE when it cannot be replayed."""
        candidate = self.plan.candidate
        outcomes = candidate.outcomes
        index = {name: i for i, name in enumerate(outcomes)}
        codes = np.full(self.rows, NOT_REPLAYABLE_CODE, dtype=np.int64)
        if self.vector is not None:
            codes[self.decided] = self.vector.outcome_codes
        fallback_code = index[candidate.fallback_outcome]
        codes[self.kind == INVALID] = len(outcomes) if candidate.on_invalid == "reject" else fallback_code
        codes[self.kind == FALLBACK] = fallback_code
        for i, replayed in self.one_by_one.items():
            if isinstance(replayed, Decision):
                codes[i] = index[replayed.outcome]
            elif isinstance(replayed, Rejected):
                codes[i] = len(outcomes)
        return codes

    def fallbacks(self) -> int:
        """Rows the columns settled as the candidate's fallback decision (one-by-one rows not counted)."""
        invalid = 0 if self.plan.candidate.on_invalid == "reject" else np.count_nonzero(self.kind == INVALID)
        return int(invalid + np.count_nonzero(self.kind == FALLBACK))


def replay_chunk(plan: Plan, records: Sequence[Any], input_names: Sequence[str]) -> ChunkReplay:
    """Replay `records` (decoded with `record_type(input_names)`) under the plan's candidate."""
    candidate = plan.candidate
    rows = len(records)
    inputs = list(map(attrgetter("input"), records))
    versions = _Versions(plan, list(map(attrgetter("policy_version"), records)))
    invalid = np.zeros(rows, dtype=np.bool_)
    uncertain = np.zeros(rows, dtype=np.bool_)
    columns: dict[str, Column] = {}
    unknown: dict[str, tuple[BoolArray, BoolArray]] = {}
    for f in candidate.inputs.fields:
        column = _classify(f, list(map(attrgetter(f.name), inputs)), versions)
        columns[f.name] = column.values
        invalid |= column.invalid
        uncertain |= column.uncertain
        if f.name in plan.reads:
            unknown[f.name] = (column.hashed, column.dropped)
    if candidate.inputs.reject_extra:
        for name in input_names:
            if name not in plan.names:
                invalid |= _sent(list(map(attrgetter(name), inputs)))
    unscored = np.zeros(rows, dtype=np.bool_)
    for name in ("score", "confidence", "margin"):
        values = np.array(list(map(attrgetter(name), records)), dtype=np.float64)
        unscored |= np.isnan(values)
        columns[name] = values
    columns["label"] = _categorical(list(map(attrgetter("label"), records)))
    failed, unscored = _causes(list(map(attrgetter("fallback"), records)), unscored)
    not_replayable = unscored.copy()
    for hashed, dropped in unknown.values():
        not_replayable |= hashed | dropped
    kind = np.full(rows, DECIDED, dtype=np.int8)
    kind[not_replayable] = NOT_REPLAYABLE
    kind[failed] = FALLBACK
    kind[invalid] = INVALID
    kind[uncertain] = ONE_BY_ONE
    decided = np.flatnonzero(kind == DECIDED)
    vector = None
    if len(decided):
        subset = columns if len(decided) == rows else {k: _take(v, decided) for k, v in columns.items()}
        vector = decide_vector(candidate, subset, len(decided))
    singles: dict[int, Replayed] = {}
    for i in np.flatnonzero(uncertain).tolist():
        r = records[i]
        singles[i] = replay_record(plan, r.policy_version, input_dict(r.input), score_fields(r), r.fallback)
    return ChunkReplay(plan, records, kind, decided, vector, unknown, unscored, versions.counts(), singles)


def _causes(causes: list[str | None], unscored: BoolArray) -> tuple[BoolArray, BoolArray]:
    """Rows recorded as a failure after validation, and rows without model output."""
    if all(cause is None for cause in causes):
        return np.zeros(len(causes), dtype=np.bool_), unscored
    failed = np.array([cause is not None and cause != "input_invalid" for cause in causes], dtype=np.bool_)
    recorded_invalid = np.array([cause == "input_invalid" for cause in causes], dtype=np.bool_)
    return failed, unscored | recorded_invalid


class _Versions:
    """The recorded version of each row, as codes, and which rows' versions keep an input."""

    def __init__(self, plan: Plan, versions: list[str]) -> None:
        self.plan = plan
        self.index = {version: i for i, version in enumerate(set(versions))}
        self.codes = np.fromiter(map(self.index.__getitem__, versions), dtype=np.int32, count=len(versions))

    def keeping(self, name: str) -> BoolArray:
        """Rows whose recorded version keeps input `name`: where it is absent, it was not sent."""
        kept = self.plan.kept
        keepers = [code for version, code in self.index.items() if name in kept.get(version, ())]
        return np.isin(self.codes, keepers)

    def counts(self) -> dict[str, int]:
        totals = np.bincount(self.codes, minlength=len(self.index)).tolist()
        return {version: totals[code] for version, code in self.index.items()}


def _take(column: Column, rows: IndexArray) -> Column:
    if isinstance(column, Categorical):
        return Categorical(column.codes[rows], column.categories)
    return column[rows]


def _sent(values: list[Any]) -> BoolArray:
    """Rows where a value was sent (not null, not absent from the record)."""
    if set(map(type, values)) <= {_NONE, _UNSET}:
        return np.zeros(len(values), dtype=np.bool_)
    return np.array([v is not None and v is not msgspec.UNSET for v in values], dtype=np.bool_)


def _categorical(values: list[Any]) -> Categorical:
    """A string column (values str or None), its categories sorted."""
    categories = sorted(set(values) - {None})
    index: dict[str | None, int] = {value: i for i, value in enumerate(categories)}
    index[None] = -1
    codes = np.fromiter(map(index.__getitem__, values), dtype=np.int32, count=len(values))
    return Categorical(codes, tuple(categories))


@dataclass(frozen=True, slots=True)
class _Classified:
    values: Column  # the validated column (missing: NaN or -1; defaults applied)
    invalid: BoolArray  # a known value the candidate refuses (or a required input not sent)
    uncertain: BoolArray  # rows the columns cannot settle: replayed one by one
    hashed: BoolArray
    dropped: BoolArray


def _classify(f: InputField, values: list[Any], versions: _Versions) -> _Classified:
    """One input's column and, per row, whether its value is usual, refused, unknown (hashed, dropped) or odd."""
    rows = len(values)
    invalid = np.zeros(rows, dtype=np.bool_)
    uncertain = np.zeros(rows, dtype=np.bool_)
    hashed = np.zeros(rows, dtype=np.bool_)
    dropped = np.zeros(rows, dtype=np.bool_)
    usual = _USUAL_TYPES[f.type]
    if not set(map(type, values)) <= usual:
        values = list(values)
        absent = np.zeros(rows, dtype=np.bool_)
        for i, value in enumerate(values):
            if type(value) in usual:
                continue
            values[i] = None
            if value is msgspec.UNSET:
                absent[i] = True
            elif is_unknown_value(value):
                hashed[i] = True
            else:
                invalid[i] = True  # a bool for a number, a number for a string, a list, an object...
        if absent.any():
            dropped |= absent & ~versions.keeping(f.name)  # else: known not to have been sent
    unknown = hashed | dropped
    if f.type == "str":
        column: Column = _str_column(f, values, invalid, unknown, hashed)
    else:
        column = _number_column(f, values, invalid, uncertain, unknown)
    return _Classified(column, invalid & ~uncertain, uncertain, hashed, dropped)


def _number_column(
    f: InputField, values: list[Any], invalid: BoolArray, uncertain: BoolArray, unknown: BoolArray
) -> FloatArray:
    try:
        column = np.array(values, dtype=np.float64)  # null -> NaN; JSON holds no NaN
    except OverflowError:  # an integer too large for a float: left to the one-by-one checks
        for i, value in enumerate(values):
            if type(value) is int and not -EXACT < value < EXACT:
                values[i] = None
                uncertain[i] = True
        column = np.array(values, dtype=np.float64)
    missing = np.isnan(column) & ~(invalid | uncertain | unknown)
    present = ~np.isnan(column)
    with np.errstate(invalid="ignore"):
        uncertain |= present & ~(np.abs(column) < EXACT)  # past 2**53 (or infinite): one by one
        bad = np.zeros(len(values), dtype=np.bool_)
        if f.min is not None:
            bad |= present & (column < f.min)
        if f.max is not None:
            bad |= present & (column > f.max)
    if f.allowed is not None:
        allowed = [float(v) for v in f.allowed]
        if all(abs(v) < EXACT for v in allowed):
            bad |= present & ~np.isin(column, allowed)
        else:
            uncertain |= present
    invalid |= bad
    if f.required:
        invalid |= missing
    elif f.default is not None:
        column[missing] = float(f.default)
    return column


def _str_column(
    f: InputField, values: list[Any], invalid: BoolArray, unknown: BoolArray, hashed: BoolArray
) -> Categorical:
    column = _categorical(values)
    codes, categories = column.codes, column.categories
    secret = [i for i, value in enumerate(categories) if is_unknown_value(value)]
    refused = [i for i, value in enumerate(categories) if not is_unknown_value(value) and not _str_passes(f, value)]
    if secret:
        in_secret = np.isin(codes, secret)
        hashed |= in_secret
        unknown |= in_secret
    if refused:
        invalid |= np.isin(codes, refused)
    missing = (codes == -1) & ~(invalid | unknown)
    if f.required:
        invalid |= missing
    elif f.default is not None and missing.any():
        default = str(f.default)
        code = column.index.get(default)
        if code is None:
            code, categories = len(categories), (*categories, default)
        column = Categorical(np.where(missing, np.int32(code), codes), categories)
    return column


def _str_passes(f: InputField, value: str) -> bool:
    if f.allowed is not None and value not in f.allowed:
        return False
    return f.max_length is None or len(value) <= f.max_length
