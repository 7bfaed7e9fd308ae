"""The `replay` and `diff` commands: a policy change's effect on recorded traffic, and its meaning.

`guardrails replay CANDIDATE.yaml` re-decides the recorded decisions of the candidate's
policy from the audit log; `guardrails diff OLD.yaml NEW.yaml` says what changed in meaning.
The commands are registered on `guardrails.cli`'s parser by `add_replay_commands`.

Exit codes: replay 0, or 2 when there is nothing to replay or the candidate does not load;
diff 0 when the meaning is the same, 1 when it differs, 2 when a file does not load.
"""

from __future__ import annotations

import argparse
import re
import time
from datetime import UTC, datetime
from typing import Any, TextIO

import msgspec

from guardrails.errors import PolicyError
from guardrails.policy.compile import CompiledPolicy
from guardrails.policy.diff import diff_policies
from guardrails.policy.diff import render_text as render_diff
from guardrails.policy.load import load_policy_file
from guardrails.replay import ReplayError, replay_audit
from guardrails.replay_report import render_text as render_replay

EXIT_OK, EXIT_DIFFERENT, EXIT_USAGE = 0, 1, 2
_AGO = re.compile(r"^(\d+)([smhdw])$")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def add_replay_commands(commands: Any, default_audit: str) -> None:
    """Register `replay` and `diff` on the subparsers `commands` of the guardrails parser."""
    replay = commands.add_parser("replay", help="re-decide recorded decisions under a candidate policy")
    replay.add_argument("candidate", metavar="CANDIDATE.yaml")
    replay.add_argument("--audit", default=default_audit, metavar="PATH", help=f"audit log (default: {default_audit})")
    replay.add_argument("--since", metavar="AGE|TIME", help="only decisions since then: 7d, 12h, 30m, or an ISO time")
    replay.add_argument("--limit", type=_positive, metavar="N", help="only the N most recent decisions")
    replay.add_argument("--sample", type=int, default=10, metavar="N", help="changed decisions to show (default: 10)")
    replay.add_argument("--format", choices=["text", "json"], default="text")
    replay.set_defaults(run=run_replay)

    diff = commands.add_parser("diff", help="what changed in meaning between two versions of a policy")
    diff.add_argument("old", metavar="OLD.yaml")
    diff.add_argument("new", metavar="NEW.yaml")
    diff.add_argument("--format", choices=["text", "json"], default="text")
    diff.set_defaults(run=run_diff)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def since_ms(text: str, now_ms: int) -> int:
    """`7d`, `12h`, `30m`, `45s`, `2w` before `now_ms`, or an ISO date or time (UTC unless it says)."""
    ago = _AGO.match(text.strip())
    if ago:
        return now_ms - int(ago.group(1)) * _UNIT_MS[ago.group(2)]
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"--since {text!r} is neither an age (7d, 12h, 30m) nor an ISO time (2026-11-21T09:00)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def _load(path: str, err: TextIO) -> CompiledPolicy | None:
    try:
        return load_policy_file(path)
    except PolicyError as exc:
        err.write(f"{exc}\n")
        err.write(f"error: {path} does not load ({len(exc.problems)} problem{'s' if len(exc.problems) != 1 else ''})\n")
        return None


def run_replay(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    candidate = _load(args.candidate, err)
    if candidate is None:
        return EXIT_USAGE
    try:
        since = None if args.since is None else since_ms(args.since, time.time_ns() // 1_000_000)
    except ValueError as exc:
        err.write(f"error: {exc}\n")
        return EXIT_USAGE
    try:
        report = replay_audit(candidate, args.audit, since_ms=since, limit=args.limit, sample=max(args.sample, 0))
    except ReplayError as exc:
        err.write(f"error: {exc}\n")
        return EXIT_USAGE
    if args.format == "json":
        out.write(msgspec.json.encode(report).decode() + "\n")
    else:
        out.write(render_replay(report))
    return EXIT_OK


def run_diff(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    old, new = _load(args.old, err), _load(args.new, err)
    if old is None or new is None:
        return EXIT_USAGE
    diff = diff_policies(old, new)
    if args.format == "json":
        out.write(msgspec.json.encode(diff).decode() + "\n")
    else:
        out.write(render_diff(diff))
    return EXIT_OK if diff.same_meaning else EXIT_DIFFERENT
