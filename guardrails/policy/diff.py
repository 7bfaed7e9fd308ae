"""What changed in meaning between two versions of a policy: thresholds, rules, outcomes, inputs, settings.

Both files are compared as compiled policies, so formatting, comments, quoting and key
order do not count. Expressions are compared by their parsed form (`ast.dump`, with integer
literals as floats, since every number is a float), so `score>=0.85` equals
`score >= 0.85`. Rules are matched by name; thresholds, which have no names, by what they
are (their `when`, outcome and reason), then by outcome and reason, then by `when`. The
`monitor:` section counts too, with its reference file's content (by hash).
Owner, description, the version label and the tests change no decision: they are listed
apart, as metadata.

Imports the stdlib, msgspec and the policy modules only.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, Literal

import msgspec

from guardrails.policy.compile import CompiledPolicy, Rule, Threshold
from guardrails.policy.inputs import InputField

Kind = Literal["added", "removed", "changed", "reordered"]
_INPUT_CONSTRAINTS = ("type", "required", "default", "min", "max", "allowed", "max_length", "audit")
_CONSTRAINT_KEYS = {"allowed": "in"}


class FieldChange(msgspec.Struct, frozen=True):
    field: str
    old: Any
    new: Any


class Change(msgspec.Struct, frozen=True):
    section: str  # thresholds, rules, outcomes, inputs, fallback, score, upstream, policy, metadata
    kind: Kind
    item: str  # what: a rule or input name, `threshold 2 (review UNCERTAIN)`, or "" for the section itself
    fields: list[FieldChange] = []


class PolicyDiff(msgspec.Struct, frozen=True):
    old_file: str
    new_file: str
    old_version: str
    new_version: str
    changes: list[Change]  # changes in meaning
    metadata: list[Change]  # changes that decide nothing

    @property
    def same_meaning(self) -> bool:
        return not self.changes


def normalise(expression: str) -> str:
    """An expression's parsed form: equal for texts that differ only in spacing, brackets or `1` vs `1.0`."""
    tree = ast.parse(expression.strip(), mode="eval")
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and type(node.value) is int:
            node.value = float(node.value)
    return ast.dump(tree)


def diff_policies(old: CompiledPolicy, new: CompiledPolicy) -> PolicyDiff:
    """What changed from `old` to `new`."""
    changes = [
        *_thresholds(old.thresholds, new.thresholds),
        *_rules(old.rules, new.rules),
        *_outcomes(old.outcomes, new.outcomes),
        *_inputs(old, new),
        *_settings(old, new),
    ]
    return PolicyDiff(old.file, new.file, old.version_id, new.version_id, changes, _metadata(old, new))


# ---- settings ----------------------------------------------------------------------------


def _settings(old: CompiledPolicy, new: CompiledPolicy) -> list[Change]:
    upstream_old, upstream_new = _flat(msgspec.to_builtins(old.upstream)), _flat(msgspec.to_builtins(new.upstream))
    return [
        *_each_changed("fallback", _fallback(old), _fallback(new)),
        *_each_changed("score", dataclasses.asdict(old.scores), dataclasses.asdict(new.scores)),
        *_each_changed("policy", _policy_settings(old), _policy_settings(new)),
        *_each_changed("upstream", upstream_old, upstream_new),
        *_monitor_changes(_monitor(old), _monitor(new)),
    ]


def _monitor(policy: CompiledPolicy) -> dict[str, Any] | None:
    """The `monitor:` section, with the hash of the reference's content (its file name alone says little)."""
    monitor = getattr(policy, "monitor", None)
    if monitor is None:
        return None
    return {**_flat(msgspec.to_builtins(monitor.spec)), "reference content": monitor.reference_hash}


def _monitor_changes(old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[Change]:
    if old is None and new is not None:
        return [Change("monitor", "added", "", _added(new))]
    if old is not None and new is None:
        return [Change("monitor", "removed", "", _removed(old))]
    return _each_changed("monitor", old or {}, new or {})


def _policy_settings(policy: CompiledPolicy) -> dict[str, Any]:
    return {
        "policy": policy.name,
        "shadow_of": getattr(policy, "shadow_of", None),
        "on_invalid": policy.on_invalid,
        "extra_fields": "reject" if policy.inputs.reject_extra else "ignore",
    }


def _fallback(policy: CompiledPolicy) -> dict[str, Any]:
    return {"outcome": policy.fallback_outcome, "reason": policy.fallback_reason}


def _metadata(old: CompiledPolicy, new: CompiledPolicy) -> list[Change]:
    changes = _each_changed(
        "metadata",
        {"version": old.version, "owner": old.owner, "description": old.description},
        {"version": new.version, "owner": new.owner, "description": new.description},
    )
    if msgspec.to_builtins(list(old.tests)) != msgspec.to_builtins(list(new.tests)):
        counts = FieldChange("tests", f"{len(old.tests)} cases", f"{len(new.tests)} cases")
        changes.append(Change("metadata", "changed", "", [counts]))
    return changes


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested settings as dotted keys: `circuit_breaker.failures`."""
    if not isinstance(value, dict):
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, item in value.items():
        flat.update(_flat(item, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _each_changed(section: str, old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """One change per setting whose value differs."""
    keys = dict.fromkeys([*old, *new])
    return [
        Change(section, "changed", "", [FieldChange(k, old.get(k), new.get(k))])
        for k in keys
        if not _same_value(old.get(k), new.get(k))
    ]


def _same_value(old: Any, new: Any) -> bool:
    """Equal, and of the same type (but 0 and 0.0 are the same number)."""
    if _number(old) and _number(new):
        return bool(old == new)
    return type(old) is type(new) and bool(old == new)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# ---- outcomes ----------------------------------------------------------------------------


def _outcomes(old: Sequence[str], new: Sequence[str]) -> list[Change]:
    changes = [Change("outcomes", "added", name) for name in new if name not in old]
    changes += [Change("outcomes", "removed", name) for name in old if name not in new]
    changes += _order("outcomes", [o for o in old if o in new], [o for o in new if o in old])
    return changes


def _order(section: str, old: list[str], new: list[str]) -> list[Change]:
    """`old` and `new` hold the same items: a change when their order differs."""
    return [] if old == new else [Change(section, "reordered", "", [FieldChange("order", old, new)])]


# ---- thresholds --------------------------------------------------------------------------


def _threshold_key(t: Threshold) -> tuple[str | None, str, str]:
    return (None if t.when is None else normalise(t.when.text), t.outcome, t.reason)


def _threshold_name(t: Threshold, position: int) -> str:
    return f"{position + 1} ({t.outcome} {t.reason})"


def _threshold_fields(t: Threshold) -> dict[str, Any]:
    return {"when": None if t.when is None else t.when.text, "outcome": t.outcome, "reason": t.reason}


def _thresholds(old: Sequence[Threshold], new: Sequence[Threshold]) -> list[Change]:
    keys_old, keys_new = [_threshold_key(t) for t in old], [_threshold_key(t) for t in new]
    pairs = _match(
        len(old),
        len(new),
        [
            lambda i, j: keys_old[i] == keys_new[j],
            lambda i, j: keys_old[i][1:] == keys_new[j][1:],
            lambda i, j: keys_old[i][0] == keys_new[j][0],
        ],
    )
    changes: list[Change] = []
    for i, j in sorted(pairs, key=lambda pair: pair[1]):
        if keys_old[i] != keys_new[j]:
            fields = _threshold_fields(old[i]), _threshold_fields(new[j])
            moved = [FieldChange(k, fields[0][k], fields[1][k]) for k in fields[0] if _differs(k, old[i], new[j])]
            changes.append(Change("thresholds", "changed", _threshold_name(new[j], j), moved))
    matched_old, matched_new = {i for i, _ in pairs}, {j for _, j in pairs}
    for j, t in enumerate(new):
        if j not in matched_new:
            changes.append(Change("thresholds", "added", _threshold_name(t, j), _added(_threshold_fields(t))))
    for i, t in enumerate(old):
        if i not in matched_old:
            changes.append(Change("thresholds", "removed", _threshold_name(t, i), _removed(_threshold_fields(t))))
    by_new = sorted(pairs, key=lambda pair: pair[1])
    if [i for i, _ in by_new] != sorted(i for i, _ in by_new):
        names_old = [f"{old[i].outcome} {old[i].reason}" for i, _ in sorted(pairs)]
        names_new = [f"{old[i].outcome} {old[i].reason}" for i, _ in by_new]
        changes.append(Change("thresholds", "reordered", "", [FieldChange("order", names_old, names_new)]))
    return changes


def _differs(key: str, old: Threshold, new: Threshold) -> bool:
    if key == "when":
        return _threshold_key(old)[0] != _threshold_key(new)[0]
    return bool(getattr(old, key) != getattr(new, key))


def _match(count_old: int, count_new: int, tests: list[Callable[[int, int], bool]]) -> list[tuple[int, int]]:
    """Pair items, each test in turn over what is left unpaired, first come first paired."""
    pairs: list[tuple[int, int]] = []
    free_old, free_new = list(range(count_old)), list(range(count_new))
    for same in tests:
        for i in list(free_old):
            j = next((j for j in free_new if same(i, j)), None)
            if j is not None:
                pairs.append((i, j))
                free_old.remove(i)
                free_new.remove(j)
    return pairs


# ---- rules -------------------------------------------------------------------------------


def _rule_fields(rule: Rule) -> dict[str, Any]:
    return {
        "when": rule.when.text,
        "outcome": rule.outcome,
        "reason": rule.reason,
        "final": rule.final,
        "mode": "shadow" if rule.shadow else "enforce",
    }


def _rule_set(rule: Rule) -> dict[str, Any]:
    """What a rule sets, leaving out `final: false` and `mode: enforce`."""
    fields = _rule_fields(rule)
    return {k: v for k, v in fields.items() if (k, v) not in (("final", False), ("mode", "enforce"))}


def _rules(old: Sequence[Rule], new: Sequence[Rule]) -> list[Change]:
    by_name_old, by_name_new = {r.name: r for r in old}, {r.name: r for r in new}
    changes: list[Change] = []
    for rule in new:
        before = by_name_old.get(rule.name)
        if before is None:
            changes.append(Change("rules", "added", rule.name, _added(_rule_set(rule))))
            continue
        a, b = _rule_fields(before), _rule_fields(rule)
        same_when = normalise(before.when.text) == normalise(rule.when.text)
        fields = [
            FieldChange(k, a[k], b[k]) for k in a if (k != "when" and a[k] != b[k]) or (k == "when" and not same_when)
        ]
        if fields:
            changes.append(Change("rules", "changed", rule.name, fields))
    changes += [Change("rules", "removed", r.name, _removed(_rule_set(r))) for r in old if r.name not in by_name_new]
    common_old = [r.name for r in old if r.name in by_name_new]
    common_new = [r.name for r in new if r.name in by_name_old]
    return changes + _order("rules", common_old, common_new)


# ---- inputs ------------------------------------------------------------------------------


def _input_fields(f: InputField) -> dict[str, Any]:
    values = {_CONSTRAINT_KEYS.get(k, k): getattr(f, k) for k in _INPUT_CONSTRAINTS}
    values["in"] = None if f.allowed is None else list(f.allowed)
    return values


def _inputs(old: CompiledPolicy, new: CompiledPolicy) -> list[Change]:
    fields_old = {f.name: f for f in old.inputs.fields}
    fields_new = {f.name: f for f in new.inputs.fields}
    changes: list[Change] = []
    for name, f in fields_new.items():
        before = fields_old.get(name)
        if before is None:
            changes.append(Change("inputs", "added", name, _added(_present(_input_fields(f)))))
            continue
        a, b = _input_fields(before), _input_fields(f)
        moved = [FieldChange(k, a[k], b[k]) for k in a if not _same_constraint(k, a[k], b[k])]
        if moved:
            changes.append(Change("inputs", "changed", name, moved))
    for name, f in fields_old.items():
        if name not in fields_new:
            changes.append(Change("inputs", "removed", name, _removed(_present(_input_fields(f)))))
    return changes


def _same_constraint(key: str, old: Any, new: Any) -> bool:
    if key == "in" and old is not None and new is not None:
        return _value_set(old) == _value_set(new)  # the order of allowed values does not count
    return _same_value(old, new)


def _value_set(values: list[Any]) -> set[tuple[bool, Any]]:
    return {(isinstance(v, bool), v) for v in values}


def _present(values: dict[str, Any]) -> dict[str, Any]:
    """The constraints an input sets (not the ones left at their defaults)."""
    defaults = {"required": None, "default": None, "min": None, "max": None, "in": None, "max_length": None}
    shown = {k: v for k, v in values.items() if k not in defaults or v is not None}
    if values["required"] or values["default"] is not None:
        shown.pop("required", None)  # required, or has a default: the usual case, not shown
    else:
        shown["required"] = False
    if shown.get("audit") == "keep":
        del shown["audit"]
    return shown


def _added(values: dict[str, Any]) -> list[FieldChange]:
    return [FieldChange(k, None, v) for k, v in values.items()]


def _removed(values: dict[str, Any]) -> list[FieldChange]:
    return [FieldChange(k, v, None) for k, v in values.items()]


# ---- text --------------------------------------------------------------------------------

_MARK = {"added": "+", "removed": "-", "changed": "~", "reordered": "~"}
_PREFIX = {"thresholds": "threshold ", "rules": "rule ", "inputs": "input ", "outcomes": "outcome "}


def render_text(diff: PolicyDiff) -> str:
    """The differences for a person at a terminal, one line per change, grouped by section."""
    lines = [f"--- {diff.old_file} (id {diff.old_version})", f"+++ {diff.new_file} (id {diff.new_version})"]
    section = None
    for change in diff.changes:
        if change.section != section:
            section = change.section
            lines.append(f"{section}:")
        lines.append(f"  {_MARK[change.kind]} {_describe(change)}")
    if diff.metadata:
        lines.append("metadata (decides nothing):")
        lines += [f"  ~ {_describe(change)}" for change in diff.metadata]
    count = len(diff.changes)
    lines.append("no changes in meaning" if not count else f"{count} change{'s' if count != 1 else ''} in meaning")
    return "\n".join(lines) + "\n"


def _describe(change: Change) -> str:
    parts = "; ".join(_show_field(f, change.kind) for f in change.fields)
    if not change.item:
        return parts
    head = f"{_PREFIX.get(change.section, '')}{change.item}"
    return f"{head}: {parts}" if parts else head


def _show_field(f: FieldChange, kind: Kind) -> str:
    if kind == "added":
        return f"{f.field} {_show(f.field, f.new)}"
    if kind == "removed":
        return f"{f.field} {_show(f.field, f.old)}"
    return f"{f.field} {_show(f.field, f.old)} -> {_show(f.field, f.new)}"


def _show(key: str, value: Any) -> str:
    if key == "when" and isinstance(value, str):
        return f"`{value}`"
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_show("", v) for v in value) + "]"
    return str(value)
