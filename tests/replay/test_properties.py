"""A law: over columns or one by one, replay gives the same result for any stored record.

Recorded traffic holds clean values; these records hold anything a stored record can: an
invalid request's raw values (a string for a number, a bool for an int, a list, integers
past 64 bits or past 2**53), hashed and absent fields, fields no version declares, recorded
versions whose source is or is not known, any fallback cause, missing score fields.
"""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guardrails.audit.record import HASH_PREFIX, AuditRecord
from guardrails.policy.load import load_policy_text
from guardrails.replay import RecordDecoder
from guardrails.replay_record import Plan, make_plan, replay_record
from guardrails.replay_vector import replay_chunk
from guardrails.scores import ScoreFields

from .conftest import LENDING, LENDING_V1, edit
from .test_agreement import CANDIDATES, code_of

V1 = load_policy_text(LENDING_V1, "v1.yaml")
V2 = load_policy_text(LENDING, "v2.yaml")
VERSIONS = (V1.version_id, V2.version_id, "0123456789abcdef")  # the last one's source is not kept
PLANS: list[Plan] = [
    make_plan(load_policy_text(text, f"{name}.yaml"), {V1.version_id: V1, V2.version_id: V2})
    for name, text in CANDIDATES.items()
] + [
    make_plan(load_policy_text(edit(LENDING, ("on_invalid: fallback", "on_invalid: reject")), "reject.yaml"), {}),
]
NAMES = sorted({f.name for plan in PLANS for f in plan.candidate.inputs.fields} | {"unexpected"})

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=5),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**53 - 1, 2**53, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), 1_000_000, 1_000_001, 20000, 20001]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 0.5, 2.0, 50000.5, 1e300, 1_000_000.0]),
    st.sampled_from(["US", "KP", "XX", "vip", "standard", "", "x" * 20, "x" * 21, "é" * 20, "é" * 21]),
    st.text(max_size=30),
    st.just(HASH_PREFIX + "0" * 64),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
inputs = st.dictionaries(st.sampled_from(NAMES), values, max_size=len(NAMES))
score = st.one_of(st.none(), st.floats(min_value=0, max_value=1))
records = st.fixed_dictionaries(
    {
        "policy_version": st.sampled_from(VERSIONS),
        "input": inputs,
        "score": score,
        "confidence": st.one_of(st.none(), st.floats(min_value=0, max_value=1)),
        "margin": score,
        "label": st.sampled_from([None, "good", "bad", "other"]),
        "fallback": st.sampled_from([None, None, None, "input_invalid", "upstream_timeout", "a_new_cause"]),
        "outcome": st.sampled_from(["approve", "review", "decline"]),
    }
)


def stored(i: int, fields: dict[str, Any]) -> bytes:
    return msgspec.json.encode(
        {
            "decision_id": f"d-{i}",
            "ts_ms": 0,
            "kind": "decision",
            "endpoint": "decide",
            "policy": "lending",
            "policy_label": None,
            "reasons": ["LOW_RISK"],
            **fields,
        }
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records, min_size=1, max_size=25), st.sampled_from(range(len(PLANS))))
def test_over_columns_equals_one_by_one_for_any_record(batch: list[dict[str, Any]], which: int) -> None:
    plan = PLANS[which]
    blobs = [stored(i, fields) for i, fields in enumerate(batch)]
    decoder = RecordDecoder(plan.names)
    replayed = replay_chunk(plan, decoder.decode_all(blobs, list(range(len(blobs)))), decoder.names)
    codes = replayed.outcome_codes().tolist()
    for i, blob in enumerate(blobs):
        record = msgspec.json.decode(blob, type=AuditRecord)
        fields = None
        if record.score is not None and record.confidence is not None and record.margin is not None:
            fields = ScoreFields(record.score, record.confidence, record.margin, record.label)
        want = replay_record(plan, record.policy_version, record.input, fields, record.fallback)
        assert replayed.result(i) == want, f"{batch[i]!r}"
        assert codes[i] == code_of(plan, want), f"{batch[i]!r}"
