"""Load policy files: read the YAML, check its shape, compile it; report every problem at once.

This is the policy package's edge: it reads files. Everything it calls is pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

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
    offset = col
    if col and _is_quoted(source, path):
        offset += 1
    return source.problem(path, message, col_offset=offset)


def _is_quoted(source: Source, path: tuple[str | int, ...]) -> bool:
    position = source.values.get(path)
    if position is None:
        return False
    line = source.text.splitlines()[position[0] - 1]
    return line[position[1] - 1 : position[1]] in ("'", '"')


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
