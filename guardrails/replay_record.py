"""Replay one recorded decision under a candidate policy: the per-record reference.

A record keeps the input as the audit log may keep it: `audit: hash` values are keyed
hashes and `audit: drop` fields are absent. A field whose value the record does not hold
is unknown: it is not re-validated (its value cannot be checked), and if the candidate's
conditions read it the record is not replayable, never guessed. A field absent from the
record is known to be missing only when the recorded version (whose source the audit store
keeps) declares it and keeps it: a rejected-input record holds only what the caller sent.

Then, as the service would: the input is validated first (invalid: the candidate's
`input_invalid` fallback, or a rejection with `on_invalid: reject`); a recorded upstream or
output failure gives the candidate's fallback with the same cause; a request recorded as
invalid that the candidate accepts has no model output to decide on; anything else is
decided from the recorded score fields, with `decide`. `replay_vector` does the same over
columns, and is tested against this, record by record.

Pure: imports the stdlib, msgspec and the policy modules only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from guardrails.audit.record import HASH_PREFIX
from guardrails.decide import CAUSES, Cause, Decision, decide, fallback
from guardrails.policy.compile import CompiledPolicy
from guardrails.policy.expr import referenced_names
from guardrails.policy.inputs import FieldError, InputSchema
from guardrails.scores import ScoreFields

UNKNOWN_HASHED, UNKNOWN_DROPPED = "hashed", "dropped"


class RecordedRule(msgspec.Struct, frozen=True, gc=False):
    name: str
    mode: str


class Rejected(msgspec.Struct, frozen=True):
    """The candidate would have answered 422: its `inputs:` refuse the input, with `on_invalid: reject`."""

    errors: list[FieldError]


class NotReplayable(msgspec.Struct, frozen=True):
    """What the candidate would need that the record does not hold."""

    hashed: tuple[str, ...] = ()  # inputs the candidate reads whose values the record hashed
    dropped: tuple[str, ...] = ()  # inputs the candidate reads that the record does not hold
    unscored: bool = False  # no model output: the recorded request was invalid, the candidate accepts it


Replayed = Decision | Rejected | NotReplayable


@dataclass(frozen=True)
class Plan:
    """A candidate policy, prepared for replay: what it reads, and its input checks per set of unknown fields."""

    candidate: CompiledPolicy
    reads: frozenset[str]  # input fields its thresholds and rules read
    kept: Mapping[str, frozenset[str]]  # recorded version id -> the inputs its records keep (declared, not dropped)
    names: tuple[str, ...] = field(init=False)
    _schemas: dict[frozenset[str], InputSchema] = field(init=False, default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(f.name for f in self.candidate.inputs.fields))

    def schema_without(self, unknown: frozenset[str]) -> InputSchema:
        """The candidate's input checks on the fields whose values are known."""
        schema = self._schemas.get(unknown)
        if schema is None:
            inputs = self.candidate.inputs
            if unknown:
                fields = tuple(f for f in inputs.fields if f.name not in unknown)
                schema = InputSchema(self.candidate.name, fields, inputs.reject_extra)
            else:
                schema = inputs
            self._schemas[unknown] = schema
        return schema


def make_plan(candidate: CompiledPolicy, recorded: Mapping[str, CompiledPolicy] | None = None) -> Plan:
    """The replay plan of `candidate`; `recorded` holds the recorded versions whose source is known, by id."""
    trees = [t.when.tree for t in candidate.thresholds if t.when is not None] + [r.when.tree for r in candidate.rules]
    inputs = {f.name for f in candidate.inputs.fields}
    reads = frozenset(name for tree in trees for name in referenced_names(tree) if name in inputs)
    kept = {
        version_id: frozenset(f.name for f in policy.inputs.fields if f.audit != "drop")
        for version_id, policy in (recorded or {}).items()
    }
    return Plan(candidate, reads, kept)


def is_unknown_value(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(HASH_PREFIX)


def split_input(plan: Plan, version: str, recorded: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The known values to validate (null counts as not sent), and the unknown inputs with why."""
    known: dict[str, Any] = {}
    unknown: dict[str, str] = {}
    kept = plan.kept.get(version, frozenset())
    for name in plan.names:
        if name in recorded:
            value = recorded[name]
            if is_unknown_value(value):
                unknown[name] = UNKNOWN_HASHED
            elif value is not None:
                known[name] = value
        elif name not in kept:
            unknown[name] = UNKNOWN_DROPPED
    for name in sorted(recorded.keys() - set(plan.names)):  # inputs the candidate does not declare, in a fixed order
        if recorded[name] is not None:
            known[name] = recorded[name]  # refused with extra_fields: reject
    return known, unknown


def replay_record(
    plan: Plan, version: str, recorded: Mapping[str, Any], fields: ScoreFields | None, cause: str | None
) -> Replayed:
    """What the candidate decides for one recorded decision (`cause`: the recorded fallback cause, if any)."""
    candidate = plan.candidate
    known, unknown = split_input(plan, version, recorded)
    checked = plan.schema_without(frozenset(unknown)).from_mapping(known)
    if isinstance(checked, list):
        if candidate.on_invalid == "reject":
            return Rejected(checked)
        return fallback(candidate, "input_invalid", errors=checked)
    if cause is not None and cause != "input_invalid":
        return fallback(candidate, as_cause(cause))
    hashed = tuple(n for n in plan.names if n in plan.reads and unknown.get(n) == UNKNOWN_HASHED)
    dropped = tuple(n for n in plan.names if n in plan.reads and unknown.get(n) == UNKNOWN_DROPPED)
    unscored = cause == "input_invalid" or fields is None
    if hashed or dropped or unscored:
        return NotReplayable(hashed, dropped, unscored)
    assert fields is not None
    values = {name: None for name in unknown} | checked  # unknown inputs are never read
    return decide(candidate, values, fields)


def as_cause(cause: str) -> Cause:
    """A recorded fallback cause; one this version does not know counts as an internal error."""
    for known in CAUSES:
        if known == cause:
            return known
    return "internal_error"
