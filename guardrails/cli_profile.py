"""`guardrails profile`: build the reference profile a policy's `monitor:` section compares live traffic with.

    guardrails profile DATA.csv|DATA.jsonl --policy POLICY.yaml [--score-column C] -o REF.json

Exit codes as the rest of the CLI: 0 written; 1 the policy failed to load; 2 bad usage or a
data file that cannot be profiled (the message names the file, the line and the column).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, TextIO

from guardrails.errors import DataError, PolicyError
from guardrails.monitor.datafile import read_sample
from guardrails.monitor.reference import DEFAULT_BINS, build_reference, encode_reference, reference_hash
from guardrails.policy.load import load_policy_file

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add the `profile` command to the CLI's subcommands."""
    profile = commands.add_parser(
        "profile", help="build the reference profile of training or validation data, for a policy's `monitor:`"
    )
    profile.add_argument("data", metavar="DATA.csv|DATA.jsonl", help="one row per example, a column per input")
    profile.add_argument("--policy", required=True, metavar="POLICY.yaml", help="the policy whose inputs to profile")
    profile.add_argument("--score-column", metavar="C", help="the column holding the model's score, if any")
    profile.add_argument("--bins", type=int, default=DEFAULT_BINS, help=f"quantile bins (default: {DEFAULT_BINS})")
    profile.add_argument("-o", "--output", required=True, metavar="REF.json", help="where to write the reference")
    profile.set_defaults(run=_profile)


def _profile(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if not 2 <= args.bins <= 100:
        err.write(f"error: --bins must be between 2 and 100, got {args.bins}\n")
        return EXIT_USAGE
    try:  # the reference is what is being built: the policy's own `monitor:` is not loaded
        policy = load_policy_file(args.policy, monitor=False)
    except PolicyError as exc:
        err.write(f"{exc}\n")
        return EXIT_FAILED
    try:
        sample = read_sample(Path(args.data), policy.inputs, policy.name, args.score_column)
    except DataError as exc:
        err.write(f"error: {exc}\n")
        return EXIT_USAGE
    fields = policy.inputs.fields
    reference = build_reference(policy.name, fields, sample.columns, sample.scores, args.score_column, args.bins)
    try:
        Path(args.output).write_bytes(encode_reference(reference))
    except OSError as exc:
        err.write(f"error: {args.output}: cannot write: {exc.strerror or exc}\n")
        return EXIT_USAGE
    score = f", score `{args.score_column}`" if args.score_column else ", no score"
    out.write(
        f"{args.output}: reference of {sample.rows} rows, {len(fields)} inputs{score} "
        f"(hash {reference_hash(reference)})\n"
    )
    return EXIT_OK
