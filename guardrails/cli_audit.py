"""`guardrails audit ...`: query, show, stats, export, verify, checkpoint and prune an audit log.

Every command takes `--audit PATH` (the default is serve's). Exit codes as for the other
commands: 0 success; 1 a check failed (verify, checkpoint or prune found a broken chain,
show found no such decision); 2 bad usage, or no audit log at PATH.

The edge for these commands: it reads the clock and opens the file; the answers come
from guardrails.audit.
"""

from __future__ import annotations

import argparse
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import msgspec

from guardrails.audit import render
from guardrails.audit.explain import explain
from guardrails.audit.figures import FeedbackFigures, ShadowComparison, comparison_text, figures_text
from guardrails.audit.outcomes import compare_shadow, feedback_figures
from guardrails.audit.query import DEFAULT_LIMIT, export_rows, make_filters, query
from guardrails.audit.sqlite import connect
from guardrails.audit.stats import BY_KEYS, stats
from guardrails.audit.times import iso, parse_duration
from guardrails.audit.verify import Checkpoint, Pruned, checkpoint, prune, read_checkpoint, verify
from guardrails.errors import QueryError
from guardrails.policy.compile import CompiledPolicy
from guardrails.policy.load import load_policy_text

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2  # the same codes as guardrails.cli
Command = Callable[[argparse.Namespace, TextIO, TextIO], int]
Reader = Callable[[argparse.Namespace, sqlite3.Connection, TextIO, TextIO], int]
TIME_HELP = "15m, 2h, 7d (before now) or an ISO-8601 time (UTC unless it has an offset)"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def add_audit_commands(commands: Any, default_audit: str) -> None:
    """Add `audit` and its subcommands to the `guardrails` parser's subcommands."""
    audit = commands.add_parser("audit", help="query, explain, verify and prune the audit log")
    subcommands = audit.add_subparsers(title="audit commands", metavar="COMMAND")

    def show_help(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
        audit.print_help(out)
        return EXIT_USAGE

    audit.set_defaults(run=show_help)

    def command(name: str, help: str, run: Command) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = subcommands.add_parser(name, help=help, description=help)
        where = f"audit log (default: {default_audit})"
        parser.add_argument("--audit", default=default_audit, metavar="PATH", help=where)
        parser.set_defaults(run=run)
        return parser

    q = command("query", "list recorded decisions, newest first", _reading(_query))
    _filter_options(q)
    q.add_argument("--limit", type=int, default=DEFAULT_LIMIT, metavar="N", help=f"at most N (default {DEFAULT_LIMIT})")
    q.add_argument("--format", choices=["table", "json", "csv"], default="table")

    show = command("show", "explain one decision: input, model output, every threshold and rule", _reading(_show))
    show.add_argument("decision_id", metavar="DECISION_ID")
    show.add_argument("--format", choices=["text", "json"], default="text")

    s = command("stats", "counts and rates, optionally per interval", _reading(_stats))
    s.add_argument("--policy", help="only this policy's decisions")
    s.add_argument("--by", choices=BY_KEYS, default="outcome", help="what to count (default outcome)")
    s.add_argument("--since", metavar="TIME", help=TIME_HELP)
    s.add_argument("--until", metavar="TIME", help=f"{TIME_HELP}; exclusive")
    s.add_argument("--interval", metavar="5m|1h|1d", help="count per interval of this length (UTC)")
    s.add_argument("--format", choices=["table", "json"], default="table")
    s.add_argument("--compare", metavar="SHADOW", help="agreement and transitions of --policy with this shadow policy")
    s.add_argument("--feedback", action="store_true", help="labels fed back per outcome; precision and recall")
    s.add_argument("--positive", metavar="LABEL", help="the positive class for --feedback (default: the policy's)")

    export = command("export", "write full records to stdout, oldest first", _reading(_export))
    export.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    export.add_argument("--since", metavar="TIME", help=TIME_HELP)
    export.add_argument("--until", metavar="TIME", help=f"{TIME_HELP}; exclusive")

    v = command("verify", "recompute the hash chain; exit 1 naming the first bad record", _reading(_verify))
    v.add_argument("--checkpoint", metavar="FILE", help="also fail when the log no longer reaches this checkpoint")

    command("checkpoint", "print the verified head as JSON, to keep elsewhere", _reading(_checkpoint))

    p = command("prune", "delete old records; the kept chain still verifies", _reading(_prune))
    p.add_argument("--older-than", required=True, metavar="AGE", help="e.g. 90d: records stamped before now - AGE")


def _filter_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", help="decisions of this policy")
    parser.add_argument("--outcome", help="decisions with this outcome")
    parser.add_argument("--reason", help="decisions with this reason")
    parser.add_argument("--rule", metavar="NAME", help="decisions where this rule fired (enforced or shadow)")
    parser.add_argument("--fallback", metavar="CAUSE|any", help="fallbacks with this cause, or any fallback")
    parser.add_argument("--since", metavar="TIME", help=TIME_HELP)
    parser.add_argument("--until", metavar="TIME", help=f"{TIME_HELP}; exclusive")


def _reading(run: Reader) -> Command:
    """Open the audit log read-only for `run`; a missing or foreign file, or a bad option, is exit 2."""

    def command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
        path = Path(args.audit)
        if not path.is_file():
            err.write(f"error: no audit log at {path} (`guardrails serve --audit {path}` creates one)\n")
            return EXIT_USAGE
        try:
            connection = connect(path, readonly=True)
        except sqlite3.Error as exc:
            err.write(f"error: cannot open {path}: {exc}\n")
            return EXIT_USAGE
        try:
            connection.execute("SELECT seq, ts_ms FROM decisions LIMIT 1").fetchall()
            return run(args, connection, out, err)
        except QueryError as exc:
            err.write(f"error: {exc}\n")
            return EXIT_USAGE
        except sqlite3.DatabaseError as exc:
            err.write(f"error: {path} is not a guardrails audit log ({exc})\n")
            return EXIT_USAGE
        finally:
            connection.close()

    return command


def _query(args: argparse.Namespace, connection: sqlite3.Connection, out: TextIO, err: TextIO) -> int:
    if args.limit < 1:
        raise QueryError(f"--limit: {args.limit} is not a number of records (1 or more)")
    filters = make_filters(
        now_ms=now_ms(),
        policy=args.policy,
        outcome=args.outcome,
        reason=args.reason,
        rule=args.rule,
        fallback=args.fallback,
        since=args.since,
        until=args.until,
    )
    page = query(connection, filters, args.limit)
    if args.format == "json":
        out.write(msgspec.json.encode(page.records).decode() + "\n")
    elif args.format == "csv":
        writer = render.csv_writer(out)
        writer.writerows(render.csv_row(r.seq, r.prev_hash, r.hash, r.record) for r in page.records)
    else:
        out.write(render.records_table(page.records))
    return EXIT_OK


def _show(args: argparse.Namespace, connection: sqlite3.Connection, out: TextIO, err: TextIO) -> int:
    explanation = explain(connection, args.decision_id)
    if explanation is None:
        err.write(f"error: no decision {args.decision_id} in {args.audit}\n")
        return EXIT_FAILED
    if args.format == "json":
        out.write(msgspec.json.format(msgspec.json.encode(explanation), indent=2).decode() + "\n")
    else:
        out.write(render.explanation_text(explanation))
    return EXIT_OK


def _stats(args: argparse.Namespace, connection: sqlite3.Connection, out: TextIO, err: TextIO) -> int:
    if args.compare or args.feedback:
        return _outcome_stats(args, connection, out)
    interval = None if args.interval is None else parse_duration(args.interval, "--interval")
    filters = make_filters(now_ms=now_ms(), policy=args.policy, since=args.since, until=args.until)
    result = stats(connection, args.by, filters, interval)
    if args.format == "json":
        out.write(msgspec.json.encode(result).decode() + "\n")
    else:
        out.write(render.stats_table(result))
    return EXIT_OK


def _outcome_stats(args: argparse.Namespace, connection: sqlite3.Connection, out: TextIO) -> int:
    if not args.policy:
        raise QueryError(f"{'--compare' if args.compare else '--feedback'} needs --policy (the live policy)")
    filters = make_filters(now_ms=now_ms(), since=args.since, until=args.until)
    result: ShadowComparison | FeedbackFigures
    if args.compare:
        result = compare_shadow(connection, args.policy, args.compare, filters)
        text = comparison_text(result)
    else:
        policy = _latest_policy(connection, args.policy)
        positive = args.positive or policy.scores.positive
        if positive is None:
            raise QueryError(
                f"policy {args.policy!r} names no `score.positive`: say which label is positive (--positive)"
            )
        result = feedback_figures(connection, args.policy, policy.outcomes, positive, filters)
        text = figures_text(result)
    out.write(msgspec.json.encode(result).decode() + "\n" if args.format == "json" else text)
    return EXIT_OK


def _latest_policy(connection: sqlite3.Connection, name: str) -> CompiledPolicy:
    row = connection.execute(
        "SELECT source FROM policy_versions WHERE policy = ? ORDER BY first_seen_ms DESC LIMIT 1", (name,)
    ).fetchone()
    if row is None:
        raise QueryError(f"no policy named {name!r} in this audit log")
    return load_policy_text(str(row[0]), "<audit log>")


def _export(args: argparse.Namespace, connection: sqlite3.Connection, out: TextIO, err: TextIO) -> int:
    filters = make_filters(now_ms=now_ms(), since=args.since, until=args.until)
    rows = export_rows(connection, filters)
    if args.format == "csv":
        render.csv_writer(out).writerows(render.csv_row_of(row) for row in rows)
    else:
        out.writelines(render.jsonl_line(row) for row in rows)
    return EXIT_OK


def _verify(args: argparse.Namespace, connection: sqlite3.Connection, out: TextIO, err: TextIO) -> int:
    given: Checkpoint | None = None
    if args.checkpoint is not None:
        try:
            text = Path(args.checkpoint).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise QueryError(f"--checkpoint: cannot read {args.checkpoint}: {exc}") from None
        given = read_checkpoint(text, args.checkpoint)
    report = verify(args.audit, given)
    out.write(render.verify_text(report))
    return EXIT_OK if report.ok else EXIT_FAILED


def _checkpoint(args: argparse.Namespace, connection: sqlite3.Connection, out: TextIO, err: TextIO) -> int:
    head = checkpoint(args.audit)
    if not isinstance(head, Checkpoint):
        err.write(f"no checkpoint of a broken chain: {render.verify_text(head)}")
        return EXIT_FAILED
    out.write(msgspec.json.encode(head).decode() + "\n")
    return EXIT_OK


def _prune(args: argparse.Namespace, connection: sqlite3.Connection, out: TextIO, err: TextIO) -> int:
    cut = now_ms() - parse_duration(args.older_than, "--older-than")
    connection.close()  # prune opens its own, writable connection
    result = prune(args.audit, cut)
    if not isinstance(result, Pruned):
        err.write(f"refusing to prune: {render.verify_text(result)}")
        return EXIT_FAILED
    if result.deleted == 0:
        out.write(f"nothing to prune: no record before {iso(cut)}\n")
    else:
        out.write(
            f"pruned {result.deleted} records stamped before {iso(cut)}; the kept chain starts after "
            f"record {result.anchor_seq} (hash {result.anchor_hash})\n"
        )
    return EXIT_OK
