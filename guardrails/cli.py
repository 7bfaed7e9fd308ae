"""The `guardrails` command: check, test and decide offline (serve and demo come with the proxy).

Exit codes: 0 success; 1 a policy failed to load or a case failed; 2 bad usage or invalid input.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import msgspec

from guardrails.cli_audit import add_audit_commands
from guardrails.cli_profile import register as register_profile
from guardrails.cli_replay import add_replay_commands
from guardrails.decide import Decision, decide_response, decide_row, fallback
from guardrails.errors import PolicyError
from guardrails.policy.cases import run_cases
from guardrails.policy.compile import CompiledPolicy
from guardrails.policy.load import load_policies, load_policy_file
from guardrails.server import ServerSettings

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_AUDIT = "guardrails-audit.db"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return EXIT_USAGE
    code: int = args.run(args, sys.stdout, sys.stderr)
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="guardrails", description="A decision-layer guardrail for ML models.")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    check = commands.add_parser("check", help="load policies and report every problem")
    check.add_argument("paths", nargs="+", metavar="PATH", help="policy files or folders")
    check.set_defaults(run=_check)

    test = commands.add_parser("test", help="run the tests: cases of policies")
    test.add_argument("paths", nargs="+", metavar="PATH", help="policy files or folders")
    test.set_defaults(run=_test)

    decide = commands.add_parser("decide", help="decide one input offline and print the decision as JSON")
    decide.add_argument("policy", metavar="POLICY.yaml")
    decide.add_argument("--input", required=True, metavar="JSON", help="the input fields, a JSON object")
    given = decide.add_mutually_exclusive_group(required=True)
    given.add_argument("--score", metavar="X", help="the model's score, or a JSON list of class probabilities")
    given.add_argument("--model-output", metavar="JSON", help="a raw response body in the policy's protocol")
    decide.set_defaults(run=_decide)

    serve = commands.add_parser("serve", help="serve the policies as an HTTP guardrail proxy")
    serve.add_argument("--policies", default="policies", metavar="DIR", help="policy folder (default: policies)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--max-body-bytes", type=int, default=1024 * 1024, help="larger bodies get 413")
    serve.add_argument("--max-batch", type=int, default=1000, help="most instances in one batch request")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--audit", default=DEFAULT_AUDIT, metavar="PATH", help=f"audit log (default: {DEFAULT_AUDIT})")
    serve.add_argument("--no-audit", action="store_true", help="record nothing (not for production)")
    serve.add_argument(
        "--reload-interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="how often the policy folder is checked for changes (0: never; POST /v1/policies/reload still works)",
    )
    serve.add_argument(
        "--audit-durability",
        choices=["sync", "commit", "async"],
        default="sync",
        help="sync: answer once the record is committed and fsynced, so it survives power loss (default); "
        "commit: once committed, not fsynced, so it survives a crash of the server, not of the machine; "
        "async: answer at once",
    )
    serve.set_defaults(run=_serve)

    demo = commands.add_parser("demo", help="run a model server and the proxy, send varied traffic, summarise")
    demo.add_argument("--policies", default="policies", metavar="DIR", help="policy folder (default: policies)")
    demo.set_defaults(run=_demo)

    add_audit_commands(commands, DEFAULT_AUDIT)
    register_profile(commands)
    add_replay_commands(commands, DEFAULT_AUDIT)
    return parser


def _check(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    policies, problems = load_policies(args.paths)
    for policy in policies:
        out.write(f"{policy.file}: ok {_summary(policy)}\n")
    for problem in problems:
        err.write(f"{problem}\n")
    return EXIT_FAILED if problems else EXIT_OK


def _summary(policy: CompiledPolicy) -> str:
    shadow = sum(rule.shadow for rule in policy.rules)
    label = f" version {policy.version}" if policy.version else ""
    return (
        f"{policy.name}{label} (id {policy.version_id}): {len(policy.inputs.fields)} inputs, "
        f"{len(policy.thresholds)} thresholds, {len(policy.rules)} rules ({shadow} shadow), {len(policy.tests)} tests"
    )


def _test(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    policies, problems = load_policies(args.paths)
    for problem in problems:
        err.write(f"{problem}\n")
    passed = failed = 0
    for policy in policies:
        out.write(f"{policy.name} ({policy.file})\n")
        for result in run_cases(policy):
            out.write(f"  {'PASS' if result.passed else 'FAIL'}  {result.name}\n")
            for mismatch in result.mismatches:
                out.write(f"        {mismatch}\n")
            passed += result.passed
            failed += not result.passed
    out.write(f"{passed} passed, {failed} failed\n")
    return EXIT_FAILED if failed or problems else EXIT_OK


def _decide(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        policy = load_policy_file(args.policy)
    except PolicyError as exc:
        err.write(f"{exc}\n")
        return EXIT_FAILED
    try:
        raw_input = _json_argument("--input", args.input)
        given = _json_argument(
            "--score" if args.score is not None else "--model-output", args.score or args.model_output
        )
    except ValueError as exc:
        err.write(f"error: {exc}\n")
        return EXIT_USAGE
    validated = policy.inputs.from_mapping(raw_input)
    if isinstance(validated, list):
        for error in validated:
            err.write(f"invalid input: {error.message}\n")
        if policy.on_invalid == "fallback":
            out.write(decision_json(fallback(policy, "input_invalid", errors=validated)) + "\n")
        return EXIT_USAGE
    if args.score is not None:
        decision = decide_row(policy, validated, given)
    else:
        decision = decide_response(policy, validated, given)
    out.write(decision_json(decision) + "\n")
    return EXIT_OK


def _json_argument(option: str, text: str) -> Any:
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        raise ValueError(f"{option} is not valid JSON ({exc}): {text[:80]!r}") from None


def _serve(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from guardrails.audit.sqlite import SQLiteAuditStore
    from guardrails.logs import configure_logging
    from guardrails.registry import PolicyRegistry
    from guardrails.runner import bind, run_in_foreground
    from guardrails.server import create_app

    configure_logging(args.log_level)
    registry = PolicyRegistry(folder=Path(args.policies))
    report = registry.reload()  # compiles each file and runs its tests: what the server will serve
    for problem in report.failed:
        err.write(f"{problem}\n")
    policies = [live.policy for live in registry.served.all()]
    if report.failed or not registry.served.live:
        if not report.failed:
            err.write(f"{args.policies}: no policy files (*.yaml, *.yml) found\n")
        return EXIT_FAILED
    settings = settings_from_env(args.max_body_bytes, args.max_batch, args.reload_interval or None)
    missing_key = _missing_audit_key(policies, settings.audit_key, audit_on=not args.no_audit)
    if missing_key:
        err.write(missing_key)
        return EXIT_USAGE
    audit = None if args.no_audit else SQLiteAuditStore(args.audit, args.audit_durability)
    app = create_app(settings, registry, audit=audit)
    sock = bind(args.host, args.port)
    where = "off" if audit is None else f"{args.audit} ({args.audit_durability})"
    out.write(
        f"guardrails serving {len(policies)} policies on http://{args.host}:{sock.getsockname()[1]}; audit: {where}\n"
    )
    out.flush()
    run_in_foreground(app, sock, args.log_level)
    return EXIT_OK


def settings_from_env(
    max_body_bytes: int = 1024 * 1024, max_batch: int = 1000, reload_interval_s: float | None = 1.0
) -> ServerSettings:
    """Server settings, with the tokens and the audit key from the environment."""
    key = os.environ.get("GUARDRAILS_AUDIT_KEY") or None
    return ServerSettings(
        max_body_bytes=max_body_bytes,
        max_batch=max_batch,
        admin_token=os.environ.get("GUARDRAILS_ADMIN_TOKEN") or None,
        api_token=os.environ.get("GUARDRAILS_API_TOKEN") or None,
        audit_key=key.encode() if key else None,
        reload_interval_s=reload_interval_s,
    )


def _missing_audit_key(policies: list[CompiledPolicy], key: bytes | None, audit_on: bool) -> str | None:
    from guardrails.app import hashed_fields

    fields = hashed_fields(policies)
    if not audit_on or key is not None or not fields:
        return None
    return (
        f"error: {', '.join(fields)} {'is' if len(fields) == 1 else 'are'} marked `audit: hash`, "
        "which needs a secret key: set GUARDRAILS_AUDIT_KEY (for example "
        "`export GUARDRAILS_AUDIT_KEY=$(openssl rand -hex 32)`), or run with --no-audit\n"
    )


def _demo(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from guardrails.demo.run import run_demo

    policies, problems = load_policies([args.policies])
    for problem in problems:
        err.write(f"{problem}\n")
    if problems or not policies:
        return EXIT_FAILED
    return run_demo(policies, out)


def decision_json(decision: Decision) -> str:
    """A decision as indented JSON, for people reading a terminal."""
    return msgspec.json.format(msgspec.json.encode(decision), indent=2).decode()


if __name__ == "__main__":
    sys.exit(main())
