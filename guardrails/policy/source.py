"""Read a policy file's YAML into plain data, remembering where every key and value stands.

Hostile-input safe: PyYAML's safe loader only (no Python tags), aliases refused (a few
hundred bytes of aliases expand to gigabytes), a size cap, a nesting cap checked before
recursing, and duplicate keys reported instead of silently overwritten.

Imports the stdlib and PyYAML only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from guardrails.errors import PolicyError, Problem

MAX_FILE_BYTES = 256 * 1024
MAX_NESTING = 32
_PLAIN_COLLECTION_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Source:
    """A loaded YAML document: `data`, and 1-based (line, col) of each value and mapping key."""

    file: str
    text: str
    data: Any
    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def problem(self, path: Path, message: str, *, at_key: bool = False, col_offset: int = 0) -> Problem:
        """A problem located at `path`, or at its nearest located parent."""
        table = self.keys if at_key else self.values
        probe = path
        while probe not in table and probe not in self.values and probe:
            probe = probe[:-1]
        line, col = table.get(probe) or self.values.get(probe, (1, 1))
        return Problem(self.file, line, col + col_offset, message)


class _RefusedInput(yaml.MarkedYAMLError):
    pass


class _SafeComposer(yaml.SafeLoader):
    """SafeLoader that refuses aliases and caps nesting while composing."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.nesting = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise _RefusedInput(problem="aliases (*name) are not allowed in policy files", problem_mark=mark)
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise _RefusedInput(problem=f"nested deeper than {MAX_NESTING} levels", problem_mark=mark)
        try:
            return super().compose_node(parent, index)
        finally:
            self.nesting -= 1


def read_source(text: str, file: str) -> Source:
    """Parse `text` (the contents of `file`); raise PolicyError with every problem found."""
    size = len(text.encode("utf-8", errors="replace"))
    if size > MAX_FILE_BYTES:
        raise PolicyError([Problem(file, 1, 1, f"file is {size} bytes; the limit is {MAX_FILE_BYTES}")])
    loader = _SafeComposer(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise PolicyError([Problem(file, 1, 1, "file is empty")])
        source = Source(file, text, None)
        problems: list[Problem] = []
        data = _build(loader, node, (), source, problems)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = " ".join(part for part in (exc.context, exc.problem) if part) or "invalid YAML"
        raise PolicyError([Problem(file, line, col, f"YAML: {message}")]) from None
    except yaml.YAMLError as exc:
        raise PolicyError([Problem(file, 1, 1, f"YAML: {exc}")]) from None
    finally:
        loader.dispose()
    if problems:
        raise PolicyError(problems)
    return Source(file, text, data, source.values, source.keys)


def _build(loader: yaml.SafeLoader, node: yaml.Node, path: Path, source: Source, problems: list[Problem]) -> Any:
    # Recursion is bounded: composing already refused nesting deeper than MAX_NESTING.
    source.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.CollectionNode) and node.tag not in _PLAIN_COLLECTION_TAGS:
        # A tagged collection (`!!python/object:...`) is the safe constructor's to refuse,
        # as it refuses a tagged scalar; walking it as a plain mapping would drop the tag.
        return loader.construct_object(node, deep=True)
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            where = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if not isinstance(key, str):
                problems.append(Problem(source.file, *where, f"keys must be strings, got {key!r}"))
                continue
            if key in result:
                problems.append(Problem(source.file, *where, f"duplicate key `{key}`"))
                continue
            source.keys[(*path, key)] = where
            result[key] = _build(loader, value_node, (*path, key), source, problems)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, (*path, i), source, problems) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)
