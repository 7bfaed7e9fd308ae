"""What a compiled policy carries for monitoring: its `monitor:` section and the loaded reference.

Pure: imports the stdlib and the policy spec and monitor modules only.
"""

from __future__ import annotations

from dataclasses import dataclass

from guardrails.monitor.reference import Reference
from guardrails.policy.spec import MonitorSpec


@dataclass(frozen=True, slots=True)
class MonitorConfig:
    """A policy's `monitor:` with its reference, read and checked at load."""

    policy: str
    spec: MonitorSpec
    reference: Reference
    reference_file: str  # the path it was read from
    reference_hash: str  # of its content: report it beside the policy's version id
    outcomes: tuple[str, ...]  # the policy's outcomes, in order
