"""What the README shows a newcomer works: its offline commands as written, and the demo.

The two quick-start commands install into a new virtualenv (CI runs the test one as it is);
here the commands after the install are run against this checkout.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def readme_commands(prefixes: tuple[str, ...]) -> list[str]:
    """`guardrails ...` command lines from the README's sh blocks (continuations joined)."""
    commands: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", README, flags=re.S):
        text = re.sub(r"\\\n\s*", " ", block)
        for line in text.splitlines():
            command = line.split("  #")[0].strip()
            if command.startswith(prefixes):
                commands.append(command)
    return commands


def test_the_quick_start_commands_are_there() -> None:
    assert "pip install -e . && guardrails demo" in README
    assert "pip install -e '.[dev]' && pytest" in README
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python -m pip install --quiet -e '.[dev]'" in ci and "python -m pytest" in ci


OFFLINE = readme_commands(("guardrails check", "guardrails test", "guardrails decide"))


def test_the_readme_shows_offline_commands() -> None:
    assert len(OFFLINE) == 3, OFFLINE


@pytest.mark.parametrize("command", OFFLINE)
def test_each_offline_command_runs_as_written(command: str) -> None:
    args = shlex.split(command)[1:]
    done = subprocess.run([sys.executable, "-m", "guardrails", *args], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()


def test_the_demo_runs_and_summarises() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "guardrails", "demo"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    for expected in ("normal traffic", "the model answers HTTP 500", "credit-risk:", "content-moderation:"):
        assert expected in out
    assert re.search(r"fallbacks\s+.*upstream_error: \d+", out)
    assert re.search(r"latency ms\s+guardrails p50\s+[\d.]+", out)
    assert "the hash chain verifies" in out
