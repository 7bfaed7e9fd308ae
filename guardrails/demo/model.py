"""A small model server for the demo, the tests and the benchmarks (numpy; v2 and json).

- `POST /v2/models/credit/infer` (Open Inference Protocol): a logistic default-risk model
  over the [n, 4] tensor (amount, account_age_days, income, prior_defaults); answers the
  `predict_proba` output, shape [n, 2] (good, bad).
- `POST /v1/moderate` (json): a content-moderation model; answers
  `{"probabilities": [ok, spam, harassment, violence]}`.
- `POST /invocations` (mlflow): the credit model over `dataframe_records`.
- `POST /admin/mode` with `{"mode": ...}` makes it misbehave on purpose: `ok`, `error`
  (HTTP 500), `unavailable` (HTTP 503), `slow` (answers after `delay_ms`), `garbage`
  (not JSON), `wrong_shape`, `constant` (the same score for everyone).

A bare ASGI app (no framework), so it is never the bottleneck of a benchmark.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import msgspec
import numpy as np

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MODES = ("ok", "error", "unavailable", "slow", "garbage", "wrong_shape", "constant")
MODERATION_LABELS = ("ok", "spam", "harassment", "violence")


def credit_probability(features: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """P(bad) for rows of (amount, account_age_days, income, prior_defaults)."""
    amount, age_days, income, prior_defaults = features.T
    burden = np.minimum(amount / (income + 1.0), 10.0)
    logits = -3.0 + 3.0 * burden - 0.001 * np.minimum(age_days, 2000.0) + 1.2 * prior_defaults
    probability: np.ndarray[Any, Any] = 1.0 / (1.0 + np.exp(-logits))
    return probability


def moderation_probabilities(item: dict[str, Any]) -> list[float]:
    """P(ok, spam, harassment, violence) from a few signals of a moderation request."""
    text = str(item.get("text") or "")
    links = text.count("http")
    shouting = sum(c.isupper() for c in text) / max(len(text), 1)
    strikes = float(item.get("prior_strikes") or 0)
    reports = float(item.get("report_count") or 0)
    age = min(float(item.get("author_account_age_days") or 0), 365.0)
    direct = 1.0 if item.get("channel") == "direct_message" else 0.0
    logits = np.array(
        [
            2.5 + age / 365 - 0.15 * strikes - 0.1 * reports,
            -1.0 + 0.8 * links + (1.0 if age < 7 else 0.0),
            -2.0 + 0.15 * reports + 0.5 * direct + 2.0 * shouting,
            -3.0 + 0.1 * strikes + 0.1 * reports,
        ]
    )
    exp = np.exp(logits - logits.max())
    return [round(float(p), 6) for p in exp / exp.sum()]


class ModelServer:
    """The ASGI app; `mode` and `delay_ms` can be changed while it runs."""

    def __init__(self, mode: str = "ok", delay_ms: float = 2000.0, constant: float = 0.5) -> None:
        self.mode = mode
        self.delay_ms = delay_ms
        self.constant = constant
        self.requests = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        body = await _read_body(receive)
        path, method = scope["path"], scope["method"]
        if method == "GET" and path in ("/v2/health/ready", "/v2/health/live", "/health"):
            await _respond(send, 200, b'{"ready":true}')
            return
        if method == "POST" and path == "/admin/mode":
            await _respond(send, *self._set_mode(body))
            return
        self.requests += 1
        if method != "POST":
            await _respond(send, 405, b'{"error":"method not allowed"}')
            return
        await _respond(send, *await self._predict(path, body))

    def _set_mode(self, body: bytes) -> tuple[int, bytes]:
        try:
            change = msgspec.json.decode(body)
            mode = change["mode"]
            if mode not in MODES:
                raise ValueError(mode)
        except (msgspec.DecodeError, KeyError, TypeError, ValueError):
            return 422, msgspec.json.encode({"error": f"mode must be one of {', '.join(MODES)}"})
        self.mode = mode
        self.delay_ms = float(change.get("delay_ms", self.delay_ms))
        self.constant = float(change.get("constant", self.constant))
        return 200, msgspec.json.encode({"mode": self.mode})

    async def _predict(self, path: str, body: bytes) -> tuple[int, bytes]:
        mode = self.mode
        if mode == "slow":
            await asyncio.sleep(self.delay_ms / 1000)
        elif mode == "error":
            return 500, b'{"error":"model crashed"}'
        elif mode == "unavailable":
            return 503, b'{"error":"model overloaded"}'
        elif mode == "garbage":
            return 200, b"<html>upstream proxy error</html>"
        try:
            request = msgspec.json.decode(body)
            if path.startswith("/v2/models/"):
                return 200, self._v2(request, path.split("/")[3])
            if path == "/v1/moderate":
                return 200, self._moderate(request)
            if path == "/invocations":
                return 200, self._mlflow(request)
        except (msgspec.DecodeError, KeyError, TypeError, ValueError, IndexError) as exc:
            return 400, msgspec.json.encode({"error": f"bad request: {exc}"})
        return 404, b'{"error":"no such model"}'

    def _bad_probability(self, features: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        if self.mode == "constant":
            return np.full(len(features), self.constant)
        return credit_probability(features)

    def _v2(self, request: dict[str, Any], model: str) -> bytes:
        tensor = request["inputs"][0]
        rows, width = tensor["shape"]
        features = np.asarray(tensor["data"], dtype=np.float64).reshape(rows, width)
        bad = self._bad_probability(features)
        data = np.column_stack([1.0 - bad, bad]).ravel().tolist()
        shape = [rows, 2] if self.mode != "wrong_shape" else [rows, 3]
        output = {"name": "predict_proba", "shape": shape, "datatype": "FP64", "data": data}
        return msgspec.json.encode({"model_name": model, "outputs": [output]})

    def _moderate(self, request: dict[str, Any]) -> bytes:
        if self.mode == "wrong_shape":
            return b'{"probabilities": [0.5, 0.5]}'
        if self.mode == "constant":
            rest = (1.0 - self.constant) / 3
            return msgspec.json.encode({"probabilities": [self.constant, rest, rest, rest]})
        return msgspec.json.encode({"probabilities": moderation_probabilities(request)})

    def _mlflow(self, request: dict[str, Any]) -> bytes:
        records = request["dataframe_records"]
        names = ("amount", "account_age_days", "income", "prior_defaults")
        features = np.array([[float(r.get(n) or 0) for n in names] for r in records], dtype=np.float64)
        bad = self._bad_probability(features.reshape(len(records), 4))
        predictions = [[1.0 - b, b] for b in bad.tolist()]
        if self.mode == "wrong_shape":
            predictions = predictions[:-1] or [[math.nan]]
        return msgspec.json.encode({"predictions": predictions})


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _respond(send: Send, status: int, body: bytes) -> None:
    content_type = b"application/json" if not body.startswith(b"<") else b"text/html"
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def lifespan(receive: Receive, send: Send) -> None:
    """Answer the ASGI lifespan protocol: nothing to start or stop (also used by the tests' canned server)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
