"""HTTP routes about the policies themselves: listing, versions, reload; and the folder watcher."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any

import msgspec
from litestar import Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec
from litestar.params import FromPath

from guardrails.auth import Guard
from guardrails.envelope import ErrorBody
from guardrails.live import LivePolicy
from guardrails.metrics import Metrics
from guardrails.monitor.report import MonitorReport
from guardrails.registry import PolicyRegistry, PolicyVersion, ReloadReport

log = logging.getLogger("guardrails.policies")
JSON = "application/json"
RETIRED_GRACE_S = 60.0  # an upstream replaced by a reload is closed this long after, when nothing uses it


class UpstreamInfo(msgspec.Struct, frozen=True):
    url: str
    protocol: str
    circuit: str


class PolicyInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    version: str | None
    version_id: str
    owner: str
    description: str
    upstream: UpstreamInfo
    loaded_at: str
    file: str
    status: str = "ok"
    error: str | None = None
    shadow_of: str | None = None


class PolicyList(msgspec.Struct, frozen=True):
    policies: list[PolicyInfo]


class VersionList(msgspec.Struct, frozen=True):
    name: str
    versions: list[PolicyVersion]


def policy_info(live: LivePolicy, registry: PolicyRegistry) -> PolicyInfo:
    policy = live.policy
    state = registry.states.get(policy.name)
    return PolicyInfo(
        name=policy.name,
        version=policy.version,
        version_id=policy.version_id,
        owner=policy.owner,
        description=policy.description,
        upstream=UpstreamInfo(live.upstream.spec.url, policy.upstream.protocol, live.upstream.circuit_state()),
        loaded_at=live.loaded_at,
        file=policy.file,
        status=state.status if state else "ok",
        error=state.error if state else None,
        shadow_of=policy.shadow_of,
    )


def _not_found(name: str) -> Response[Any]:
    body = msgspec.json.encode(ErrorBody("unknown_policy", f"no policy named {name!r}"))
    return Response(body, status_code=404, media_type=JSON)


def policy_routes(registry: PolicyRegistry, metrics: Metrics, admin: Guard) -> list[HTTPRouteHandler]:
    def find(name: str) -> LivePolicy | None:
        return next((p for p in registry.served.all() if p.policy.name == name), None)

    @get("/v1/policies", summary="The policies being served, shadows included")
    async def list_policies() -> PolicyList:
        return PolicyList([policy_info(p, registry) for p in registry.served.all()])

    @get("/v1/policies/{name:str}", summary="One policy", responses={404: ResponseSpec(ErrorBody)})
    async def one_policy(name: FromPath[str]) -> Response[PolicyInfo]:
        live = find(name)
        return _not_found(name) if live is None else Response(policy_info(live, registry))

    @get(
        "/v1/policies/{name:str}/versions",
        summary="The versions of a policy that went live, oldest first",
        responses={404: ResponseSpec(ErrorBody)},
    )
    async def versions(name: FromPath[str]) -> Response[VersionList]:
        history = registry.versions.get(name)
        return _not_found(name) if history is None else Response(VersionList(name, list(history)))

    @get(
        "/v1/policies/{name:str}/monitor",
        summary="Drift and rates of the policy's last decisions against its reference",
        responses={404: ResponseSpec(ErrorBody)},
    )
    async def monitor(name: FromPath[str]) -> Response[MonitorReport]:
        live = registry.served.live.get(name)
        if live is None:
            return _not_found(name)
        if live.monitor is None:
            body = msgspec.json.encode(ErrorBody("no_monitor", f"policy {name!r} has no `monitor:` section"))
            return Response(body, status_code=404, media_type=JSON)  # type: ignore[arg-type]
        report = live.monitor.report()
        metrics.record_monitor(report)
        return Response(report)

    @post(
        "/v1/policies/reload",
        summary="Reload the policy folder now",
        guards=[admin],
        status_code=200,
        responses={
            401: ResponseSpec(ErrorBody, description="No admin token, or the wrong one"),
            403: ResponseSpec(ErrorBody, description="No admin token is configured (GUARDRAILS_ADMIN_TOKEN)"),
        },
    )
    async def reload() -> ReloadReport:
        report = await asyncio.to_thread(registry.reload)
        metrics.record_reload(report)
        return report

    return [list_policies, one_policy, versions, monitor, reload]


def watching(registry: PolicyRegistry, metrics: Metrics, interval_s: float | None) -> AbstractAsyncContextManager[None]:
    """While the app runs, reload the folder every `interval_s` seconds (None: never)."""
    if registry.folder is None or interval_s is None:
        return contextlib.nullcontext()
    return _in_background(_watch(registry, metrics, interval_s), "guardrails-policy-watcher")


def monitoring(
    registry: PolicyRegistry, metrics: Metrics, interval_s: float = 5.0
) -> AbstractAsyncContextManager[None]:
    """While the app runs, judge every drift window every `interval_s`: gauges, and a log line per status change."""
    return _in_background(_judge_windows(registry, metrics, interval_s), "guardrails-monitor")


@contextlib.asynccontextmanager
async def _in_background(loop: Coroutine[Any, Any, None], name: str) -> AsyncIterator[None]:
    task = asyncio.create_task(loop, name=name)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _judge_windows(registry: PolicyRegistry, metrics: Metrics, interval_s: float) -> None:
    last: dict[str, str] = {}
    while True:
        await asyncio.sleep(interval_s)
        for name, live in registry.served.live.items():
            if live.monitor is None:
                continue
            try:
                report = live.monitor.report()
            except Exception:  # a monitor must never take the server down
                log.exception("drift monitor failed", extra={"policy": name})
                continue
            metrics.record_monitor(report)
            if last.get(name, "ok") != report.status:
                level = logging.WARNING if report.status != "ok" else logging.INFO
                extra = {
                    "policy": name,
                    "status": report.status,
                    "was": last.get(name, "ok"),
                    "reasons": report.reasons,
                }
                log.log(level, "monitor status changed", extra=extra)
            last[name] = report.status


async def _watch(registry: PolicyRegistry, metrics: Metrics, interval_s: float) -> None:
    retired: list[tuple[float, Any]] = []
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(interval_s)
        try:
            report = await asyncio.to_thread(registry.reload)
        except Exception:  # the watcher must outlive any bad file or bug
            log.exception("policy reload failed")
            continue
        metrics.record_reload(report)
        retired.extend((loop.time() + RETIRED_GRACE_S, u) for u in registry.retired)
        registry.retired.clear()
        due = [u for when, u in retired if when <= loop.time()]
        retired = [(when, u) for when, u in retired if when > loop.time()]
        for upstream in due:
            await upstream.transport.close()


async def close_all(registry: PolicyRegistry) -> None:
    """Close every upstream's connection pool, current and retired."""
    for live in registry.served.all():
        await live.upstream.transport.close()
    for upstream in registry.retired:
        await upstream.transport.close()
