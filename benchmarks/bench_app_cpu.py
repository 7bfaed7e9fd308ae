"""CPU per request of the guardrails app against the bare passthrough app, in-process, with a canned upstream.

    python benchmarks/bench_app_cpu.py [--quick] [--profile N]

The part of bench_proxy.py's gap that is our code, without sockets, a server or a second
process: each app (benchmarks/apps.py's passthrough, and `create_app` serving
policies/credit-risk.yaml) is called straight through ASGI with the same upstream transport, one
that answers the demo ModelServer's real reply at once. CPU time per request, the apps taking
turns in short bursts; `--profile N` prints the guardrails app's N costliest functions (cProfile,
by own time): where to look when bench_proxy.py misses its throughput target.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import platform
import pstats
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

import harness as h
import uvloop
from apps import passthrough_app

from guardrails.app import live_policies
from guardrails.demo.model import ModelServer
from guardrails.policy.load import load_policy_file
from guardrails.server import ServerSettings, create_app
from guardrails.upstream.transport import Reply, TransportFailure

Message = MutableMapping[str, Any]
App = Callable[[Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Settings:
    rounds: int
    burst: int  # requests per app per round


FULL = Settings(rounds=30, burst=300)
QUICK = Settings(rounds=5, burst=100)


class CannedTransport:
    """The model's answer at once, after one trip through the event loop as a real call makes."""

    def __init__(self, reply: bytes) -> None:
        self.reply = Reply(200, reply)

    async def post(self, url: str, body: bytes, timeout_s: float, max_bytes: int) -> Reply | TransportFailure:
        await asyncio.sleep(0)
        return self.reply

    async def close(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class Contender:
    name: str
    label: str
    app: Any
    path: str
    body: bytes


def _scope(path: str, body: bytes) -> Message:
    headers = [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json")]
    headers.append((b"content-length", str(len(body)).encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": (h.HOST, 50000),
        "server": (h.HOST, 8000),
        "state": {},
    }


async def _drive(contender: Contender, requests: int) -> list[Message]:
    """`requests` POSTs straight into the app; the messages it sent for the last one."""
    sent: list[Message] = []
    request: Message = {"type": "http.request", "body": contender.body, "more_body": False}

    async def receive() -> Message:
        return request

    async def send(message: Message) -> None:
        sent.append(message)

    for _ in range(requests):
        sent.clear()
        await contender.app(_scope(contender.path, contender.body), receive, send)
    return sent


async def _lifespan(app: Any) -> tuple[asyncio.Task[None], asyncio.Queue[Message]]:
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()
    task = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, outbox.put)
    )
    await inbox.put({"type": "lifespan.startup"})
    started = await outbox.get()
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"the app did not start: {started}")
    return task, inbox


async def _contenders() -> list[Contender]:
    policy = load_policy_file(h.POLICY_FILE)
    status, reply = await ModelServer()._predict(h.v2_path(), h.v2_body())
    assert status == 200, reply
    canned = CannedTransport(reply)
    guarded = create_app(ServerSettings(), live_policies([policy], transport=lambda: canned))
    unwatched = load_policy_file(h.POLICY_FILE, monitor=False)  # the same policy, its `monitor:` off
    unmonitored = create_app(ServerSettings(), live_policies([unwatched], transport=lambda: canned))
    bare = passthrough_app(f"http://{h.HOST}:9{h.v2_path()}", canned)
    decide_path = f"/v1/decide/{h.POLICY_NAME}"
    return [
        Contender("passthrough", "passthrough app (litestar, body forwarded)", bare, h.v2_path(), h.v2_body()),
        Contender(
            "guardrails", "guardrails app (credit-risk, drift monitor on)", guarded, decide_path, h.decide_body()
        ),
        Contender("unmonitored", "guardrails app, drift monitor off", unmonitored, decide_path, h.decide_body()),
    ]


async def _check(contender: Contender) -> None:
    sent = await _drive(contender, 50)
    if sent[0]["status"] != 200:
        raise RuntimeError(f"{contender.name} answered {sent[0]['status']}: {sent[1].get('body', b'')[:300]!r}")
    if contender.name != "passthrough":
        h.check_decision(sent[1]["body"])


async def _run(settings: Settings, profile: int) -> None:
    contenders = await _contenders()
    lifespans = [await _lifespan(c.app) for c in contenders]
    for contender in contenders:
        await _check(contender)
    cpu: dict[str, list[float]] = {c.name: [] for c in contenders}
    for r in range(settings.rounds):
        for c in contenders[r % 3 :] + contenders[: r % 3]:
            start = time.process_time()
            await _drive(c, settings.burst)
            cpu[c.name].append((time.process_time() - start) / settings.burst * 1e6)
    _report(contenders, cpu)
    if profile:
        profiler = cProfile.Profile()
        profiler.enable()
        await _drive(contenders[1], settings.burst * 5)
        profiler.disable()
        print(f"\nguardrails app, {settings.burst * 5:,} requests under cProfile: the {profile} costliest by own time")
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(profile)
    for task, inbox in lifespans:
        await inbox.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(task, 10)


def _report(contenders: list[Contender], cpu: dict[str, list[float]]) -> None:
    print()
    for c in contenders:
        values = cpu[c.name]
        print(f"   {c.label:<50} {statistics.median(values):>8.1f} us/request [{min(values):.1f} .. {max(values):.1f}]")
    added = [g - p for g, p in zip(cpu["guardrails"], cpu["passthrough"], strict=True)]
    ratio = [g / p for g, p in zip(cpu["guardrails"], cpu["passthrough"], strict=True)]
    span = f"[{min(added):+.1f} .. {max(added):+.1f}]"
    print(f"   {'guardrails - passthrough':<50} {statistics.median(added):>+8.1f} us {span}")
    span = f"[{min(ratio):.2f} .. {max(ratio):.2f}]"
    print(f"   {'guardrails / passthrough':<50} {statistics.median(ratio):>8.2f} x  {span}")
    # Decisions per second is 1 / CPU per request: monitoring's cost is the ratio of the two apps' rates.
    rates = [u / g for g, u in zip(cpu["guardrails"], cpu["unmonitored"], strict=True)]
    span = f"[{min(rates):.3f} .. {max(rates):.3f}]"
    verdict = "PASS" if statistics.median(rates) >= 0.9 else "FAIL"
    label = "decisions/s, monitor on / monitor off"
    print(f"   {label:<50} {statistics.median(rates):>8.3f} x  {span}  target >= 0.90: {verdict}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a few rounds, for a smoke test (noisier figures)")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="print the N costliest functions")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    where = h.placement()
    if where.server is not None:
        os.sched_setaffinity(0, {int(where.server)})
    load = os.getloadavg()[0]
    print("guardrails app CPU benchmark: ASGI calls straight into each app; the upstream answers at once (canned)")
    print(f"python {platform.python_version()}, uvloop; CPU {where.server or 'not pinned'}; load average {load:.2f}")
    print(
        f"{settings.rounds} rounds of {settings.burst} requests per app, taking turns; CPU time per request; "
        "a figure is the median over rounds [min .. max], a difference or ratio the median of per-round ones"
    )
    uvloop.run(_run(settings, args.profile))
    return 0


if __name__ == "__main__":
    sys.exit(main())
