"""Load policy files: read the YAML, check its shape, compile it; report every problem at once.

This is the policy package's edge: it reads files. Everything it calls is pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from guardrails.errors import PolicyError, Problem
from guardrails.policy.compile import CompiledPolicy, compile_policy
from guardrails.policy.source import MAX_FILE_BYTES, Source, read_source
from guardrails.policy.spec import to_spec

POLICY_SUFFIXES = (".yaml", ".yml")


def load_policy_text(text: str, file: str = "<policy>") -> CompiledPolicy:
    """Compile one policy from its YAML text; raise PolicyError listing every problem."""
    source = read_source(text, file)
    spec, shape_problems = to_spec(source.data)
    if spec is None:
        raise PolicyError([source.problem(path, message, at_key=at_key) for path, message, at_key in shape_problems])
    compiled, problems = compile_policy(spec, source.data, text, file)
    if compiled is None:
        raise PolicyError([_locate(source, path, message, col) for path, message, col in problems])
    return compiled


def _locate(source: Source, path: tuple[str | int, ...], message: str, col: int) -> Problem:
    start = source.values.get(path)
    if not col or start is None:
        return source.problem(path, message)
    expr = _value_at(source.data, path).strip()
    wanted = sum(not c.isspace() for c in expr[:col])
    past_end = wanted >= sum(not c.isspace() for c in expr)  # e.g. a syntax error at the very end
    for n, (line, column) in enumerate(_nonblank_positions(source.text, start)):
        if n == wanted - past_end:
            return Problem(source.file, line, column + past_end, message)
    return source.problem(path, message)


def _value_at(data: Any, path: tuple[str | int, ...]) -> Any:
    for step in path:
        data = data[step]
    return data


def _nonblank_positions(text: str, start: tuple[int, int]) -> Iterator[tuple[int, int]]:
    """The file position of each non-blank character of the scalar that starts at `start`.

    A quoted, folded or multi-line scalar spreads its value over the file in its own way, but
    the value's non-blank characters stand in the same order in the file: an expression's
    column is found by counting those, not by adding to the scalar's column.
    """
    lines = text.splitlines()
    row, i = start[0] - 1, start[1] - 1
    style = lines[row][i : i + 1]
    if style in ("|", ">"):
        row, i = row + 1, 0  # a block scalar's value starts on the next line
    elif style in ("'", '"'):
        i += 1
    for number in range(row + 1, len(lines) + 1):
        line = lines[number - 1]
        while i < len(line):
            if (style == '"' and line[i] == "\\") or (style == "'" and line[i : i + 2] == "''"):
                i += 1  # an escape: two characters in the file, one in the value
            if i < len(line) and not line[i].isspace():
                yield number, i + 1
            i += 1
        i = 0


def load_policy_file(path: str | Path) -> CompiledPolicy:
    """Compile the policy in file `path`."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise PolicyError([Problem(str(path), 1, 1, f"file is {size} bytes; the limit is {MAX_FILE_BYTES}")])
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError([Problem(str(path), 1, 1, f"cannot read: {exc}")]) from None
    return load_policy_text(text, str(path))


def policy_files(paths: Iterable[str | Path]) -> list[Path]:
    """The policy files named by `paths`: files as given, folders searched for *.yaml and *.yml."""
    found: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if p.suffix in POLICY_SUFFIXES and p.is_file()))
        else:
            found.append(path)
    return found


def load_policies(paths: Iterable[str | Path]) -> tuple[list[CompiledPolicy], list[Problem]]:
    """Every policy under `paths`, and every problem of those that failed (names must be unique)."""
    policies: list[CompiledPolicy] = []
    problems: list[Problem] = []
    files = policy_files(paths)
    if not files:
        problems.append(Problem(", ".join(str(p) for p in paths), 1, 1, "no policy files (*.yaml, *.yml) found"))
    seen: dict[str, str] = {}
    for file in files:
        try:
            policy = load_policy_file(file)
        except PolicyError as exc:
            problems.extend(exc.problems)
            continue
        if policy.name in seen:
            problems.append(Problem(str(file), 1, 1, f"policy `{policy.name}` is also defined in {seen[policy.name]}"))
            continue
        seen[policy.name] = str(file)
        policies.append(policy)
    return policies, problems
