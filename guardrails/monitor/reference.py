"""The reference profile: how the data a model was trained or validated on is distributed.

A `Reference` is a versioned msgspec Struct, kept as JSON beside the policy. For each of the
policy's inputs it holds one profile, by the input's type:

- int and float: **numeric**: quantile bin edges (10 bins by default; equal edges, as in
  discrete data, are merged) and the share of rows in each bin. Bin `i` holds the values
  `edges[i-1] < v <= edges[i]`; the first and last bins are open-ended, so a live value
  outside the reference's range still lands in a bin.
- str and bool: **categorical**: the share of each category; `other` for values the
  reference did not see (a str input with `in:` has exactly those categories; without
  `in:`, the most frequent values, up to 50, each at least 0.1% of rows).
- any input marked `audit: hash` or `audit: drop`: **presence** only. The reference never
  holds the values of an input the policy treats as sensitive; only its missing rate.

Every profile has `missing`, the share of rows where the input was absent (after defaults),
and the shares of a profile (bins, other, missing) add up to 1. `score` is a numeric profile
of the model's scores when a score column was given.

Pure: imports the stdlib, msgspec, numpy and `guardrails.policy.inputs` only.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
import numpy as np

from guardrails.policy.inputs import InputField

FORMAT_VERSION = 1
DEFAULT_BINS = 10
MAX_CATEGORIES = 50
MIN_CATEGORY_SHARE = 0.001
SENSITIVE = ("hash", "drop")
_SUM_TOLERANCE = 1e-6


class NumericProfile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag="numeric"):
    edges: list[float]
    proportions: list[float]  # one more than `edges`
    missing: float = 0.0


class CategoricalProfile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag="categorical"):
    categories: list[str | bool]
    proportions: list[float]  # one per category
    other: float
    missing: float


class PresenceProfile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag="presence"):
    missing: float


InputProfile = NumericProfile | CategoricalProfile | PresenceProfile


class Reference(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    version: int
    policy: str  # the policy it was built with (informational: inputs are what must match)
    rows: int
    inputs: dict[str, InputProfile]
    score_column: str | None = None
    score: NumericProfile | None = None


class _Header(msgspec.Struct):
    version: int


_DECODER = msgspec.json.Decoder(Reference)
_HEADER = msgspec.json.Decoder(_Header)


def shares(profile: InputProfile) -> list[float]:
    """The profile as one distribution: bins (and `other`), then `missing` last."""
    if isinstance(profile, NumericProfile):
        return [*profile.proportions, profile.missing]
    if isinstance(profile, CategoricalProfile):
        return [*profile.proportions, profile.other, profile.missing]
    return [1.0 - profile.missing, profile.missing]


def kind_of(field: InputField) -> type[InputProfile]:
    """The profile an input gets, from its type and its audit setting."""
    if field.audit in SENSITIVE:
        return PresenceProfile
    return NumericProfile if field.type in ("int", "float") else CategoricalProfile


def quantile_edges(values: np.ndarray[Any, np.dtype[np.float64]], bins: int) -> list[float]:
    """The inner edges of `bins` quantile bins of `values`, equal edges merged (empty `values`: none)."""
    if values.size == 0 or bins < 2:
        return []
    cuts = np.quantile(values, np.arange(1, bins) / bins, method="inverted_cdf")
    return [float(edge) for edge in np.unique(cuts)]


def bin_counts(edges: Sequence[float], values: np.ndarray[Any, np.dtype[np.float64]]) -> list[int]:
    """How many `values` fall in each bin: bin i holds edges[i-1] < v <= edges[i]."""
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="left")
    return [int(c) for c in np.bincount(index, minlength=len(edges) + 1)]


def numeric_profile(column: Sequence[Any], bins: int = DEFAULT_BINS) -> NumericProfile:
    present = np.array([v for v in column if v is not None], dtype=np.float64)
    rows = len(column)
    edges = quantile_edges(present, bins)
    counts = bin_counts(edges, present)
    return NumericProfile(edges=edges, proportions=[c / rows for c in counts], missing=(rows - present.size) / rows)


def categorical_profile(field: InputField, column: Sequence[Any]) -> CategoricalProfile:
    rows = len(column)
    seen = Counter(v for v in column if v is not None)
    categories: list[str | bool]
    if field.type == "bool":
        categories = [False, True]
    elif field.allowed is not None:
        categories = list(field.allowed)
    else:
        frequent = sorted(seen.items(), key=lambda item: (-item[1], str(item[0])))
        categories = [v for v, c in frequent[:MAX_CATEGORIES] if c / rows >= MIN_CATEGORY_SHARE]
    counted = [seen.get(c, 0) for c in categories]
    present = sum(seen.values())
    return CategoricalProfile(
        categories=categories,
        proportions=[c / rows for c in counted],
        other=(present - sum(counted)) / rows,
        missing=(rows - present) / rows,
    )


def build_reference(
    policy: str,
    fields: Sequence[InputField],
    columns: Mapping[str, Sequence[Any]],
    scores: Sequence[float] | None = None,
    score_column: str | None = None,
    bins: int = DEFAULT_BINS,
) -> Reference:
    """The reference of validated rows, given column by column (None for a missing value)."""
    rows = {len(columns[f.name]) for f in fields}
    if scores is not None:
        rows.add(len(scores))
    if len(rows) != 1 or 0 in rows:
        raise ValueError(f"every column needs the same number of rows, at least one; got {sorted(rows)}")
    inputs: dict[str, InputProfile] = {}
    for f in fields:
        column = columns[f.name]
        kind = kind_of(f)
        if kind is PresenceProfile:
            inputs[f.name] = PresenceProfile(missing=sum(v is None for v in column) / len(column))
        elif kind is NumericProfile:
            inputs[f.name] = numeric_profile(column, bins)
        else:
            inputs[f.name] = categorical_profile(f, column)
    score = None if scores is None else numeric_profile(scores, bins)
    return Reference(
        version=FORMAT_VERSION,
        policy=policy,
        rows=rows.pop(),
        inputs=inputs,
        score_column=score_column if scores is not None else None,
        score=score,
    )


def encode_reference(reference: Reference) -> bytes:
    """The reference as indented JSON (one reviewable file in the policy folder)."""
    return msgspec.json.format(msgspec.json.encode(reference), indent=2) + b"\n"


def reference_hash(reference: Reference) -> str:
    """A hash of the reference's content (not its formatting): 16 hex digits, as policy version ids."""
    return hashlib.sha256(msgspec.json.encode(reference, order="sorted")).hexdigest()[:16]


def decode_reference(data: bytes) -> Reference | str:
    """The reference in `data` (a file's bytes), or a message saying what is wrong with it."""
    try:
        header = _HEADER.decode(data)
    except msgspec.ValidationError:  # a subclass of DecodeError: first
        return "not a guardrails reference: no `version` (build one with `guardrails profile`)"
    except msgspec.DecodeError as exc:
        return f"not valid JSON ({exc})"
    if header.version != FORMAT_VERSION:
        return f"reference format version {header.version} is not supported (this guardrails reads {FORMAT_VERSION})"
    try:
        reference = _DECODER.decode(data)
    except msgspec.ValidationError as exc:
        return f"not a guardrails reference: {exc}"
    problems = _shape_problems(reference)
    return "; ".join(problems) if problems else reference


def check_reference(reference: Reference, fields: Sequence[InputField]) -> list[str]:
    """Why `reference` does not describe these inputs (empty when it does)."""
    problems: list[str] = []
    names = [f.name for f in fields]
    for f in fields:
        profile = reference.inputs.get(f.name)
        wanted = kind_of(f)
        if profile is None:
            problems.append(f"it has no profile of input `{f.name}`")
        elif not isinstance(profile, wanted):
            problems.append(
                f"input `{f.name}` ({_described(f)}) needs a {wanted.__struct_config__.tag} profile, "
                f"not a {type(profile).__struct_config__.tag} one"
            )
    extra = [name for name in reference.inputs if name not in names]
    if extra:
        problems.append(f"it profiles {', '.join(f'`{n}`' for n in extra)}, not inputs of this policy")
    return problems


def _described(field: InputField) -> str:
    return f"{field.type}, audit: {field.audit}" if field.audit in SENSITIVE else field.type


def _shape_problems(reference: Reference) -> list[str]:
    problems: list[str] = []
    if reference.rows < 1:
        problems.append("`rows` must be at least 1")
    profiles: list[tuple[str, InputProfile]] = [(f"input `{n}`", p) for n, p in reference.inputs.items()]
    if reference.score is not None:
        profiles.append(("the score", reference.score))
    for name, profile in profiles:
        problems.extend(f"{name}: {message}" for message in _profile_problems(profile))
    return problems


def _profile_problems(profile: InputProfile) -> list[str]:
    problems: list[str] = []
    if isinstance(profile, NumericProfile):
        edges = profile.edges
        if not all(math.isfinite(e) for e in edges) or any(a >= b for a, b in zip(edges, edges[1:], strict=False)):
            problems.append("`edges` must be finite and strictly increasing")
        if len(profile.proportions) != len(edges) + 1:
            problems.append(f"{len(edges)} edges need {len(edges) + 1} proportions, got {len(profile.proportions)}")
    if isinstance(profile, CategoricalProfile):
        if len(profile.proportions) != len(profile.categories):
            problems.append(f"{len(profile.categories)} categories need as many proportions")
        if len(set(profile.categories)) != len(profile.categories):
            problems.append("a category is listed twice")
    values = shares(profile)
    if not all(0.0 <= v <= 1.0 for v in values):
        problems.append("shares must be between 0 and 1")
    elif abs(math.fsum(values) - 1.0) > _SUM_TOLERANCE:
        problems.append(f"shares add up to {math.fsum(values):.6g}, not 1")
    return problems
