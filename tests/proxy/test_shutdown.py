"""`guardrails serve` in a subprocess: SIGTERM lets the request in flight finish, then exits 0."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import guardrails
from guardrails.demo.model import ModelServer
from guardrails.runner import ServerThread
from tests.proxy.conftest import LOW_RISK, V2_PATH, RunningModel, credit_bad_probability, credit_policy

MODEL_DELAY_MS = 1000.0


@pytest.fixture(scope="module")
def one_second_model() -> Iterator[RunningModel]:
    """A model that takes a second: long enough to send SIGTERM while a request waits for it."""
    model = ModelServer(mode="slow", delay_ms=MODEL_DELAY_MS)
    with ServerThread(model) as server:
        yield RunningModel(model, server, "slow", MODEL_DELAY_MS)


def read_line(process: subprocess.Popen[str], timeout_s: float) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout_s)
    if not ready:
        pytest.fail(f"`guardrails serve` printed nothing within {timeout_s} s")
    return process.stdout.readline()


@pytest.fixture
def served(tmp_path: Path, one_second_model: RunningModel) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`python -m guardrails serve` on a free port; the same package as this test imports."""
    folder = tmp_path / "policies"
    folder.mkdir()
    model_url = one_second_model.url + V2_PATH
    (folder / "credit.yaml").write_text(credit_policy("credit", model_url, timeout_ms=3000))
    env = {**os.environ, "PYTHONPATH": str(Path(guardrails.__file__).parent.parent)}
    command = [sys.executable, "-m", "guardrails", "serve", "--policies", str(folder), "--port", "0"]
    command += ["--log-level", "warning", "--audit", str(tmp_path / "audit.db")]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path
    )
    try:
        line = read_line(process, 30)
        match = re.search(r"on (http://127\.0\.0\.1:\d+)", line)
        assert match, f"unexpected first line: {line!r}"
        wait_ready(match.group(1), process)
        yield process, match.group(1)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()
        process.stderr.close()


def wait_ready(url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"`guardrails serve` exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    pytest.fail("`guardrails serve` was not ready within 30 s")


def test_sigterm_lets_the_request_in_flight_finish(
    served: tuple[subprocess.Popen[str], str], one_second_model: RunningModel
) -> None:
    process, url = served
    model = one_second_model.reset()
    answers: list[httpx.Response] = []
    request = threading.Thread(
        target=lambda: answers.append(httpx.post(f"{url}/v1/decide/credit", json=LOW_RISK, timeout=10))
    )
    request.start()
    deadline = time.monotonic() + 5
    while model.requests == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert model.requests == 1, "the request never reached the model"

    sent_at = time.monotonic()
    process.send_signal(signal.SIGTERM)
    request.join(10)
    code = process.wait(10)
    took_s = time.monotonic() - sent_at

    [response] = answers
    assert response.status_code == 200
    body = response.json()
    assert (body["outcome"], body["fallback"], body["model"]["status"]) == ("approve", None, "ok")
    assert body["score"] == credit_bad_probability(LOW_RISK)
    assert code == 0
    assert took_s < 5
    assert process.stderr is not None
    assert "Traceback" not in process.stderr.read()


def test_ctrl_c_shuts_down_cleanly(served: tuple[subprocess.Popen[str], str]) -> None:
    process, _ = served

    process.send_signal(signal.SIGINT)
    code = process.wait(10)

    assert code == 0
    assert process.stderr is not None
    stderr = process.stderr.read()
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
