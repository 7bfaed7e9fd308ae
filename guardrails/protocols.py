"""The model-server protocols as pure data transforms: request bodies out, score rows in.

- `json`:   POST the validated input object; read the score at a dotted `score_path`.
- `v2`:     the Open Inference Protocol (KServe, MLServer, Triton): one [n, k] tensor of
            the declared features; the declared output tensor is read as n rows.
- `mlflow`: `/invocations` with `{"dataframe_records": [...]}`; rows from `predictions`.

Reading a response returns a list of rows (one per instance) or a message saying what is
wrong with it; the message becomes an `output_invalid` fallback, never an exception.

Pure: imports the stdlib and msgspec only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from guardrails.policy.spec import UpstreamSpec

Rows = list[Any]


def request_body(upstream: UpstreamSpec, instances: Sequence[Mapping[str, Any]]) -> bytes:
    """The request body for `instances` (validated inputs); `json` takes exactly one."""
    if upstream.protocol == "v2":
        assert upstream.tensor is not None  # compile checks it
        tensor = upstream.tensor
        data = [_feature(row[name]) for row in instances for name in tensor.features]
        body: dict[str, Any] = {
            "inputs": [
                {
                    "name": tensor.name,
                    "shape": [len(instances), len(tensor.features)],
                    "datatype": tensor.datatype,
                    "data": data,
                }
            ]
        }
        if upstream.output:
            body["outputs"] = [{"name": upstream.output}]
        return msgspec.json.encode(body)
    if upstream.protocol == "mlflow":
        return msgspec.json.encode({"dataframe_records": list(instances)})
    if len(instances) != 1:
        raise ValueError("the json protocol sends one instance per request")
    return msgspec.json.encode(instances[0])


def _feature(value: Any) -> Any:
    return float(value) if isinstance(value, bool) else value


def read_rows(upstream: UpstreamSpec, body: Any, count: int) -> Rows | str:
    """The `count` score rows in a decoded response body, or what is wrong with it."""
    if upstream.protocol == "v2":
        return _read_v2(upstream, body, count)
    if upstream.protocol == "mlflow":
        return _read_mlflow(body, count)
    return _read_json(upstream.score_path or "", body, count)


def decode_rows(upstream: UpstreamSpec, raw: bytes, count: int) -> Rows | str:
    """`read_rows` on raw response bytes; bytes that are not JSON are a problem, not an error."""
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        return f"response is not JSON: {exc}"
    except RecursionError:  # msgspec's own depth guard
        return "response is not JSON we can read: nested too deeply"
    return read_rows(upstream, body, count)


def _read_json(score_path: str, body: Any, count: int) -> Rows | str:
    value = body
    for step in score_path.split("."):
        if isinstance(value, dict) and step in value:
            value = value[step]
        elif isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        else:
            return f"response has no `{score_path}` (stopped at `{step}`)"
    return [value] if count == 1 else f"the json protocol answers one instance, {count} were sent"


def _read_mlflow(body: Any, count: int) -> Rows | str:
    predictions = body.get("predictions") if isinstance(body, dict) else body
    if not isinstance(predictions, list):
        return "response has no `predictions` list"
    if len(predictions) != count:
        return f"expected {count} predictions, got {len(predictions)}"
    return predictions


def _read_v2(upstream: UpstreamSpec, body: Any, count: int) -> Rows | str:
    outputs = body.get("outputs") if isinstance(body, dict) else None
    if not isinstance(outputs, list) or not outputs:
        return "response has no `outputs`"
    wanted = upstream.output
    tensor = next((o for o in outputs if isinstance(o, dict) and (wanted is None or o.get("name") == wanted)), None)
    if tensor is None:
        return f"response has no output tensor `{wanted}`"
    shape, data = tensor.get("shape"), tensor.get("data")
    if not (isinstance(shape, list) and shape and all(isinstance(d, int) and d >= 0 for d in shape)):
        return "output tensor has no valid `shape`"
    if not isinstance(data, list):
        return "output tensor has no `data` list"
    flat = _flatten(data)
    size = 1
    for dim in shape:
        size *= dim
    if len(flat) != size:
        return f"output tensor has {len(flat)} values for shape {shape}"
    if shape[0] != count:
        return f"expected {count} rows, the output tensor has {shape[0]}"
    width = size // count if count else 0
    if width == 1:
        return flat
    return [flat[i * width : (i + 1) * width] for i in range(count)]


def _flatten(data: list[Any]) -> list[Any]:
    # The protocol allows nested (row-major) data as well as flat; nesting is shallow here.
    if not any(isinstance(item, list) for item in data):
        return data
    flat: list[Any] = []
    stack: list[Any] = [iter(data)]
    while stack:
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
        elif isinstance(item, list):
            stack.append(iter(item))
        else:
            flat.append(item)
    return flat


_END = object()
