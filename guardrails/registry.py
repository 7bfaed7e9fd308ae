"""The live policies, and safe hot reload of the folder they come from.

A reload reads every policy file, compiles each changed one and runs its `tests:`; only a
file that loads and passes replaces the live version, and the whole set is swapped in one
assignment, so a request keeps the `LivePolicy` it started with. A file that fails is
refused: the last good version keeps serving and the policy is marked `stale` with the
error. A policy stops only when its file has been absent from the folder on two reloads
in a row (so an editor's delete-then-write never stops it). Polling the files' contents
(not timestamps or inotify) sees every way a file can change: edits, new files, editors
that write a temporary file and rename it, and the Kubernetes ConfigMap `..data` symlink
swap. Policies with `shadow_of:` are kept apart: they are decided beside their live
policy and never answered.

The edge: reads files and the clock; compiling and testing are the pure core's.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from guardrails.errors import PolicyError
from guardrails.live import LivePolicy, Served
from guardrails.monitor.window import Window
from guardrails.policy.cases import run_cases
from guardrails.policy.compile import CompiledPolicy
from guardrails.policy.load import load_policy_text, policy_files
from guardrails.upstream.caller import Upstream
from guardrails.upstream.http1 import Http1Transport
from guardrails.upstream.transport import Transport

log = logging.getLogger("guardrails.reload")


class PolicyVersion(msgspec.Struct, frozen=True):
    version_id: str
    version: str | None
    went_live: str


class PolicyState(msgspec.Struct, frozen=True, kw_only=True):
    """A policy's standing: `ok`, or `stale` when its file's latest edit was refused."""

    status: str = "ok"
    error: str | None = None
    file: str


class ReloadReport(msgspec.Struct, frozen=True, kw_only=True):
    added: list[str] = []
    updated: list[str] = []
    removed: list[str] = []
    unchanged: list[str] = []
    failed: list[str] = []  # "file: error" lines


@dataclass
class _FileState:
    digest: str
    policy: str | None  # the policy this file last defined successfully
    missing: int = 0


@dataclass
class PolicyRegistry:
    """What is served now (`served`), where it comes from, and the history of each policy."""

    folder: Path | None
    transport: Callable[[], Transport] = Http1Transport
    urls: Mapping[str, str] = field(default_factory=dict)
    on_new_version: Callable[[CompiledPolicy], None] = lambda policy: None
    served: Served = field(default_factory=lambda: Served({}, {}))
    states: dict[str, PolicyState] = field(default_factory=dict)
    versions: dict[str, list[PolicyVersion]] = field(default_factory=dict)
    retired: list[Upstream] = field(default_factory=list)
    _files: dict[Path, _FileState] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def of(cls, policies: Mapping[str, LivePolicy] | list[CompiledPolicy], **options: object) -> PolicyRegistry:
        """A registry with a fixed set of policies (no folder to watch)."""
        registry = cls(folder=None, **options)  # type: ignore[arg-type]
        if isinstance(policies, list):
            now = _now()
            registry._install({p.name: registry._live_policy(p, now, None) for p in policies}, now)
        else:
            registry._install(dict(policies), _now())
        return registry

    def reload(self) -> ReloadReport:
        """Read the folder and swap in every policy that changed and passes its tests."""
        if self.folder is None:
            return ReloadReport(unchanged=sorted(p.policy.name for p in self.served.all()))
        with self._lock:
            return self._reload(self.folder)

    def _reload(self, folder: Path) -> ReloadReport:
        now = _now()
        current = {p.policy.name: p for p in self.served.all()}
        candidates: dict[str, LivePolicy] = {}
        added: list[str] = []
        updated: list[str] = []
        failed: list[str] = []
        seen: set[Path] = set()
        for path in policy_files([folder]):
            seen.add(path)
            outcome = self._consider(path, current, now)
            if isinstance(outcome, str):
                failed.append(outcome)
                continue
            if outcome is None:
                continue
            name = outcome.policy.name
            (updated if name in current else added).append(name)
            candidates[name] = outcome
        removed = self._forget_missing(seen)
        result = {name: p for name, p in current.items() if name not in removed}
        result.update(candidates)
        for name in [*added, *updated]:
            self.states[name] = PolicyState(file=result[name].policy.file)
        self._install(result, now)
        unchanged = sorted(set(result) - set(added) - set(updated))
        report = ReloadReport(added=added, updated=updated, removed=sorted(removed), unchanged=unchanged, failed=failed)
        if added or updated or removed or failed:
            log.info("policies reloaded", extra={"report": msgspec.to_builtins(report)})
        return report

    def _consider(self, path: Path, current: Mapping[str, LivePolicy], now: str) -> LivePolicy | str | None:
        """The new LivePolicy from `path`, None if it did not change, or why it was refused."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            return self._refuse(path, f"{path}: cannot read: {exc}")
        digest = hashlib.sha256(data).hexdigest()
        known = self._files.get(path)
        if known is not None and known.digest == digest:
            known.missing = 0
            return None
        try:
            policy = load_policy_text(data.decode("utf-8"), str(path))
        except (PolicyError, UnicodeDecodeError) as exc:
            return self._refuse(path, str(exc), digest)
        failures = [f"{r.name}: {'; '.join(r.mismatches)}" for r in run_cases(policy) if not r.passed]
        if failures:
            return self._refuse(path, f"{path}: tests failed: " + " | ".join(failures), digest)
        if self._defined_elsewhere(policy.name, path):
            return self._refuse(path, f"{path}: policy `{policy.name}` is already defined in another file", digest)
        self._files[path] = _FileState(digest, policy.name)
        old = current.get(policy.name)
        if old is not None and old.policy.version_id == policy.version_id:
            self.states[policy.name] = PolicyState(file=str(path))  # back to what is live: not stale
            return None
        return self._live_policy(policy, now, old)

    def _refuse(self, path: Path, error: str, digest: str | None = None) -> str:
        known = self._files.get(path)
        if known is not None:
            if digest is not None:
                known.digest = digest  # do not retry the same broken content every poll
            if known.policy is not None:
                self.states[known.policy] = PolicyState(status="stale", error=error, file=str(path))
        elif digest is not None:
            self._files[path] = _FileState(digest, None)
        log.warning("policy refused", extra={"file": str(path), "error": error})
        return error

    def _defined_elsewhere(self, name: str, path: Path) -> bool:
        return any(state.policy == name and other != path for other, state in self._files.items())

    def _forget_missing(self, seen: set[Path]) -> set[str]:
        removed: set[str] = set()
        for path in list(self._files):
            if path in seen:
                continue
            state = self._files[path]
            state.missing += 1
            if state.missing >= 2:
                del self._files[path]
                if state.policy is not None:
                    removed.add(state.policy)
                    self.states.pop(state.policy, None)
        return removed

    def _live_policy(self, policy: CompiledPolicy, now: str, old: LivePolicy | None) -> LivePolicy:
        spec = policy.upstream
        if policy.name in self.urls:
            spec = msgspec.structs.replace(spec, url=self.urls[policy.name])
        if old is not None and old.upstream.spec == spec:
            upstream = old.upstream  # same endpoint: keep its connection pool and circuit breaker
        else:
            upstream = Upstream(spec, self.transport())
            if old is not None:
                self.retired.append(old.upstream)
        self.on_new_version(policy)
        return LivePolicy(policy, upstream, now, _window(policy, old))

    def _install(self, policies: Mapping[str, LivePolicy], now: str) -> None:
        live = {name: p for name, p in policies.items() if p.policy.shadow_of is None}
        shadows: dict[str, list[LivePolicy]] = {}
        for name, p in policies.items():
            target = p.policy.shadow_of
            if target is None:
                continue
            if target not in live:
                self.states[name] = PolicyState(
                    status="stale", error=f"shadow_of: no live policy named `{target}`", file=p.policy.file
                )
            shadows.setdefault(target, []).append(p)
        for name, p in policies.items():
            self.states.setdefault(name, PolicyState(file=p.policy.file))
            history = self.versions.setdefault(name, [])
            if not history or history[-1].version_id != p.policy.version_id:
                history.append(PolicyVersion(p.policy.version_id, p.policy.version, p.loaded_at))
        # One assignment: a request reads either the old set or the new one, never a mix.
        self.served = Served(live, {name: tuple(group) for name, group in shadows.items()})


def _window(policy: CompiledPolicy, old: LivePolicy | None) -> Window | None:
    """The drift window: kept across a reload that leaves the monitor and its reference as they were."""
    config = policy.monitor
    if config is None:
        return None
    if old is not None and old.monitor is not None and old.policy.monitor is not None:
        same = old.policy.monitor.reference_hash == config.reference_hash and old.policy.monitor.spec == config.spec
        if same and old.policy.outcomes == policy.outcomes:
            return old.monitor
    return Window(config)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
