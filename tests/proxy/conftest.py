"""Real servers on loopback for the proxy's integration tests; nothing is mocked.

- `ModelServer` instances, one per behaviour, run for the whole session; the fixture for
  a behaviour puts its server back into that behaviour and zeroes its request counter.
- `CannedServer` answers whatever a test scripts (status, body, streamed or not): the
  answers `ModelServer` cannot give (a huge streamed body, JSON nested too deep, ...).
- `closed_url`: a loopback port nobody listens on.
- `start_proxy`: the real app (`build_app`) under uvicorn (`ServerThread`), serving
  policies the tests write as YAML; a fresh app has fresh circuit breakers and metrics.
- `proxy`: one shared app per test module whose circuits never open (failures: 1000000).
- `mlserver`: MLServer serving a scikit-learn pipeline, started once in a subprocess.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from guardrails.app import build_app
from guardrails.demo.model import ModelServer, credit_probability, lifespan
from guardrails.policy.compile import CompiledPolicy
from guardrails.policy.load import load_policy_text
from guardrails.runner import ServerThread
from guardrails.server import ServerSettings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

NEVER_OPENS = 1_000_000  # breaker `failures` for policies whose circuit must stay closed
SLOW_DELAY_MS = 1000.0  # the slow model's delay; test policies time out at 100 ms
CREDIT_FEATURES = ("amount", "account_age_days", "income", "prior_defaults")
V2_PATH = "/v2/models/credit/infer"

# Inputs with a known answer from the demo credit model (P(bad) by `credit_probability`).
LOW_RISK = {"amount": 1200, "account_age_days": 800, "income": 52000, "country": "US"}
NEW_ACCOUNT_LARGE = {"amount": 60000, "account_age_days": 30, "income": 90000, "country": "GB"}
SANCTIONED = {"amount": 100, "account_age_days": 800, "income": 52000, "country": "KP"}
REPEAT_DEFAULTER = {"amount": 1200, "account_age_days": 800, "income": 52000, "country": "US", "prior_defaults": 2}


# ---------------------------------------------------------------- policies as YAML text


def credit_policy(
    name: str,
    url: str,
    *,
    protocol: str = "v2",
    timeout_ms: int = 1000,
    retries: int = 0,
    failures: int = NEVER_OPENS,
    reset_after_s: float = 10,
    on_invalid: str = "reject",
    max_response_bytes: int | None = None,
) -> str:
    """A credit-risk policy (the shipped one's inputs, thresholds and rules) over `url`."""
    upstream = [
        f"url: {url}",
        f"protocol: {protocol}",
        f"timeout_ms: {timeout_ms}",
        f"retries: {retries}",
        f"circuit_breaker: {{failures: {failures}, reset_after_s: {reset_after_s}}}",
    ]
    if protocol == "v2":
        upstream.append(f"tensor: {{name: x, datatype: FP64, features: [{', '.join(CREDIT_FEATURES)}]}}")
        upstream.append("output: predict_proba")
    if max_response_bytes is not None:
        upstream.append(f"max_response_bytes: {max_response_bytes}")
    upstream_text = "\n".join(f"  {line}" for line in upstream)
    return f"""\
policy: {name}
version: "test-1"
owner: tests@example.com
description: Credit decisions in the proxy tests.
upstream:
{upstream_text}
inputs:
  amount:           {{type: float, min: 0, max: 1000000}}
  account_age_days: {{type: int, min: 0}}
  income:           {{type: float, min: 0}}
  prior_defaults:   {{type: int, min: 0, default: 0}}
  country:          {{type: str, in: [US, CA, GB, DE, FR, KP]}}
  segment:          {{type: str, in: [standard, vip], default: standard}}
on_invalid: {on_invalid}
score: {{labels: [good, bad], positive: bad}}
thresholds:
  - {{when: score >= 0.85, outcome: decline, reason: HIGH_RISK}}
  - {{when: score >= 0.5 or confidence < 0.6, outcome: review, reason: UNCERTAIN}}
  - {{outcome: approve, reason: LOW_RISK}}
rules:
  - {{name: sanctioned-country, when: 'country in ["KP"]', outcome: decline, reason: SANCTIONED_COUNTRY, final: true}}
  - name: large-amount-new-account
    when: amount > 50000 and account_age_days < 90 and outcome == "approve"
    outcome: review
    reason: LARGE_AMOUNT_NEW_ACCOUNT
  - {{name: repeat-defaulter, when: prior_defaults >= 2, outcome: decline, reason: REPEAT_DEFAULTER, mode: shadow}}
outcomes: [approve, review, decline]
fallback: {{outcome: review, reason: MODEL_UNAVAILABLE}}
"""


def moderation_policy(name: str, url: str, *, timeout_ms: int = 1000, failures: int = NEVER_OPENS) -> str:
    """A json-protocol policy over the demo moderation model (`/v1/moderate`)."""
    return f"""\
policy: {name}
owner: tests@example.com
upstream:
  url: {url}
  protocol: json
  timeout_ms: {timeout_ms}
  circuit_breaker: {{failures: {failures}, reset_after_s: 10}}
  score_path: probabilities
inputs:
  text:                    {{type: str, max_length: 5000}}
  channel:                 {{type: str, in: [comment, post, direct_message, profile]}}
  author_account_age_days: {{type: int, min: 0}}
  prior_strikes:           {{type: int, min: 0, default: 0}}
  report_count:            {{type: int, min: 0, required: false}}
score: {{labels: [ok, spam, harassment, violence]}}
thresholds:
  - {{when: label != "ok" and confidence >= 0.9, outcome: block, reason: CONFIDENT_VIOLATION}}
  - {{when: label != "ok", outcome: escalate, reason: POSSIBLE_VIOLATION}}
  - {{outcome: allow, reason: CLEAN}}
rules:
  - {{name: mass-reported, when: report_count >= 10 and outcome == "allow", outcome: escalate, reason: MASS_REPORTED}}
outcomes: [allow, escalate, block]
fallback: {{outcome: escalate, reason: MODERATION_UNAVAILABLE}}
"""


def credit_bad_probability(instance: dict[str, Any]) -> float:
    """What the demo model answers as P(bad) for a credit input (defaults filled in)."""
    row = [float(instance.get(name, 0)) for name in CREDIT_FEATURES]
    return float(credit_probability(np.array([row], dtype=np.float64))[0])


# ---------------------------------------------------------------- upstream servers


@dataclass
class RunningModel:
    """A `ModelServer` on a loopback port, and the behaviour each test starts it in."""

    app: ModelServer
    server: ServerThread
    mode: str
    delay_ms: float = 2000.0
    constant: float = 0.5

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def requests(self) -> int:
        return self.app.requests

    def reset(self) -> RunningModel:
        self.app.mode, self.app.delay_ms, self.app.constant = self.mode, self.delay_ms, self.constant
        self.app.requests = 0
        return self


@dataclass(frozen=True)
class Canned:
    """One scripted answer; `chunk_size` streams the body in chunks, without a content-length."""

    status: int = 200
    body: bytes = b"{}"
    chunk_size: int | None = None


class CannedServer:
    """An ASGI upstream that gives the scripted answers in order, then repeats the last."""

    def __init__(self) -> None:
        self.script: list[Canned] = [Canned()]
        self.requests = 0

    def answer(self, *replies: Canned) -> None:
        self.script = list(replies)
        self.requests = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        while (await receive()).get("more_body"):
            pass
        reply = self.script[min(self.requests, len(self.script) - 1)]
        self.requests += 1
        headers = [(b"content-type", b"application/json")]
        if reply.chunk_size is None:
            headers.append((b"content-length", str(len(reply.body)).encode()))
            await send({"type": "http.response.start", "status": reply.status, "headers": headers})
            await send({"type": "http.response.body", "body": reply.body})
            return
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        for start in range(0, len(reply.body), reply.chunk_size):
            chunk = reply.body[start : start + reply.chunk_size]
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


@dataclass
class RunningCanned:
    app: CannedServer
    server: ServerThread

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def requests(self) -> int:
        return self.app.requests

    def answer(self, *replies: Canned) -> None:
        self.app.answer(*replies)


MODEL_BEHAVIOURS: dict[str, dict[str, Any]] = {
    "ok": {"mode": "ok"},
    "slow": {"mode": "slow", "delay_ms": SLOW_DELAY_MS},
    "error": {"mode": "error"},
    "unavailable": {"mode": "unavailable"},
    "garbage": {"mode": "garbage"},
    "wrong_shape": {"mode": "wrong_shape"},
    "out_of_range": {"mode": "constant", "constant": 1.5},
}


@pytest.fixture(scope="session")
def models() -> Iterator[dict[str, RunningModel]]:
    running: dict[str, RunningModel] = {}
    try:
        for name, behaviour in MODEL_BEHAVIOURS.items():
            app = ModelServer(**behaviour)
            running[name] = RunningModel(app, ServerThread(app).start(), **behaviour)
        yield running
    finally:
        for model in running.values():
            model.server.stop()


@pytest.fixture
def ok_model(models: dict[str, RunningModel]) -> RunningModel:
    return models["ok"].reset()


@pytest.fixture
def slow_model(models: dict[str, RunningModel]) -> RunningModel:
    return models["slow"].reset()


@pytest.fixture
def error_model(models: dict[str, RunningModel]) -> RunningModel:
    return models["error"].reset()


@pytest.fixture
def unavailable_model(models: dict[str, RunningModel]) -> RunningModel:
    return models["unavailable"].reset()


@pytest.fixture
def garbage_model(models: dict[str, RunningModel]) -> RunningModel:
    return models["garbage"].reset()


@pytest.fixture
def wrong_shape_model(models: dict[str, RunningModel]) -> RunningModel:
    return models["wrong_shape"].reset()


@pytest.fixture
def out_of_range_model(models: dict[str, RunningModel]) -> RunningModel:
    return models["out_of_range"].reset()


@pytest.fixture(scope="session")
def canned_server() -> Iterator[RunningCanned]:
    app = CannedServer()
    with ServerThread(app) as server:
        yield RunningCanned(app, server)


@pytest.fixture
def canned(canned_server: RunningCanned) -> RunningCanned:
    canned_server.answer(Canned())
    return canned_server


def free_port() -> int:
    """A loopback port that was free a moment ago (bound, noted, closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(scope="session")
def closed_url() -> str:
    """An upstream address where nothing listens: every connect is refused."""
    return f"http://127.0.0.1:{free_port()}{V2_PATH}"


# ---------------------------------------------------------------- the proxy


class MetricsSnapshot:
    """The samples of one GET /metrics, by name and labels."""

    def __init__(self, text: str) -> None:
        self.samples = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def value(self, name: str, **labels: str) -> float:
        """The sample's value; 0 for a series that does not exist yet."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)


class Proxy:
    """The real app on a loopback port, and an httpx client for it."""

    def __init__(
        self,
        policies: list[CompiledPolicy],
        settings: ServerSettings | None = None,
        urls: dict[str, str] | None = None,
    ) -> None:
        self.policies = {policy.name: policy for policy in policies}
        self.server = ServerThread(build_app(policies, settings, urls=urls)).start()
        self.url = self.server.url
        self.client = httpx.Client(base_url=self.url, timeout=10)

    def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        response = self.client.request(method, path, **options)
        assert "Traceback" not in response.text, response.text
        return response

    def decide(self, policy: str, body: Any = None, **options: Any) -> httpx.Response:
        if body is not None:
            options["json"] = body
        return self.request("POST", f"/v1/decide/{policy}", **options)

    def batch(self, policy: str, body: Any = None, **options: Any) -> httpx.Response:
        if body is not None:
            options["json"] = body
        return self.request("POST", f"/v1/decide/{policy}/batch", **options)

    def metrics(self) -> MetricsSnapshot:
        response = self.request("GET", "/metrics")
        assert response.status_code == 200
        return MetricsSnapshot(response.text)

    def circuit(self, policy: str) -> str:
        response = self.request("GET", f"/v1/policies/{policy}")
        assert response.status_code == 200
        circuit: str = response.json()["upstream"]["circuit"]
        return circuit

    def close(self) -> None:
        self.client.close()
        self.server.stop()


StartProxy = Callable[..., Proxy]


@pytest.fixture
def start_proxy() -> Iterator[StartProxy]:
    """Start a fresh app serving the policy YAML texts given; stopped after the test."""
    started: list[Proxy] = []

    def start(*texts: str, settings: ServerSettings | None = None, urls: dict[str, str] | None = None) -> Proxy:
        proxy = Proxy([load_policy_text(text) for text in texts], settings, urls)
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.close()


UNUSED_URL = "http://127.0.0.1:9/replaced-by-urls"  # `credit` gets its address from `urls`


@pytest.fixture(scope="module")
def proxy(models: dict[str, RunningModel], closed_url: str) -> Iterator[Proxy]:
    """One app per module over every upstream behaviour; its circuits never open."""

    def v2(name: str) -> str:
        return models[name].url + V2_PATH

    texts = [
        credit_policy("credit", UNUSED_URL),
        credit_policy("credit-mlflow", models["ok"].url + "/invocations", protocol="mlflow"),
        credit_policy("credit-fallback", v2("ok"), on_invalid="fallback"),
        credit_policy("credit-slow", v2("slow"), timeout_ms=100),
        credit_policy("credit-error", v2("error")),
        credit_policy("credit-unavailable", v2("unavailable")),
        credit_policy("credit-garbage", v2("garbage")),
        credit_policy("credit-wrong-shape", v2("wrong_shape")),
        credit_policy("credit-out-of-range", v2("out_of_range")),
        credit_policy("credit-closed", closed_url),
        credit_policy("credit-too-large", v2("ok"), max_response_bytes=10),
        moderation_policy("moderation", models["ok"].url + "/v1/moderate"),
    ]
    shared = Proxy([load_policy_text(text) for text in texts], urls={"credit": v2("ok")})
    yield shared
    shared.close()


# ---------------------------------------------------------------- MLServer


@dataclass
class MLServer:
    """`mlserver start` in a subprocess (its own process group), serving `model` as `credit`."""

    folder: Path
    model: Any
    http_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def log(self) -> Path:
        return self.folder / "mlserver.log"

    def start(self) -> None:
        executable = Path(sys.executable).parent / "mlserver"
        if not executable.exists():
            pytest.fail(f"MLServer is not installed: {executable} does not exist (pip install -e '.[dev]')")
        settings = {
            "host": "127.0.0.1",
            "http_port": self.http_port,
            "grpc_port": free_port(),
            "metrics_port": free_port(),
            "parallel_workers": 0,  # one process: quicker to start, nothing left behind
        }
        (self.folder / "settings.json").write_bytes(msgspec.json.encode(settings))
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLSERVER_")}
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [str(executable), "start", str(self.folder)],
                cwd=self.folder,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"MLServer exited with {self.process.returncode}:\n{self._log_tail()}")
            try:
                if httpx.get(f"{self.url}/v2/models/credit/ready", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        pytest.fail(f"MLServer was not ready within {timeout_s} s:\n{self._log_tail()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def _log_tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])


def fit_credit_model() -> Any:
    """A scikit-learn pipeline (scaler, logistic regression) on 4 generated credit features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(7)
    n = 600
    features = np.column_stack(
        [
            rng.uniform(100, 80_000, n),
            rng.integers(0, 3000, n),
            rng.uniform(10_000, 150_000, n),
            rng.integers(0, 4, n),
        ]
    ).astype(np.float64)
    labels = (rng.random(n) < credit_probability(features)).astype(int)
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(features, labels)


@pytest.fixture(scope="session")
def mlserver_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MLServer]:
    """MLServer, started (not yet ready): it takes seconds to start, so it starts early."""
    import joblib

    folder = tmp_path_factory.mktemp("mlserver")
    model_folder = folder / "credit"
    model_folder.mkdir()
    model = fit_credit_model()
    joblib.dump(model, model_folder / "model.joblib")
    model_settings = {
        "name": "credit",
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib", "version": "v1"},
    }
    (model_folder / "model-settings.json").write_bytes(msgspec.json.encode(model_settings))
    server = MLServer(folder, model)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session", autouse=True)
def _start_mlserver_early(request: pytest.FixtureRequest) -> None:
    """Start MLServer at the beginning of the session when a selected test needs it."""
    if any("mlserver" in getattr(item, "fixturenames", ()) for item in request.session.items):
        request.getfixturevalue("mlserver_process")


@pytest.fixture(scope="session")
def mlserver(mlserver_process: MLServer) -> MLServer:
    mlserver_process.wait_ready()
    return mlserver_process
