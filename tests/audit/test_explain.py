"""The explanation of a recorded decision, recomputed with the stored policy version."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrails.audit import render
from guardrails.audit.explain import UNKNOWN, Check, Explanation, explain, explain_record
from guardrails.audit.recorder import AuditRecorder
from guardrails.audit.sqlite import closing, connect
from guardrails.audit.store import NullAuditStore
from guardrails.decide import decide_row
from guardrails.envelope import ModelCall
from guardrails.policy.compile import CompiledPolicy
from tests.audit.conftest import AUDIT_KEY, SmallLog, v2_output


def explained(log: SmallLog, decision_id: str) -> Explanation:
    with closing(connect(log.path, readonly=True)) as connection:
        result = explain(connection, decision_id)
    assert result is not None
    return result


def results(checks: list[Check]) -> list[tuple[str, str, str]]:
    return [(check.name, check.result, check.effect) for check in checks]


def recomputed_prefix(policy: CompiledPolicy) -> str:
    return f"recomputed with the stored policy (version audit-1 id {policy.version_id}): "


def test_an_approval_with_hashed_and_dropped_fields(small_log: SmallLog, policy: CompiledPolicy) -> None:
    e = explained(small_log, small_log.low_risk)
    record = small_log.by_id(small_log.low_risk)
    assert (e.seq, e.policy, e.policy_version, e.policy_label) == (1, "credit-audit", policy.version_id, "audit-1")
    assert e.time == "2026-01-01T00:00:01.000Z"
    assert e.request_id == "req-low"
    assert e.input == record.input
    assert str(e.input["email"]).startswith("hmac-sha256:")
    assert "note" not in e.input
    assert e.redacted == {"email": "hashed", "note": "dropped"}
    assert e.model.output == v2_output(0.05).decode()
    assert (e.model.status, e.model.http_status, e.model.attempts, e.latency_ms) == ("ok", 200, 1, 2.5)
    assert (e.score, e.confidence, e.label) == (0.05, 0.95, "good")
    assert results(e.thresholds) == [
        ("1", "not matched", ""),
        ("2", "not matched", ""),
        ("3", "matched (no condition: the last threshold)", "sets the outcome: approve, reason LOW_RISK"),
    ]
    assert results(e.rules) == [
        ("sanctioned-country", "not matched", ""),
        ("large-amount-new-account", "not matched", ""),
        ("vip-never-auto-declined", "not matched", ""),
        ("blocked-email", UNKNOWN, ""),
        ("long-note", UNKNOWN, ""),
        ("repeat-defaulter", "not matched", ""),
    ]
    assert [check.unknown_fields for check in e.rules][3:5] == [["email"], ["note"]]
    assert [check.outcome_before for check in e.rules] == ["approve"] * 6
    assert (e.outcome, e.reasons, e.rules_fired, e.fallback) == ("approve", ["LOW_RISK"], [], None)
    assert e.recomputed.agrees is True
    assert e.recomputed.summary == (
        recomputed_prefix(policy) + "outcome 'approve', reasons LOW_RISK: the same as recorded; "
        "2 conditions read hashed or dropped fields, and for those the record's result was taken"
    )


def test_a_rule_sees_the_outcome_as_it_stands(small_log: SmallLog, policy: CompiledPolicy) -> None:
    e = explained(small_log, small_log.new_account)
    rule = e.rules[1]
    assert (rule.name, rule.matched, rule.outcome_before) == ("large-amount-new-account", True, "approve")
    assert rule.effect == "sets the outcome: review, adds reason LARGE_AMOUNT_NEW_ACCOUNT"
    assert [check.outcome_before for check in e.rules] == ["approve", "approve", "review", "review", "review", "review"]
    assert e.rules[3].result == "not matched"  # no email given: null is stored, not hashed, so it is known
    assert e.redacted == {"note": "dropped"}
    assert e.recomputed.summary == (
        recomputed_prefix(policy) + "outcome 'review', reasons LOW_RISK, LARGE_AMOUNT_NEW_ACCOUNT: the same as "
        "recorded; 1 condition read hashed or dropped fields, and for those the record's result was taken"
    )


def test_a_final_rule_stops_the_enforced_rules_after_it(small_log: SmallLog) -> None:
    e = explained(small_log, small_log.sanctioned_vip)
    assert results(e.rules)[:3] == [
        (
            "sanctioned-country",
            "matched",
            "sets the outcome: decline, adds reason SANCTIONED_COUNTRY; final: no later enforced rule applies",
        ),
        ("large-amount-new-account", "not matched", "not applied: the final rule 'sanctioned-country' fired before it"),
        ("vip-never-auto-declined", "matched", "not applied: the final rule 'sanctioned-country' fired before it"),
    ]
    assert e.outcome == "decline" and e.recomputed.agrees is True
    assert e.recomputed.summary.endswith(
        "1 condition read hashed or dropped fields, and for those the record's result was taken"
    )


def test_a_condition_on_a_hashed_field_takes_the_records_word(small_log: SmallLog) -> None:
    e = explained(small_log, small_log.blocked_email)
    blocked = e.rules[3]
    assert (blocked.name, blocked.result, blocked.matched) == ("blocked-email", UNKNOWN, None)
    assert blocked.effect == "sets the outcome: decline, adds reason BLOCKED_EMAIL"  # the record says it fired
    assert e.outcome == "decline" and e.reasons == ["LOW_RISK", "BLOCKED_EMAIL"]
    assert e.recomputed.agrees is True


def test_shadow_rules_are_listed_never_applied(small_log: SmallLog) -> None:
    e = explained(small_log, small_log.long_note)
    assert results(e.rules)[4:] == [
        ("long-note", UNKNOWN, "shadow: listed, never applied"),
        ("repeat-defaulter", "matched", "shadow: listed, never applied"),
    ]
    assert [(r.name, r.mode) for r in e.rules_fired] == [("long-note", "shadow"), ("repeat-defaulter", "shadow")]
    assert e.outcome == "approve" and e.recomputed.agrees is True


def test_a_fallback_is_explained_by_its_cause(small_log: SmallLog) -> None:
    e = explained(small_log, small_log.timeout)
    assert {check.result for check in e.thresholds + e.rules} == {"not evaluated (fallback: upstream_timeout)"}
    assert (e.fallback, e.fallback_detail, e.model.status, e.model.output) == (
        "upstream_timeout",
        "no answer within 300 ms",
        "timeout",
        None,
    )
    assert e.recomputed.agrees is True
    assert e.recomputed.summary == (
        "fallback (upstream_timeout): the policy's fallback is outcome 'review' with reason MODEL_UNAVAILABLE: "
        "the same as recorded"
    )


def test_a_rejected_input_has_errors_and_nothing_to_recompute(small_log: SmallLog) -> None:
    e = explained(small_log, small_log.rejected)
    assert e.kind == "rejected" and e.outcome is None
    assert [error.field for error in e.errors or []] == ["amount", "account_age_days", "income", "country"]
    assert e.recomputed.agrees is None
    assert e.recomputed.summary == "nothing to recompute: the input was rejected with HTTP 422, so there is no outcome"
    assert {check.result for check in e.thresholds} == {"not evaluated (the input was rejected)"}


def test_a_record_the_policy_would_not_have_made_is_flagged(small_log: SmallLog, policy: CompiledPolicy) -> None:
    record = msgspec.structs.replace(small_log.by_id(small_log.low_risk), outcome="decline")
    e = explain_record(record, 1, "0" * 64, policy.source_text)
    assert e.recomputed.agrees is False
    assert e.recomputed.summary.startswith(
        recomputed_prefix(policy) + "outcome 'approve', reasons LOW_RISK: "
        "DIFFERENT from the record (outcome 'decline', reasons LOW_RISK)"
    )
    assert "check: MISMATCH: " in render.explanation_text(e)


def test_without_the_policy_source_nothing_is_recomputed(small_log: SmallLog, policy: CompiledPolicy) -> None:
    e = explain_record(small_log.records[0], 1, "0" * 64, None)
    assert (e.thresholds, e.rules, e.recomputed.agrees) == ([], [], None)
    assert e.recomputed.summary == (
        f"not recomputed: the audit log has no source for policy version {policy.version_id}"
    )


def test_an_unknown_decision_has_no_explanation(small_log: SmallLog) -> None:
    with closing(connect(small_log.path, readonly=True)) as connection:
        assert explain(connection, "no-such-decision") is None


def test_the_explanation_as_text(small_log: SmallLog, policy: CompiledPolicy) -> None:
    text = render.explanation_text(explained(small_log, small_log.low_risk))
    lines = text.splitlines()
    record = small_log.by_id(small_log.low_risk)
    assert lines[0].startswith(f"decision {small_log.low_risk} (record 1, hash ")
    for line in [
        "  time        2026-01-01T00:00:01.000Z",
        f"  policy      credit-audit (version audit-1, id {policy.version_id})",
        "  kind        decision (decide endpoint)",
        "  request id  req-low",
        "  latency     2.50 ms total; model 1.50 ms (status ok, HTTP 200, 1 attempt)",
        f'  email             "{record.input["email"]}"   [hashed]',
        "  note              (not stored)   [dropped]",
        "  score 0.05  confidence 0.95  margin 0.9  label good",
        "  3. (no condition)",
        "       -> approve, LOW_RISK: matched (no condition: the last threshold)",
        "       sets the outcome: approve, reason LOW_RISK",
        '  blocked-email [enforce]: email == "fraud@example.com"',
        "       -> decline, BLOCKED_EMAIL: unknown (field hashed/dropped) (reads email); outcome before: approve",
        "  outcome   approve",
        "  reasons   LOW_RISK",
        "  fallback  -",
    ]:
        assert line in lines, line
    assert lines[-1].startswith("check: OK: recomputed with the stored policy")


credit_inputs = st.fixed_dictionaries(
    {
        "amount": st.floats(0, 1_000_000),
        "account_age_days": st.integers(0, 5000),
        "income": st.floats(0, 500_000),
        "country": st.sampled_from(["US", "CA", "GB", "DE", "FR", "KP"]),
    },
    optional={
        "prior_defaults": st.integers(0, 5),
        "segment": st.sampled_from(["standard", "vip"]),
        "email": st.sampled_from(["a@example.com", "fraud@example.com"]),
        "note": st.text(max_size=40),
    },
)


@settings(max_examples=300, deadline=None)
@given(values=credit_inputs, p_bad=st.floats(0, 1))
def test_the_replay_reaches_the_recorded_decision(policy: CompiledPolicy, values: dict[str, Any], p_bad: float) -> None:
    validated = policy.inputs.from_mapping(values)
    assert isinstance(validated, dict)
    decision = decide_row(policy, validated, [1 - p_bad, p_bad])
    recorder = AuditRecorder(NullAuditStore(), AUDIT_KEY, lambda: 0)
    record = recorder.decision(
        policy,
        decision,
        decision_id="d",
        endpoint="decide",
        values=validated,
        model=ModelCall("ok", latency_ms=1.0, http_status=200, attempts=1),
        model_output=None,
        latency_ms=1.0,
        request_id=None,
    )
    e = explain_record(record, 1, "0" * 64, policy.source_text)
    assert e.recomputed.agrees is True, e.recomputed.summary
    assert (e.recomputed.outcome, e.recomputed.reasons, e.recomputed.rules) == (
        decision.outcome,
        decision.reasons,
        decision.rules,
    )
