"""The proxy benchmark: what `guardrails serve` costs over calling the model directly, in one run.

    python benchmarks/bench_proxy.py [--quick] [--client aiohttp] [--connections 32]

Requests/s and p50/p99 latency of the same model call made (a) directly to the upstream (the
demo ModelServer's v2 credit endpoint), (b) through a bare litestar passthrough with no guard
logic, using the fastest client of bench_http_client.py, (c) through `guardrails serve`, the
real command in a subprocess, with policies/credit-risk.yaml copied to a temporary folder and
its upstream url rewritten: without the audit log, then with it (sync, the default, and async),
and (d) through nginx proxy_pass when nginx is installed. At 1 connection the target is that
guardrails adds at most 0.5 ms at p50 over the direct call; under load, that it reaches at
least 70% of the bare passthrough's throughput.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import harness as h
from apps import CLIENTS

P50_BUDGET_MS = 0.5  # guardrails p50 - direct p50, at 1 connection
THROUGHPUT_TARGET = 0.7  # guardrails / bare passthrough, under load
AUDIT_MODES = {
    "off": ["--no-audit"],
    "sync": ["--audit-durability", "sync"],
    "async": ["--audit-durability", "async"],
    "commit": ["--audit-durability", "commit"],
}
DEFAULT_AUDIT_MODES = ["off", "sync", "async"]

NGINX_CONF = """daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/nginx-body;
  proxy_temp_path {tmp}/nginx-proxy;
  fastcgi_temp_path {tmp}/nginx-fastcgi;
  uwsgi_temp_path {tmp}/nginx-uwsgi;
  scgi_temp_path {tmp}/nginx-scgi;
  keepalive_requests 1000000;
  upstream model {{ server {upstream}; keepalive 64; keepalive_requests 1000000; }}
  server {{
    listen {host}:{port};
    location / {{
      proxy_pass http://model;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="one short round, for a smoke test (noisier figures)")
    parser.add_argument("--client", default="http1", choices=sorted(CLIENTS), help="the passthrough's client")
    parser.add_argument("--connections", type=int, default=32, help="connections under load (default 32)")
    parser.add_argument(
        "--audit", nargs="+", default=DEFAULT_AUDIT_MODES, choices=list(AUDIT_MODES), help="audit modes of (c)"
    )
    args = parser.parse_args(argv)
    settings = h.QUICK if args.quick else h.FULL
    levels = (args.connections, 1)
    where = h.placement()
    with h.run_directory() as (tmp, processes):
        direct = h.start_upstream(processes, where.upstream)
        passthrough = _start_passthrough(processes, direct, args.client, where.server)
        guarded = [start_guardrails(processes, tmp, direct, mode, where.server) for mode in args.audit]
        nginx = _start_nginx(processes, tmp, direct, where.server)
        targets = [direct, passthrough, *guarded, *([nginx] if nginx else [])]
        gen = h.LoadGenerator(tmp, where.load)
        notes = [
            f"(b) passthrough: {CLIENTS[args.client][0]}, under uvicorn with uvloop + httptools, as `serve` runs",
            f"(c) guardrails serve: audit {', '.join(args.audit)} (the command's default is sync)",
            "(d) nginx: " + ("1 worker, upstream keepalive 64" if nginx else "not installed (apt-get install nginx)"),
            "every server gets the same model request; guardrails gets the decision request that causes it",
        ]
        h.header(
            "guardrails proxy benchmark: direct vs passthrough vs guardrails vs nginx", gen, where, settings, notes
        )
        samples = h.measure(gen, processes, targets, levels, settings)
        fallbacks = {t.name: h.fallback_count(h.metrics_url(t)) for t in guarded}
    verdicts = _report(samples, targets, guarded, levels)
    print(f"\nfallback decisions during the run (should be 0): {fallbacks}")
    print(f"targets: {sum(verdicts)} of {len(verdicts)} PASS")
    return 0


def _start_passthrough(processes: h.Processes, direct: h.Target, client: str, cpu: str | None) -> h.Target:
    port = h.free_port()
    url = f"http://{h.HOST}:{port}{h.v2_path()}"
    target = h.Target("passthrough", f"(b) bare passthrough ({client})", url, direct.body)
    env = {"BENCH_UPSTREAM": direct.url, "BENCH_CLIENT": client}
    h.start_app(processes, target, h.server_argv("apps:make_passthrough", port, "uvicorn"), cpu, env)
    return target


def start_guardrails(
    processes: h.Processes,
    tmp: Path,
    direct: h.Target,
    audit: str,
    cpu: str | None,
    under: Sequence[str] = (),
    options: Sequence[str] = (),
    ready_timeout_s: float = 30.0,
    name: str | None = None,
) -> h.Target:
    """`guardrails serve` on a copy of the credit-risk policy whose upstream url points at `direct`.

    `under` is a command to run it under and `options` more options for it (valgrind, and no
    folder checks, for count_audit_instructions.py). `name` tells apart servers of one `audit`
    mode (bench_audit_floor.py's stand-ins); it names the target and the audit file.
    """
    name = name or audit
    folder = tmp / "policies"
    if not folder.exists():
        folder.mkdir()
        for sibling in h.POLICY_FILE.parent.glob(f"{h.POLICY_FILE.stem}.*"):  # files it refers to, as its reference
            shutil.copy(sibling, folder / sibling.name)
        text = h.POLICY_FILE.read_text()
        original = "url: http://127.0.0.1:8081/v2/models/credit/infer"
        if original not in text:
            raise RuntimeError(f"{h.POLICY_FILE} no longer has `{original}`: update bench_proxy.py")
        (folder / h.POLICY_FILE.name).write_text(text.replace(original, f"url: {direct.url}"))
    port = h.free_port()
    command = shutil.which("guardrails", path=str(Path(h.PYTHON).parent))
    serve = [command] if command and not under else [*under, h.PYTHON, "-m", "guardrails"]
    argv = [*serve, "serve", "--policies", str(folder), "--port", str(port), "--audit", str(tmp / f"audit-{name}.db")]
    url = f"http://{h.HOST}:{port}/v1/decide/{h.POLICY_NAME}"
    label = "(c) guardrails serve, no audit" if audit == "off" else f"(c) guardrails serve, audit {audit}"
    target = h.Target(f"guardrails-{name}", label, url, h.decide_body())
    env = {"GUARDRAILS_AUDIT_KEY": secrets.token_hex(32)}
    h.check_decision(h.start_app(processes, target, [*argv, *AUDIT_MODES[audit], *options], cpu, env, ready_timeout_s))
    return target


def _start_nginx(processes: h.Processes, tmp: Path, direct: h.Target, cpu: str | None) -> h.Target | None:
    nginx = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
    if nginx is None:
        return None
    port = h.free_port()
    upstream = direct.url.split("/")[2]
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, upstream=upstream, host=h.HOST, port=port))
    target = h.Target("nginx", "(d) nginx proxy_pass", f"http://{h.HOST}:{port}{h.v2_path()}", direct.body)
    h.start_app(
        processes, target, [nginx, "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "nginx-error.log")], cpu, {}
    )
    return target


def _report(
    samples: h.Samples, targets: list[h.Target], guarded: list[h.Target], levels: tuple[int, int]
) -> list[bool]:
    load, one = levels
    print("\n1 connection: latency")
    h.table(targets, samples, one)
    print()
    verdicts = []
    for t in targets[1:]:
        added = h.per_round(samples, t.name, "direct", one, h.p50_difference)
        if t in guarded:
            goal = f"<= +{P50_BUDGET_MS} ms"
            verdicts.append(h.compare(f"p50 added over direct: {t.label}", added, "ms", _at_most(P50_BUDGET_MS), goal))
        else:
            h.compare(f"p50 added over direct: {t.label}", added, "ms")
    for g in guarded:
        added = h.per_round(samples, g.name, "passthrough", one, h.p50_difference)
        h.compare(f"p50 added over the passthrough: {g.label}", added, "ms")
    print(f"\n{load} connections: throughput")
    h.table(targets, samples, load)
    print()
    for g in guarded:
        ratio = h.per_round(samples, g.name, "passthrough", load, h.throughput_ratio)
        goal = f">= {THROUGHPUT_TARGET}"
        verdicts.append(
            h.compare(f"throughput / passthrough: {g.label}", ratio, "x", _at_least(THROUGHPUT_TARGET), goal)
        )
    for t in targets[1:]:
        h.compare(
            f"throughput / direct: {t.label}", h.per_round(samples, t.name, "direct", load, h.throughput_ratio), "x"
        )
    for g in guarded:  # CPU time per request does not count time spent waiting for a CPU: steadier on a busy machine
        extra = h.per_round(samples, g.name, "passthrough", load, h.cpu_difference)
        h.compare(f"server CPU per request over the passthrough: {g.label}", extra, "ms")
    return verdicts


def _at_most(limit: float) -> Callable[[float], bool]:
    return lambda value: value <= limit


def _at_least(limit: float) -> Callable[[float], bool]:
    return lambda value: value >= limit


if __name__ == "__main__":
    sys.exit(main())
