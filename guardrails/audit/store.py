"""The audit store interface, and the no-op store used when auditing is off.

A store owns both writing and reading its records. `SQLiteAuditStore` is the embedded
default; a server database (for many replicas) would implement the same interface.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

from guardrails.audit.record import AuditRecord
from guardrails.errors import AuditUnavailable
from guardrails.policy.compile import CompiledPolicy

# When `append` returns, and what a record then survives:
#   sync    once committed and fsynced: survives the server's crash (`kill -9`) and, on a disk
#           that honours fsync, power loss (the default)
#   commit  once committed to the file, not fsynced: survives the server's crash, not the machine's
#   async   at once: a crash of the server can lose the records of the last moments
Durability = Literal["sync", "commit", "async"]
WAITS_FOR_COMMIT: frozenset[Durability] = frozenset({"sync", "commit"})


class AuditStore(Protocol):
    durability: Durability
    deciding: int  # decisions under way that will append, kept by the service: a store may gather records meanwhile

    async def append(self, records: Sequence[AuditRecord]) -> None:
        """Write records; in `sync` and `commit` durability, return only once they are committed.

        Raises AuditUnavailable when they cannot be committed (those durabilities only).
        """
        ...

    def add_policy(self, policy: CompiledPolicy, ts_ms: int) -> None:
        """Keep the policy's source text, once per version id."""
        ...

    async def add_feedback(self, labels: Sequence[tuple[str, str]], ts_ms: int) -> list[str]:
        """Store (decision_id, label) pairs; return the ids that match no recorded decision."""
        ...

    def healthy(self) -> bool: ...

    def close(self) -> None: ...


class NullAuditStore:
    """Auditing off: nothing is written, and nothing can be asked."""

    durability: Durability = "async"
    deciding = 0

    async def append(self, records: Sequence[AuditRecord]) -> None:
        return None

    def add_policy(self, policy: CompiledPolicy, ts_ms: int) -> None:
        return None

    async def add_feedback(self, labels: Sequence[tuple[str, str]], ts_ms: int) -> list[str]:
        raise AuditUnavailable("auditing is off: feedback is kept in the audit log (serve without --no-audit)")

    def healthy(self) -> bool:
        return True

    def close(self) -> None:
        return None
