"""Helpers of the audit durability tests: a `guardrails serve` subprocess, and the audit file read with sqlite3.

- `Serve`: `python -m guardrails serve --port 0 ...` in its own session (so `kill -9` of the
  group takes all of it); the url comes from the line it prints.
- `app_server`: the same app in this process (`build_app` under uvicorn in a thread), for a
  store built with options `serve` has no flag for.
- `write_lock`: another connection holding the audit file's write lock.
- `chain_verdict`: the hash chain of an audit file, verified as `guardrails audit verify` does;
  `cli_verify` runs that command.
"""

from __future__ import annotations

import os
import selectors
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from guardrails.app import build_app
from guardrails.audit.chain import Verdict, verify_rows
from guardrails.audit.sqlite import BUSY_TIMEOUT_S, SQLiteAuditStore, anchor_of, chain_rows
from guardrails.audit.store import Durability
from guardrails.policy.load import load_policy_file
from guardrails.runner import ServerThread
from guardrails.server import ServerSettings

ROOT = Path(__file__).resolve().parent.parent.parent
POLICIES = ROOT / "policies"
AUDIT_KEY = "audit-durability-test-key"
DROPPED_FIELD = "national_id"
# A policy's `inputs:` line for a field the audit log must never hold.
DROP_LINE = f"  {DROPPED_FIELD}: {{type: str, max_length: 20, required: false, audit: drop}}\n"
POLICY = "credit-risk"
VALID = {"amount": 1200, "account_age_days": 800, "income": 52000, "country": "US"}
INVALID = {"amount": -5, "account_age_days": 800, "income": 52000, "country": "XX"}


def credit_policy_text(model_url: str) -> str:
    """policies/credit-risk.yaml in front of `model_url`, with a dropped field added and no drift monitor.

    The monitor's reference profiles every input, so it would not fit the added field; drift
    is not what these tests are about.
    """
    text = without_section((POLICIES / "credit-risk.yaml").read_text(), "monitor")
    text = text.replace("http://127.0.0.1:8081", model_url).replace("timeout_ms: 300", "timeout_ms: 5000")
    marker = "  email:"
    start = text.index(marker)
    end = text.index("\n", start) + 1
    return text[:end] + DROP_LINE + text[end:]


def without_section(text: str, key: str) -> str:
    """YAML text without the top-level `key:` and everything indented under it."""
    kept: list[str] = []
    inside = False
    for line in text.splitlines(keepends=True):
        if line.startswith(f"{key}:"):
            inside = True
        elif inside and line.strip() and not line[0].isspace():
            inside = False
        if not inside:
            kept.append(line)
    return "".join(kept)


class Serve:
    """One `guardrails serve` process; `url` is known once `start` returns."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.args = args
        self.env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, timeout_s: float = 30.0) -> Serve:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "guardrails", "serve", "--port", "0", *self.args],
                cwd=ROOT,
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,
            )
        line = self._first_line(timeout_s)
        self.url = line.split(" on ", 1)[1].split(";", 1)[0]
        self._wait_live(timeout_s)
        return self

    def run_to_exit(self, timeout_s: float = 30.0) -> tuple[int, str]:
        """Start and wait for the process to exit by itself: its exit code and stderr."""
        completed = subprocess.run(
            [sys.executable, "-m", "guardrails", "serve", "--port", "0", *self.args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        return completed.returncode, completed.stderr

    def _first_line(self, timeout_s: float) -> str:
        assert self.process is not None and self.process.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self.process.stdout, selectors.EVENT_READ)
        ready = selector.select(timeout_s)
        selector.close()
        line = self.process.stdout.readline().decode() if ready else ""
        if "guardrails serving" not in line:
            self.kill()
            pytest.fail(f"serve did not start ({line!r}):\n{self.log_tail()}")
        return line

    def _wait_live(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health/live", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.kill()
        pytest.fail(f"serve was not live within {timeout_s} s:\n{self.log_tail()}")

    def kill(self) -> None:
        """`kill -9` the server (its whole process group)."""
        self._signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(10)

    def terminate(self, timeout_s: float = 30.0) -> int:
        """SIGTERM, as a supervisor stops a server; its exit code."""
        assert self.process is not None
        self._signal(signal.SIGTERM)
        return self.process.wait(timeout_s)

    def _signal(self, sig: signal.Signals) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, sig)

    def close(self) -> None:
        if self.process is not None:
            self.kill()
            if self.process.stdout is not None:
                self.process.stdout.close()

    def log_tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])


ServeFactory = Callable[..., Serve]


@contextmanager
def app_server(
    audit: Path, policies: Path, durability: Durability = "sync", busy_timeout_s: float = BUSY_TIMEOUT_S
) -> Iterator[tuple[ServerThread, SQLiteAuditStore]]:
    """The app `serve` runs, over the policy in `policies`, with a store made here."""
    store = SQLiteAuditStore(audit, durability, busy_timeout_s=busy_timeout_s)
    try:
        policy = load_policy_file(policies / "credit-risk.yaml")
        settings = ServerSettings(audit_key=AUDIT_KEY.encode(), reload_interval_s=None)
        with ServerThread(build_app([policy], settings, audit=store)) as server:
            yield server, store
    finally:
        store.close()


@contextmanager
def write_lock(path: Path) -> Iterator[sqlite3.Connection]:
    """Hold the audit file's write lock (as any other writer could) until the block ends."""
    connection = open_audit(path)
    try:
        connection.execute("BEGIN IMMEDIATE")
        yield connection
    finally:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        connection.close()


def open_audit(path: Path) -> sqlite3.Connection:
    """The audit file as anyone with sqlite3 would open it (recovering the WAL of a killed writer)."""
    return sqlite3.connect(path, isolation_level=None)


def chain_verdict(path: Path) -> Verdict:
    connection = open_audit(path)
    try:
        anchor_seq, anchor_hash = anchor_of(connection)
        return verify_rows(chain_rows(connection), anchor_seq, anchor_hash)
    finally:
        connection.close()


def cli_verify(path: Path) -> subprocess.CompletedProcess[str]:
    """`guardrails audit verify --audit PATH`, as an operator runs it."""
    argv = [sys.executable, "-m", "guardrails", "audit", "verify", "--audit", str(path)]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)


def stored_ids(path: Path) -> set[str]:
    connection = open_audit(path)
    try:
        return {row[0] for row in connection.execute("SELECT decision_id FROM decisions")}
    finally:
        connection.close()


def seqs(path: Path) -> list[int]:
    connection = open_audit(path)
    try:
        return [row[0] for row in connection.execute("SELECT seq FROM decisions ORDER BY seq")]
    finally:
        connection.close()


def decision_ids(response: httpx.Response) -> list[str]:
    """Every decision id an answer gave the caller: one for a decision or a 422, one per batch item."""
    body: dict[str, Any] = response.json()
    if "decisions" in body:
        return [item["decision_id"] for item in body["decisions"]]
    return [body["decision_id"]]


def decide(client: httpx.Client, url: str, body: dict[str, Any]) -> httpx.Response:
    return client.post(f"{url}/v1/decide/{POLICY}", json=body)


def ready(url: str) -> httpx.Response:
    return httpx.get(f"{url}/health/ready", timeout=5)
