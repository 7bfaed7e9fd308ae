"""Assemble a runnable app from policies: a registry of policies and upstreams, then the server.

The edge where the transports and the policy folder are chosen; `create_app` itself
takes them ready-made.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from guardrails.asgi_front import DecisionFront
from guardrails.audit.store import AuditStore
from guardrails.live import LivePolicy
from guardrails.metrics import Metrics
from guardrails.policy.compile import CompiledPolicy
from guardrails.registry import PolicyRegistry
from guardrails.server import ServerSettings, create_app
from guardrails.upstream.http1 import Http1Transport
from guardrails.upstream.transport import Transport


def live_policies(
    policies: Iterable[CompiledPolicy],
    transport: Callable[[], Transport] = Http1Transport,
    urls: Mapping[str, str] | None = None,
) -> dict[str, LivePolicy]:
    """Each policy with its own pooled upstream client; `urls` overrides upstream addresses by policy name."""
    registry = PolicyRegistry.of(list(policies), transport=transport, urls=dict(urls or {}))
    return dict(registry.served.live)


def build_app(
    policies: Iterable[CompiledPolicy],
    settings: ServerSettings | None = None,
    urls: Mapping[str, str] | None = None,
    metrics: Metrics | None = None,
    audit: AuditStore | None = None,
) -> DecisionFront:
    """An app serving a fixed set of policies (shadows included), not watching any folder."""
    registry = PolicyRegistry.of(list(policies), urls=dict(urls or {}))
    return create_app(settings or ServerSettings(), registry, metrics, audit)


def build_folder_app(
    folder: str | Path,
    settings: ServerSettings | None = None,
    urls: Mapping[str, str] | None = None,
    metrics: Metrics | None = None,
    audit: AuditStore | None = None,
) -> DecisionFront:
    """An app serving the policies of `folder`, hot-reloaded as the folder changes."""
    registry = PolicyRegistry(folder=Path(folder), urls=dict(urls or {}))
    registry.reload()
    return create_app(settings or ServerSettings(), registry, metrics, audit)


def hashed_fields(policies: Iterable[CompiledPolicy]) -> list[str]:
    """`policy.field` for every input the audit log must hash (these need GUARDRAILS_AUDIT_KEY)."""
    return [f"{p.name}.{f.name}" for p in policies for f in p.inputs.fields if f.audit == "hash"]
