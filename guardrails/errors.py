"""The exception tree: programming and configuration errors only.

Failures that belong to a request (invalid input, an upstream timeout, garbage from the
model) are values, not exceptions: see `guardrails.decide` and its causes.

    GuardrailsError
    ├── PolicyError        a policy file that cannot be loaded; lists every problem found
    ├── ExpressionError    one `when:` expression that is not in the language
    ├── AuditUnavailable   the audit store cannot write (full, unwritable, closed)
    ├── QueryError         an audit query asked badly (a filter, time, cursor or checkpoint)
    └── DataError          a data file that cannot be profiled (names the file, line and column)

Must not import anything from the rest of the package.
"""

from __future__ import annotations

from dataclasses import dataclass


class GuardrailsError(Exception):
    """Base class of every error guardrails raises on purpose."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a policy file, at a 1-based line and column."""

    file: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"


class PolicyError(GuardrailsError):
    """A policy file failed to load; `problems` holds every problem found, in file order."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.col))
        super().__init__("\n".join(str(p) for p in self.problems))


class ExpressionError(GuardrailsError):
    """An expression was rejected; `col` is the 0-based offset in the expression text."""

    def __init__(self, message: str, col: int = 0) -> None:
        self.message = message
        self.col = col
        super().__init__(message)


class AuditUnavailable(GuardrailsError):
    """The audit store could not commit a record; where callers wait for the commit (sync, commit) they get a 503."""


class QueryError(GuardrailsError):
    """An audit query was asked badly; the message names the option and the value."""


class DataError(GuardrailsError):
    """A data file given to `guardrails profile` cannot be read as the policy's inputs."""
