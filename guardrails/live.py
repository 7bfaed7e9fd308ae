"""What is being served: a policy with its upstream, and consistent snapshots of them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from guardrails.monitor.window import Window
from guardrails.policy.compile import CompiledPolicy
from guardrails.upstream.caller import Upstream


@dataclass(frozen=True, slots=True)
class LivePolicy:
    policy: CompiledPolicy
    upstream: Upstream
    loaded_at: str
    monitor: Window | None = None  # the drift window, when the policy has `monitor:`


@dataclass(frozen=True, slots=True)
class Served:
    """One consistent snapshot: live policies by name, and the shadows of each."""

    live: Mapping[str, LivePolicy]
    shadows: Mapping[str, tuple[LivePolicy, ...]]

    def all(self) -> list[LivePolicy]:
        return [*self.live.values(), *(s for group in self.shadows.values() for s in group)]
