"""Load policy files: read the YAML, check its shape, compile it; report every problem at once.

This is the policy package's edge: it reads files (the policy, and the reference its
`monitor:` section names, relative to the policy's folder). Everything it calls is pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from guardrails.errors import PolicyError, Problem
from guardrails.monitor.reference import Reference, decode_reference
from guardrails.policy.compile import CompiledPolicy, compile_policy
from guardrails.policy.source import MAX_FILE_BYTES, Source, read_source
from guardrails.policy.spec import MonitorSpec, to_spec

POLICY_SUFFIXES = (".yaml", ".yml")
MAX_REFERENCE_BYTES = 4 * 1024 * 1024


def load_policy_text(
    text: str, file: str = "<policy>", folder: str | Path | None = None, *, monitor: bool = True
) -> CompiledPolicy:
    """Compile one policy from its YAML text; raise PolicyError listing every problem.

    The `monitor:` reference is read from `folder`, by default the folder of `file`. A `file`
    in angle brackets (`<policy>`, `<audit log>`) names no file: with no `folder` either, or
    with `monitor=False`, the `monitor:` section is checked but not loaded (`monitor` is None).
    """
    source = read_source(text, file)
    spec, shape_problems = to_spec(source.data)
    if spec is None:
        raise PolicyError([source.problem(path, message, at_key=at_key) for path, message, at_key in shape_problems])
    if folder is None and not file.startswith("<"):
        folder = Path(file).parent
    reference, reference_file, problem = None, "", None
    if spec.monitor is not None and folder is not None and monitor:
        reference, reference_file, problem = _read_reference(spec.monitor, Path(folder))
    compiled, problems = compile_policy(spec, source.data, text, file, reference, reference_file)
    if problem is not None:
        problems.append((("monitor", "reference"), problem, 0))
    if compiled is None or problems:
        raise PolicyError([_locate(source, path, message, col) for path, message, col in problems])
    return compiled


def _read_reference(monitor: MonitorSpec, folder: Path) -> tuple[Reference | None, str, str | None]:
    """(the reference, its path, None) or (None, its path, why it cannot be used)."""
    path = folder / monitor.reference
    name = f"reference `{monitor.reference}`"
    try:
        size = path.stat().st_size
        if size > MAX_REFERENCE_BYTES:
            return None, str(path), f"{name} is {size} bytes; the limit is {MAX_REFERENCE_BYTES}"
        data = path.read_bytes()
    except FileNotFoundError:
        return None, str(path), f"{name} not found in {folder}; build it with `guardrails profile`"
    except OSError as exc:
        return None, str(path), f"{name} cannot be read: {exc.strerror or exc}"
    reference = decode_reference(data)
    if isinstance(reference, str):
        return None, str(path), f"{name} is not usable: {reference}"
    return reference, str(path), None


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


def load_policy_file(path: str | Path, *, monitor: bool = True) -> CompiledPolicy:
    """Compile the policy in file `path` (with `monitor=False`, without reading its reference)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise PolicyError([Problem(str(path), 1, 1, f"file is {size} bytes; the limit is {MAX_FILE_BYTES}")])
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError([Problem(str(path), 1, 1, f"cannot read: {exc}")]) from None
    return load_policy_text(text, str(path), monitor=monitor)


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
