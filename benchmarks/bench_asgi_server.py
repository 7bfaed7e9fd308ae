"""Choose the ASGI server of `guardrails serve` by measurement: the real app under each server.

    python benchmarks/bench_asgi_server.py [--quick]

The real guardrails app (`build_app` with policies/credit-risk.yaml pointed at the demo
ModelServer in its own process; benchmarks/apps.py) under uvicorn with uvloop + httptools (what
`guardrails serve` runs, and the baseline), uvicorn with asyncio + h11, and granian when it is
installed (`pip install granian`). Each serves one worker process pinned to one CPU. Requests/s
and p50/p99 at 1 and 32 connections, each request a full decision: validated, the model
called over the network, thresholds and rules applied, the envelope returned.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
from collections.abc import Sequence
from importlib.metadata import version

import harness as h

BASELINE = "uvicorn"
LEVELS = (32, 1)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="one short round, for a smoke test (noisier figures)")
    args = parser.parse_args(argv)
    settings = h.QUICK if args.quick else h.FULL
    servers = ["uvicorn", "uvicorn-h11"]
    missing = []
    if importlib.util.find_spec("granian") is not None:
        servers.append("granian")
    else:
        missing.append("granian is not installed (pip install granian): left out")
    where = h.placement()
    with h.run_directory() as (tmp, processes):
        direct = h.start_upstream(processes, where.upstream)
        targets = []
        for server in servers:
            port = h.free_port()
            url = f"http://{h.HOST}:{port}/v1/decide/{h.POLICY_NAME}"
            target = h.Target(server, f"guardrails under {h.SERVERS[server]}", url, h.decide_body())
            argv = h.server_argv("apps:make_guardrails", port, server)
            h.check_decision(h.start_app(processes, target, argv, where.server, {"BENCH_UPSTREAM": direct.url}))
            targets.append(target)
        gen = h.LoadGenerator(tmp, where.load)
        names = ["uvicorn", "uvloop", "httptools", "h11", "litestar"] + (["granian"] if "granian" in servers else [])
        h.header(
            "guardrails ASGI-server benchmark: the real app (credit-risk policy) under each server",
            gen,
            where,
            settings,
            [", ".join(f"{name} {version(name)}" for name in names), *missing, _upstream_note()],
        )
        samples = h.measure(gen, processes, targets, LEVELS, settings)
        fallbacks = {t.name: h.fallback_count(h.metrics_url(t)) for t in targets}
    for connections in LEVELS:
        print(f"\n{connections} connection{'s' if connections > 1 else ''}")
        h.table(targets, samples, connections)
        print()
        for server in servers:
            if server != BASELINE:
                ratios = h.per_round(samples, server, BASELINE, connections, h.throughput_ratio)
                h.compare(f"throughput {server} / {BASELINE}", ratios, "x")
                cpu = h.per_round(samples, server, BASELINE, connections, h.cpu_ratio)
                h.compare(f"server CPU per request {server} / {BASELINE}", cpu, "x")
                added = h.per_round(samples, server, BASELINE, connections, h.p50_difference)
                h.compare(f"p50 {server} - {BASELINE}", added, "ms")
    print(f"\nfallback decisions during the run (should be 0): {fallbacks}")
    load = max(LEVELS)
    best = max(servers, key=lambda s: statistics.median(h.per_round(samples, s, BASELINE, load, h.throughput_ratio)))
    print(f"fastest at {load} connections (median per-round throughput ratio to {BASELINE}): {best}")
    return 0


def _upstream_note() -> str:
    return "upstream: demo ModelServer v2 credit endpoint (uvicorn, uvloop + httptools); client: our AiohttpTransport"


if __name__ == "__main__":
    sys.exit(main())
