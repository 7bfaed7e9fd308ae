"""Benchmark `guardrails replay`: recorded decisions re-decided per second, reading SQLite included.

    python benchmarks/bench_replay.py [--quick] [--keep DIR]

Writes 100,000 and 1,000,000 recorded decisions of a credit-risk policy into temporary audit
logs (in the store's row format: each record built as an `AuditRecord`, encoded as the store
encodes it, chained with the store's hash; this generation is not timed), then times
`replay_audit` end to end on each, for a candidate that moves a threshold: open the log, read
it in chunks, decode, re-decide over columns, count. Beside it, a baseline measured in the same
run: the same records read the same way and replayed one at a time with `replay_record` (which
validates and calls `decide`), on the 100,000 set. Both must give the same transitions first.
Target: 1,000,000 recorded decisions in at most 20 s. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import workload

from guardrails.audit.chain import GENESIS
from guardrails.audit.record import AuditRecord, hash_value
from guardrails.audit.schema import SCHEMA
from guardrails.audit.sqlite import Rows, closing, connect
from guardrails.decide import RuleFired
from guardrails.decide_vector import decide_vector
from guardrails.policy.compile import CompiledPolicy
from guardrails.policy.load import load_policy_text
from guardrails.replay import MMAP_BYTES, RecordDecoder, recorded_versions, replay_audit
from guardrails.replay_record import make_plan, replay_record
from guardrails.replay_report import REJECTED, ReplayReport
from guardrails.scores import ScoreFields

SEED = 20261121
T0 = 1_790_000_000_000
TARGET_ROWS, TARGET_SECONDS = 1_000_000, 20.0
FALLBACK_SHARE = 0.02  # recorded decisions that were the fallback (the model timed out)
KEY = b"bench-replay-key"

POLICY = """\
policy: credit-risk
version: "bench"
owner: credit-risk-team@example.com
upstream:
  url: http://127.0.0.1:8081/v2/models/credit/infer
  protocol: v2
  tensor: {name: x, datatype: FP64, features: [amount, account_age_days, income, prior_defaults]}
  output: predict_proba
inputs:
  amount:           {type: float, min: 0, max: 1000000}
  account_age_days: {type: int, min: 0}
  income:           {type: float, min: 0}
  prior_defaults:   {type: int, min: 0, default: 0}
  country:          {type: str, in: [US, CA, GB, DE, FR, KP]}
  segment:          {type: str, in: [standard, vip], default: standard}
  email:            {type: str, max_length: 254, required: false, audit: hash}
score: {labels: [good, bad], positive: bad}
thresholds:
  - {when: score >= 0.85, outcome: decline, reason: HIGH_RISK}
  - {when: score >= 0.5 or confidence < 0.6, outcome: review, reason: UNCERTAIN}
  - {outcome: approve, reason: LOW_RISK}
rules:
  - {name: sanctioned-country, when: 'country in ["KP"]', outcome: decline, reason: SANCTIONED_COUNTRY, final: true}
  - name: large-amount-new-account
    when: amount > 50000 and account_age_days < 90 and outcome == "approve"
    outcome: review
    reason: LARGE_AMOUNT_NEW_ACCOUNT
  - {name: vip-never-auto-declined, when: segment == "vip" and outcome == "decline", outcome: review, reason: VIP}
  - {name: repeat-defaulter, when: prior_defaults >= 2, outcome: decline, reason: REPEAT_DEFAULTER, mode: shadow}
outcomes: [approve, review, decline]
fallback: {outcome: review, reason: MODEL_UNAVAILABLE}
"""
# The change under review: decline from 0.80, and repeat defaulters enforced.
CANDIDATE = POLICY.replace("score >= 0.85", "score >= 0.80").replace(
    "reason: REPEAT_DEFAULTER, mode: shadow}", "reason: REPEAT_DEFAULTER}"
)
_encode = msgspec.json.Encoder().encode
_decode_record = msgspec.json.Decoder(AuditRecord).decode


# ---- generation (not timed) ------------------------------------------------------------------------------------


def generate(path: Path, policy: CompiledPolicy, rows: int) -> float:
    """Write `rows` recorded decisions of `policy` into a new audit log at `path`; return the seconds it took."""
    started = time.perf_counter()
    draw = workload.draw(rows, SEED)
    decided = decide_vector(policy, workload.columns(policy, draw), rows)
    kinds = _decision_kinds(policy, decided)
    emails = [hash_value(email, KEY) for email in workload.EMAILS]
    failed = np.random.default_rng(SEED + 1).random(rows) < FALLBACK_SHARE
    columns = _input_lists(draw)
    connection = sqlite3.connect(path, isolation_level=None)
    connection.executescript(_tables_only())
    connection.execute("PRAGMA journal_mode=OFF")
    connection.execute("PRAGMA synchronous=OFF")
    connection.execute("BEGIN")
    connection.execute(
        "INSERT INTO policy_versions VALUES (?, ?, ?, ?, ?)",
        (policy.version_id, policy.name, policy.version, policy.source_text, T0),
    )
    prev = GENESIS
    for start in range(0, rows, 50_000):
        stop = min(start + 50_000, rows)
        batch = Rows()  # the store's own row format
        for i in range(start, stop):
            prev = batch.add(i + 1, prev, _record(policy, i, columns, emails, kinds, failed[i]))
        batch.insert(connection, None)
    connection.execute("COMMIT")
    connection.executescript(SCHEMA)  # the indexes, built once over the full tables
    connection.execute("PRAGMA journal_mode=WAL")
    connection.close()
    return time.perf_counter() - started


def _tables_only() -> str:
    return ";\n".join(s for s in SCHEMA.split(";\n") if "CREATE INDEX" not in s)


Kind = tuple[str, list[str], list[RuleFired], int | None]  # outcome, reasons, rules, threshold


def _decision_kinds(policy: CompiledPolicy, decided: Any) -> tuple[Any, list[Kind]]:
    """Each row's kind of decision (threshold and the rules that fired) as a code, and each kind's fields."""
    bits = decided.threshold.astype(np.int64)
    for r in range(len(policy.rules)):
        bits = bits * 4 + decided.enforced[r] * 2 + decided.shadow[r]
    kinds, codes = np.unique(bits, return_inverse=True)
    fields = []
    for kind in kinds.tolist():
        row = int(np.flatnonzero(bits == kind)[0])
        decision = decided.decision(row)
        fields.append((decision.outcome, decision.reasons, decision.rules, decision.threshold))
    return codes, fields


def _input_lists(draw: workload.Draw) -> dict[str, list[Any]]:
    """The validated values, as lists (defaults filled in, as validation leaves them)."""
    return {
        "amount": draw.amount.tolist(),
        "account_age_days": draw.account_age_days.tolist(),
        "income": draw.income.tolist(),
        "prior_defaults": np.where(draw.sends_prior_defaults, draw.prior_defaults, 0).tolist(),
        "country": [workload.COUNTRIES[c] for c in draw.country.tolist()],
        "segment": [workload.SEGMENTS[s] for s in np.where(draw.sends_segment, draw.segment, 0).tolist()],
        "email": draw.email.tolist(),
        "p_bad": draw.p_bad.tolist(),
    }


def _record(
    policy: CompiledPolicy,
    i: int,
    columns: dict[str, list[Any]],
    emails: list[str],
    kinds: tuple[Any, list[Kind]],
    failed: bool,
) -> AuditRecord:
    email = columns["email"][i]
    values = {name: columns[name][i] for name in ("amount", "account_age_days", "income", "prior_defaults")}
    values |= {"country": columns["country"][i], "segment": columns["segment"][i]}
    values["email"] = None if email < 0 else emails[email]
    common: dict[str, Any] = {
        "decision_id": f"01900000-0000-7000-8000-{i:012x}",
        "ts_ms": T0 + i,
        "kind": "decision",
        "endpoint": "decide",
        "policy": policy.name,
        "policy_version": policy.version_id,
        "policy_label": policy.version,
        "input": values,
        "latency_ms": 2.5,
    }
    if failed:
        return AuditRecord(
            **common,
            outcome=policy.fallback_outcome,
            reasons=[policy.fallback_reason],
            fallback="upstream_timeout",
            fallback_detail="no answer within 300 ms",
            model_status="timeout",
            model_attempts=2,
        )
    p_bad = columns["p_bad"][i]
    p_good = 1.0 - p_bad
    outcome, reasons, rules, threshold = kinds[1][kinds[0][i]]
    return AuditRecord(
        **common,
        model_output=_encode([p_good, p_bad]).decode(),
        score=p_bad,
        confidence=max(p_good, p_bad),
        margin=abs(p_good - p_bad),
        label="bad" if p_bad > p_good else "good",
        outcome=outcome,
        reasons=reasons,
        rules=rules,
        threshold=threshold,
        model_status="ok",
        model_http_status=200,
        model_latency_ms=1.5,
        model_attempts=1,
    )


# ---- the contenders ---------------------------------------------------------------------------------------------


def replay_one_by_one(candidate: CompiledPolicy, path: Path) -> Counter[tuple[str, str]]:
    """The baseline: the same rows read the same way, each record decoded and replayed alone (`decide`)."""
    transitions: Counter[tuple[str, str]] = Counter()
    with closing(connect(path, readonly=True)) as connection:
        plan = make_plan(candidate, recorded_versions(connection, candidate.name))
        cursor = connection.execute(
            "SELECT seq, record FROM decisions WHERE policy = ? AND kind = 'decision' ORDER BY seq", (candidate.name,)
        )
        while rows := cursor.fetchmany(50_000):
            for _, blob in rows:
                record = _decode_record(blob)
                fields = None
                if record.score is not None and record.confidence is not None and record.margin is not None:
                    fields = ScoreFields(record.score, record.confidence, record.margin, record.label)
                replayed = replay_record(plan, record.policy_version, record.input, fields, record.fallback)
                to = getattr(replayed, "outcome", REJECTED)
                transitions[(str(record.outcome), to)] += 1
    return transitions


def read_and_decode(candidate: CompiledPolicy, path: Path) -> int:
    """The floor under any replay: the same rows read and decoded into the same narrow struct, nothing decided."""
    decoder = RecordDecoder(make_plan(candidate).names)
    count = 0
    with closing(connect(path, readonly=True)) as connection:
        connection.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
        cursor = connection.execute(
            "SELECT seq, record FROM decisions WHERE policy = ? AND kind = 'decision' ORDER BY seq", (candidate.name,)
        )
        while rows := cursor.fetchmany(50_000):
            seqs, blobs = zip(*rows, strict=True)
            count += len(decoder.decode_all(blobs, seqs))
    return count


def timed(run: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall and CPU seconds (all threads) of one run, and what it returned."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def line(label: str, rows: int, walls: list[float], cpus: list[float]) -> float:
    wall = statistics.median(walls)
    rate = rows / wall
    spread = f"[{min(walls):.2f} .. {max(walls):.2f}]"
    print(f"   {label:<44} {rate:>12,.0f} rows/s  {wall:7.2f} s {spread:<16} cpu {statistics.median(cpus):6.2f} s")
    return rate


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="5,000 and 20,000 rows: a smoke test")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each size (default 3)")
    parser.add_argument("--keep", type=Path, help="keep the generated audit logs in this folder (and reuse them)")
    args = parser.parse_args(argv)
    sizes = (5_000, 20_000) if args.quick else (100_000, 1_000_000)
    policy = load_policy_text(POLICY, "credit-risk.yaml")
    candidate = load_policy_text(CANDIDATE, "candidate.yaml")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"guardrails replay benchmark: policy {policy.name} ({policy.version_id}) -> candidate {candidate.version_id}"
    )
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, msgspec {msgspec.__version__}, "
        f"sqlite {sqlite3.sqlite_version}; {os.cpu_count()} cpus, not pinned; load average {load:.2f}"
    )
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-replay-"))
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for rows in sizes:
        path = paths[rows] = folder / f"audit-{rows}.db"
        if not path.exists():
            seconds = generate(path, policy, rows)
            print(
                f"generated {rows:,} recorded decisions in {seconds:.1f} s (not timed): {path.stat().st_size:,} bytes"
            )
    small, large = sizes
    print("checking: replay over columns and one by one give the same transitions ...", end=" ", flush=True)
    report: ReplayReport = replay_audit(candidate, paths[small])
    transitions = {(t.from_, t.to): t.count for t in report.transitions}
    if transitions != dict(replay_one_by_one(candidate, paths[small])):
        raise AssertionError(f"replay disagrees with one-by-one replay on {paths[small]}")
    print(f"same ({report.replayed:,} replayed, {report.changed:,} changed)")
    print(f"\n{args.repeats} runs each; a figure is the median [min .. max] of wall time; cpu counts every thread")
    runs: dict[str, Callable[[], Any]] = {
        f"ours {small}": lambda: replay_audit(candidate, paths[small]),
        f"baseline {small}": lambda: replay_one_by_one(candidate, paths[small]),
        f"floor {small}": lambda: read_and_decode(candidate, paths[small]),
        f"ours {large}": lambda: replay_audit(candidate, paths[large]),
    }
    results: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            wall, cpu, _ = timed(run)
            results[name][0].append(wall)
            results[name][1].append(cpu)
    ours_small = line(f"ours      replay, {small:,} rows", small, *results[f"ours {small}"])
    base_small = line(f"baseline  one by one (decide), {small:,} rows", small, *results[f"baseline {small}"])
    line(f"floor     read + decode only, {small:,} rows", small, *results[f"floor {small}"])
    ours_large = line(f"ours      replay, {large:,} rows", large, *results[f"ours {large}"])
    print(f"   {'ratio ours/baseline, ' + f'{small:,} rows':<44} {ours_small / base_small:>12.1f}x")
    wall = statistics.median(results[f"ours {large}"][0])
    if large == TARGET_ROWS:
        verdict = "PASS" if wall <= TARGET_SECONDS else "FAIL"
        print(f"\ntarget: {TARGET_ROWS:,} recorded decisions in <= {TARGET_SECONDS:.0f} s: {wall:.2f} s {verdict}")
    else:
        print(f"\n(--quick: {large:,} rows at {ours_large:,.0f} rows/s; the target is for {TARGET_ROWS:,})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
