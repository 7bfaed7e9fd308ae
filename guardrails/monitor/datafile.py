"""Read a data file (CSV or JSON Lines) into columns of a policy's inputs, for `guardrails profile`.

The monitor package's edge: it reads files; everything else in the package is pure. Each
row is validated as live traffic is (the policy's `InputSchema`: types, ranges, allowed
values, defaults), so the reference describes what the policy would see. Columns the
policy does not declare are ignored. In a CSV file every cell is text: it is read as the
input's type, and an empty cell is a missing value. The first problem found raises
`DataError`, naming the file, the line and the column.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from guardrails.errors import DataError
from guardrails.policy.inputs import InputField, InputSchema

SUFFIXES = (".csv", ".jsonl")
_INTEGER = re.compile(r"[+-]?\d+")
_JSON = msgspec.json.Decoder()


@dataclass(frozen=True, slots=True)
class Sample:
    """Validated rows, column by column (None for a missing value), and the scores if asked for."""

    columns: dict[str, list[Any]]
    scores: list[float] | None
    rows: int


def read_sample(path: Path, schema: InputSchema, policy: str, score_column: str | None = None) -> Sample:
    """The rows of `path` (.csv or .jsonl) as the policy's validated inputs; raise DataError on any problem."""
    if path.suffix not in SUFFIXES:
        raise DataError(f"{path}: unknown file type `{path.suffix or '(none)'}`; use a .csv or .jsonl file")
    columns: dict[str, list[Any]] = {f.name: [] for f in schema.fields}
    scores: list[float] | None = None if score_column is None else []
    names = [f.name for f in schema.fields]
    try:
        if path.suffix == ".csv":
            rows: Iterable[Row] = _csv_rows(path, schema, policy, score_column)
        else:  # no header: a column is missing when no row has it
            rows = list(_jsonl_rows(path))
            if rows:
                _check_columns(path, policy, names, score_column, {key for _, raw in rows for key in raw})
        count = _validate(path, rows, schema, score_column, columns, scores)
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if count == 0:
        raise DataError(f"{path}: the file has no rows of data")
    return Sample(columns, scores, count)


Row = tuple[int, dict[str, Any]]  # (line number, raw values by column)
_ABSENT = object()


def _validate(
    path: Path,
    rows: Iterable[Row],
    schema: InputSchema,
    score_column: str | None,
    columns: dict[str, list[Any]],
    scores: list[float] | None,
) -> int:
    names = [f.name for f in schema.fields]
    count = 0
    for line, raw in rows:
        values = schema.from_mapping({name: raw.get(name) for name in names})
        if isinstance(values, list):
            raise DataError(f"{path}:{line}: " + "; ".join(error.message for error in values))
        for name in names:
            columns[name].append(values[name])
        if scores is not None and score_column is not None:
            scores.append(_score(path, line, score_column, raw.get(score_column, _ABSENT)))
        count += 1
    return count


def _check_columns(path: Path, policy: str, inputs: list[str], score_column: str | None, columns: set[str]) -> None:
    missing = [f"`{name}`" for name in inputs if name not in columns]
    if missing:
        what = "an input" if len(missing) == 1 else "inputs"
        known = ", ".join(sorted(columns)) or "(none)"
        raise DataError(f"{path}: no column {', '.join(missing)} ({what} of policy {policy}); the columns are: {known}")
    if score_column is not None and score_column not in columns:
        known = ", ".join(sorted(columns)) or "(none)"
        raise DataError(f"{path}: no score column `{score_column}`; the columns are: {known}")


def _score(path: Path, line: int, column: str, value: Any) -> float:
    where = f"{path}:{line}: the score `{column}`"
    if value is _ABSENT or value is None or value == "":
        raise DataError(f"{where} is missing")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise DataError(f"{where} must be a number, got {_quoted(value)}") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DataError(f"{where} must be a number, got {_json_word(value)}")
    if not math.isfinite(value):
        raise DataError(f"{where} must be a finite number, got {value}")
    return float(value)


def _csv_rows(path: Path, schema: InputSchema, policy: str, score_column: str | None) -> Iterator[Row]:
    with path.open(newline="", encoding="utf-8-sig") as file:
        reader = csv.reader(file)
        try:
            header = next(reader, None)
            if header is None:
                return
            doubled = sorted({name for name in header if header.count(name) > 1})
            if doubled:
                raise DataError(f"{path}:1: column {', '.join(f'`{n}`' for n in doubled)} appears twice")
            _check_columns(path, policy, [f.name for f in schema.fields], score_column, set(header))
            fields = [(i, f) for f in schema.fields for i, name in enumerate(header) if name == f.name]
            for record in reader:
                if not record:
                    continue  # a blank line
                if len(record) != len(header):
                    raise DataError(f"{path}:{reader.line_num}: {len(record)} fields, the header has {len(header)}")
                raw = {f.name: _cell(path, reader.line_num, f, record[i]) for i, f in fields}
                if score_column is not None:
                    raw[score_column] = record[header.index(score_column)]
                yield reader.line_num, raw
        except csv.Error as exc:
            raise DataError(f"{path}:{reader.line_num}: {exc}") from None


def _cell(path: Path, line: int, field: InputField, cell: str) -> Any:
    """A CSV cell as the input's type; an empty cell is a missing value."""
    if cell == "":
        return None
    if field.type == "str":
        return cell
    if field.type == "int" and _INTEGER.fullmatch(cell.strip()):
        return int(cell)
    if field.type == "float":
        try:
            return float(cell)
        except ValueError:
            pass
    if field.type == "bool" and cell.strip().lower() in ("true", "false", "1", "0"):
        return cell.strip().lower() in ("true", "1")
    word = {"int": "an integer", "float": "a number", "bool": "true or false"}[field.type]
    raise DataError(f"{path}:{line}: `{field.name}` must be {word}, got {_quoted(cell)}")


def _jsonl_rows(path: Path) -> Iterator[Row]:
    with path.open("rb") as file:
        for line, text in enumerate(file, start=1):
            if not text.strip():
                continue
            try:
                raw = _JSON.decode(text)
            except msgspec.DecodeError as exc:
                raise DataError(f"{path}:{line}: not valid JSON ({exc})") from None
            if not isinstance(raw, dict):
                raise DataError(f"{path}:{line}: each line must be a JSON object, got {_json_word(raw)}")
            yield line, raw


def _quoted(text: str) -> str:
    shown = text if len(text) <= 40 else text[:40] + "..."
    return msgspec.json.encode(shown).decode()


def _json_word(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a bool"
    if isinstance(value, str):
        return f"a string {_quoted(value)}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
