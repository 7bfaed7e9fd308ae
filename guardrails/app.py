"""Assemble a runnable app from policy files: compiled policies, their upstreams, the server.

The edge where the clock and the transports are chosen; `create_app` itself takes them
ready-made.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime

import msgspec
from litestar import Litestar

from guardrails.audit.store import AuditStore
from guardrails.metrics import Metrics
from guardrails.policy.compile import CompiledPolicy
from guardrails.server import ServerSettings, create_app
from guardrails.service import LivePolicy
from guardrails.upstream.caller import Upstream
from guardrails.upstream.transport import AiohttpTransport, Transport


def live_policies(
    policies: Iterable[CompiledPolicy],
    transport: Callable[[], Transport] = AiohttpTransport,
    urls: Mapping[str, str] | None = None,
) -> dict[str, LivePolicy]:
    """Each policy with its own pooled upstream client; `urls` overrides upstream addresses by policy name."""
    loaded_at = datetime.now(UTC).isoformat(timespec="seconds")
    live: dict[str, LivePolicy] = {}
    for policy in policies:
        spec = policy.upstream
        if urls and policy.name in urls:
            spec = msgspec.structs.replace(spec, url=urls[policy.name])
        live[policy.name] = LivePolicy(policy, Upstream(spec, transport()), loaded_at)
    return live


def build_app(
    policies: Iterable[CompiledPolicy],
    settings: ServerSettings | None = None,
    urls: Mapping[str, str] | None = None,
    metrics: Metrics | None = None,
    audit: AuditStore | None = None,
) -> Litestar:
    return create_app(settings or ServerSettings(), live_policies(policies, urls=urls), metrics, audit)


def hashed_fields(policies: Iterable[CompiledPolicy]) -> list[str]:
    """`policy.field` for every input the audit log must hash (these need GUARDRAILS_AUDIT_KEY)."""
    return [f"{p.name}.{f.name}" for p in policies for f in p.inputs.fields if f.audit == "hash"]
