"""Audit answers as text for people and files: tables, CSV, JSON lines, the explanation, verify reports.

Pure: builds strings (or writes rows to a file object it is given). Imports the stdlib,
msgspec and the audit modules only.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

import msgspec

from guardrails.audit.explain import Check, Explanation
from guardrails.audit.query import Row
from guardrails.audit.record import AuditRecord, StoredRecord
from guardrails.audit.stats import Stats
from guardrails.audit.times import iso
from guardrails.audit.verify import Report

_encode = msgspec.json.Encoder().encode
_decode_record = msgspec.json.Decoder(AuditRecord).decode
RECORD_FIELDS: tuple[str, ...] = AuditRecord.__struct_fields__
CSV_COLUMNS = ("seq", "time", *RECORD_FIELDS, "prev_hash", "hash")


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Columns padded to their widest cell, two spaces apart."""
    body = [list(row) for row in rows]
    widths = [max(len(cell) for cell in column) for column in zip(header, *body, strict=True)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in [header, *body]]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def records_table(records: Sequence[StoredRecord]) -> str:
    if not records:
        return "no matching records\n"
    header = ("TIME (UTC)", "DECISION ID", "POLICY", "OUTCOME", "REASONS", "FALLBACK", "SCORE")
    rows = [
        (
            iso(r.record.ts_ms),
            r.record.decision_id,
            r.record.policy,
            _outcome(r.record),
            ",".join(r.record.reasons) or "-",
            r.record.fallback or "-",
            "-" if r.record.score is None else f"{r.record.score:.4g}",
        )
        for r in records
    ]
    return table(header, rows)


def _outcome(record: AuditRecord) -> str:
    if record.kind == "rejected":
        return "(rejected)"
    return f"{record.outcome} (shadow)" if record.kind == "shadow" else str(record.outcome)


def jsonl_line(row: Row) -> str:
    """One exported record: its place in the chain and the record's JSON exactly as stored."""
    seq, prev_hash, hash_, record = row
    return f'{{"seq":{seq},"prev_hash":"{prev_hash}","hash":"{hash_}","record":{record.decode()}}}\n'


def csv_writer(out: TextIO) -> Any:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    return writer


def csv_row(seq: int, prev_hash: str, hash_: str, record: AuditRecord) -> list[str]:
    """A record as CSV cells: lists and objects as JSON, null as an empty cell."""
    cells = [str(seq), iso(record.ts_ms)]
    cells.extend(_cell(getattr(record, name)) for name in RECORD_FIELDS)
    cells.extend((prev_hash, hash_))
    return cells


def csv_row_of(row: Row) -> list[str]:
    seq, prev_hash, hash_, record = row
    return csv_row(seq, prev_hash, hash_, _decode_record(record))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return _encode(value).decode()


def stats_table(stats: Stats) -> str:
    if not stats.buckets:
        return "no matching records\n"
    bucketed = stats.interval_ms is not None
    header = [*(["FROM (UTC)"] if bucketed else []), stats.by.upper(), "COUNT", "RATE"]
    rows: list[list[str]] = []
    for bucket in stats.buckets:
        start = [bucket.start or ""] if bucketed else []
        rows.extend([*start, g.key, str(g.count), f"{g.rate * 100:.1f}%"] for g in bucket.groups)
        rows.append([*start, "(all)", str(bucket.total), ""])
    return table(header, rows)


# ---- the explanation ----------------------------------------------------------------------


def explanation_text(e: Explanation) -> str:
    lines = [f"decision {e.decision_id} (record {e.seq}, hash {e.hash[:16]})"]
    label = f"version {e.policy_label}, " if e.policy_label else ""
    lines += [
        f"  time        {e.time}",
        f"  policy      {e.policy} ({label}id {e.policy_version})",
        f"  kind        {e.kind} ({e.endpoint} endpoint)" + (f"; shadow of {e.shadow_of}" if e.shadow_of else ""),
        f"  request id  {e.request_id or '-'}",
        f"  latency     {_ms(e.latency_ms)} total; model {_ms(e.model.latency_ms)} "
        f"(status {e.model.status}, HTTP {e.model.http_status or '-'}, {e.model.attempts} attempt"
        f"{'s' if e.model.attempts != 1 else ''})",
    ]
    if e.live_decision_id:
        lines.append(f"  live decision {e.live_decision_id}")
    lines += ["", "input (as stored)"]
    names = list(e.input) + [name for name in e.redacted if name not in e.input]
    width = max((len(name) for name in names), default=0)
    for name in names:
        value = "(not stored)" if name not in e.input else _encode(e.input[name]).decode()
        note = f"   [{e.redacted[name]}]" if name in e.redacted else ""
        lines.append(f"  {name.ljust(width)}  {value}{note}")
    truncated = " [truncated]" if e.model.output_truncated else ""
    lines += ["", "model output", f"  {e.model.output if e.model.output is not None else '(none)'}{truncated}"]
    lines += [
        "",
        "score fields",
        f"  score {_num(e.score)}  confidence {_num(e.confidence)}  margin {_num(e.margin)}  label {e.label or '-'}",
    ]
    lines += ["", "thresholds (the first that matches sets the outcome)"]
    lines += [line for check in e.thresholds for line in _check_lines(check)]
    lines += ["", "rules (in order; each sees the outcome as it stands)"]
    lines += [line for check in e.rules for line in _check_lines(check)] or ["  (none)"]
    fired = ", ".join(f"{r.name}{' (shadow)' if r.mode == 'shadow' else ''}" for r in e.rules_fired)
    lines += [
        "",
        "decision",
        f"  outcome   {e.outcome if e.outcome is not None else '(none: the input was rejected)'}",
        f"  reasons   {', '.join(e.reasons) or '-'}",
        f"  rules     {fired or '-'}",
        f"  fallback  {e.fallback or '-'}" + (f" ({e.fallback_detail})" if e.fallback_detail else ""),
    ]
    if e.errors:
        lines.append("  errors    " + "; ".join(error.message for error in e.errors))
    mark = {True: "OK", False: "MISMATCH", None: "NOTE"}[e.recomputed.agrees]
    lines += ["", f"check: {mark}: {e.recomputed.summary}"]
    return "\n".join(lines) + "\n"


def _check_lines(check: Check) -> list[str]:
    if check.kind == "threshold":
        head = f"  {check.name}. {check.when or '(no condition)'}"
    else:
        tags = ", ".join(t for t in (check.mode, "final" if check.final else "") if t)
        head = f"  {check.name} [{tags}]: {check.when}"
    lines = [head, f"       -> {check.outcome}, {check.reason}: {check.result}"]
    if check.unknown_fields:
        lines[-1] += f" (reads {', '.join(check.unknown_fields)})"
    if check.outcome_before is not None:
        lines[-1] += f"; outcome before: {check.outcome_before}"
    if check.effect:
        lines.append(f"       {check.effect}")
    return lines


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} ms"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


# ---- verify -----------------------------------------------------------------------------


def verify_text(report: Report) -> str:
    verdict = report.verdict
    if not verdict.ok:
        return f"FAILED: {verdict.problem} (decision {verdict.decision_id})\n"
    if report.checkpoint_problem is not None:
        return f"FAILED: {report.checkpoint_problem}\n"
    start = f", after pruned record {report.anchor_seq}" if report.anchor_seq else ""
    text = f"ok: {verdict.count} records verified{start}"
    if verdict.head_seq:
        text += f"; head record {verdict.head_seq}, hash {verdict.head_hash}"
    if report.checkpoint_note:
        text += f"; {report.checkpoint_note}"
    return text + "\n"
