"""`guardrails demo`: the demo model server, the proxy in front of it, varied traffic, a summary.

Starts `ModelServer` on a free port, points every example policy's upstream at it (same
path), serves them with the real app on another free port, and sends a few hundred
requests through real sockets: valid and invalid inputs, batches, and stretches where
the model fails (HTTP 500), is slow, and answers garbage. Then prints what happened.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import aiohttp
import httpx

from guardrails.app import build_app
from guardrails.audit.sqlite import SQLiteAuditStore
from guardrails.audit.verify import verify
from guardrails.demo.applicants import draw
from guardrails.demo.applicants import requests as applicant_requests
from guardrails.demo.model import ModelServer
from guardrails.policy.compile import CompiledPolicy
from guardrails.policy.inputs import InputField
from guardrails.runner import ServerThread
from guardrails.server import ServerSettings

CONCURRENCY = 8


@dataclass
class Tally:
    """What the demo saw, per policy."""

    statuses: Counter[int] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    fallbacks: Counter[str] = field(default_factory=Counter)
    client_ms: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)


APPLICANT_FIELDS = frozenset(("amount", "account_age_days", "income", "prior_defaults", "country", "segment", "email"))


def random_input(
    policy: CompiledPolicy, rng: random.Random, invalid: bool = False, applicants: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A plausible input; `invalid` breaks a field.

    A policy over the credit applicants' fields gets synthetic applicants from the
    distribution its shipped drift reference was built from (so its monitor stays quiet
    while nothing is wrong); any other policy gets one of its own test inputs, varied.
    """
    fields = policy.inputs.fields
    if applicants is not None and {f.name for f in fields} == APPLICANT_FIELDS:
        if not applicants:
            applicants.extend(applicant_requests(draw(5000, seed=rng.randrange(2**32))))
        return _broken(fields, applicants.pop(), rng) if invalid else applicants.pop()
    seeds = [case.input for case in policy.tests if isinstance(policy.inputs.from_mapping(case.input), dict)]
    values = dict(rng.choice(seeds)) if seeds else {f.name: _value(f, rng) for f in fields if f.required}
    for f in fields:
        if f.name in values and f.type in ("int", "float") and f.allowed is None:
            values[f.name] = _vary(f, values[f.name], rng)
        elif rng.random() < 0.2 and (f.allowed is not None or f.type == "bool"):
            values[f.name] = _value(f, rng)
        elif not f.required and rng.random() < 0.2:
            values.pop(f.name, None)
    return _broken(fields, values, rng) if invalid else values


def _broken(fields: Sequence[InputField], values: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """`values` with one field made invalid: a wrong type, a required field left out, or a field too many."""
    if fields:
        broken = rng.choice(list(fields))
        choice = rng.random()
        if choice < 0.4:
            values[broken.name] = "not-a-valid-value" if broken.type != "str" else 12345
        elif choice < 0.7 and broken.required:
            values.pop(broken.name, None)
        else:
            values["unexpected_field"] = True
    return values


def _vary(f: InputField, value: float, rng: random.Random) -> float | int:
    varied = value * rng.lognormvariate(0, 0.8) + (rng.random() < 0.1) * rng.randint(0, 5)
    if f.min is not None:
        varied = max(varied, f.min)
    if f.max is not None:
        varied = min(varied, f.max)
    return int(varied) if f.type == "int" else round(varied, 2)


def _value(f: InputField, rng: random.Random) -> Any:
    if f.allowed is not None:
        return rng.choice(f.allowed)
    if f.type == "bool":
        return rng.random() < 0.5
    if f.type == "str":
        return "".join(rng.choice("abcdefghij ") for _ in range(rng.randint(1, min(f.max_length or 40, 40))))
    low = f.min if f.min is not None else 0.0
    high = f.max if f.max is not None else low + 1000.0
    value = low + (high - low) * rng.random()
    return int(value) if f.type == "int" else round(value, 2)


async def _send(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any], tally: Tally, gate: asyncio.Semaphore
) -> None:
    async with gate:
        started = time.perf_counter()
        async with session.post(url, json=body) as response:
            payload = await response.json(content_type=None)
        tally.client_ms.append((time.perf_counter() - started) * 1000)
    tally.statuses[response.status] += 1
    for decision in payload.get("decisions", [payload]) if response.status == 200 else []:
        tally.outcomes[decision["outcome"]] += 1
        tally.reasons.update(decision["reasons"])
        if decision["fallback"]:
            tally.fallbacks[decision["fallback"]] += 1
        tally.server_ms.append(decision["latency_ms"])


async def _phase(
    proxy: str,
    policies: Sequence[CompiledPolicy],
    count: int,
    tallies: dict[str, Tally],
    rng: random.Random,
    applicants: list[dict[str, Any]],
    invalid_share: float = 0.1,
    batch_every: int = 0,
) -> None:
    gate = asyncio.Semaphore(CONCURRENCY)
    async with aiohttp.ClientSession() as session:
        tasks = []
        for i in range(count):
            policy = policies[i % len(policies)]
            if batch_every and i % batch_every == 0:
                body: dict[str, Any] = {"instances": [random_input(policy, rng, False, applicants) for _ in range(10)]}
                url = f"{proxy}/v1/decide/{policy.name}/batch"
            else:
                body = random_input(policy, rng, rng.random() < invalid_share, applicants)
                url = f"{proxy}/v1/decide/{policy.name}"
            tasks.append(_send(session, url, body, tallies[policy.name], gate))
        await asyncio.gather(*tasks)


async def _traffic(proxy: str, model: ModelServer, policies: Sequence[CompiledPolicy], out: TextIO) -> dict[str, Tally]:
    rng = random.Random(7)
    applicants: list[dict[str, Any]] = []
    tallies = {p.name: Tally() for p in policies}
    reset_s = max(p.upstream.circuit_breaker.reset_after_s for p in policies)
    phases: list[tuple[str, str, int, dict[str, Any]]] = [
        ("normal traffic, 10% invalid inputs, some batches", "ok", 240, {"batch_every": 20}),
        ("the model answers HTTP 500", "error", 40, {}),
        ("the model answers garbage", "garbage", 30, {}),
        ("the model is slower than the timeout", "slow", 30, {}),
    ]
    for title, mode, count, options in phases:
        # each stretch starts from a closed circuit
        await _wait_closed(proxy, model, policies, reset_s, out, applicants)
        model.mode = mode
        out.write(f"  {title}: {count} requests\n")
        await _phase(proxy, policies, count, tallies, rng, applicants, **options)
    await _wait_closed(proxy, model, policies, reset_s, out, applicants)
    out.write("  the model has recovered: 40 requests\n")
    await _phase(proxy, policies, 40, tallies, rng, applicants)
    return tallies


async def _wait_closed(
    proxy: str,
    model: ModelServer,
    policies: Sequence[CompiledPolicy],
    reset_s: float,
    out: TextIO,
    applicants: list[dict[str, Any]],
) -> None:
    """Heal the model and wait until every circuit has let its probe through and closed."""
    model.mode = "ok"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{proxy}/v1/policies") as response:
            listing = await response.json()
        if all(p["upstream"]["circuit"] == "closed" for p in listing["policies"]):
            return
        out.write(f"  (circuit open: waiting up to {reset_s:.0f} s for it to let a probe through)\n")
        deadline = time.monotonic() + reset_s + 5
        rng = random.Random(11)
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            for policy in policies:
                body = random_input(policy, rng, False, applicants)
                async with session.post(f"{proxy}/v1/decide/{policy.name}", json=body) as response:
                    await response.read()
            async with session.get(f"{proxy}/v1/policies") as response:
                listing = await response.json()
            if all(p["upstream"]["circuit"] == "closed" for p in listing["policies"]):
                return


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]


def summary(tallies: dict[str, Tally], out: TextIO) -> None:
    for name, tally in tallies.items():
        total = sum(tally.statuses.values())
        out.write(f"\n{name}: {total} requests\n")
        out.write("  HTTP status   " + ", ".join(f"{s}: {n}" for s, n in sorted(tally.statuses.items())) + "\n")
        out.write("  outcomes      " + ", ".join(f"{o}: {n}" for o, n in tally.outcomes.most_common()) + "\n")
        out.write("  reasons       " + ", ".join(f"{r}: {n}" for r, n in tally.reasons.most_common()) + "\n")
        fallbacks = ", ".join(f"{c}: {n}" for c, n in tally.fallbacks.most_common()) or "none"
        out.write(f"  fallbacks     {fallbacks}\n")
        for label, values in (("client", tally.client_ms), ("guardrails", tally.server_ms)):
            p50, p90, p99 = (_percentile(values, q) for q in (50, 90, 99))
            out.write(f"  latency ms    {label:<10} p50 {p50:7.2f}  p90 {p90:7.2f}  p99 {p99:7.2f}\n")


def run_demo(policies: Sequence[CompiledPolicy], out: TextIO) -> int:
    logging.getLogger("guardrails").setLevel(logging.ERROR)  # the summary tells the story; no per-fallback lines
    model = ModelServer(delay_ms=1000)
    audit_path = Path(tempfile.mkdtemp(prefix="guardrails-demo-")) / "audit.db"
    audit = SQLiteAuditStore(audit_path)
    settings = ServerSettings(audit_key=secrets.token_bytes(32), reload_interval_s=None)
    with ServerThread(model) as model_thread:
        urls = {p.name: model_thread.url + urlsplit(p.upstream.url).path for p in policies}
        app = build_app(policies, settings, urls=urls, audit=audit)
        with ServerThread(app) as proxy:
            out.write(f"model server on {model_thread.url}, guardrails on {proxy.url}\n")
            for policy in policies:
                out.write(f"  {policy.name} ({policy.upstream.protocol}) -> {urls[policy.name]}\n")
            tallies = asyncio.run(_traffic(proxy.url, model, policies, out))
            summary(tallies, out)
            monitors = _monitors(proxy.url, policies)
    for name, status in monitors.items():
        out.write(f"\n{name} drift monitor: {status}")
    report = verify(audit_path)
    chain = "the hash chain verifies" if report.ok else f"the chain does NOT verify: {report.verdict.problem}"
    out.write(f"\n\naudit log: {report.verdict.count} records in {audit_path}; {chain}\n")
    out.write(f"  try: guardrails audit query --audit {audit_path} --fallback any --limit 5\n")
    out.write(f"       guardrails audit stats --audit {audit_path} --by fallback\n")
    out.write("\nServe it yourself: guardrails serve --policies policies (then POST /v1/decide/credit-risk)\n")
    return 0 if report.ok else 1


def _monitors(proxy: str, policies: Sequence[CompiledPolicy]) -> dict[str, str]:
    """Each monitored policy's drift status and reasons, as the API reports them."""
    found: dict[str, str] = {}
    for policy in policies:
        if policy.monitor is None:
            continue
        report = httpx.get(f"{proxy}/v1/policies/{policy.name}/monitor", timeout=10).json()
        found[policy.name] = f"{report['status']} ({'; '.join(report['reasons']) or 'no drift'})"
    return found
