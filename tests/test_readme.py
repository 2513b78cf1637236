"""The README tells the truth: its tour prints what it says, and CI runs its test command."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _block_after(heading: str, language: str, nth: int = 0) -> str:
    """The ``nth`` fenced block of ``language`` after ``heading``."""
    section = README[README.index(heading) :]
    blocks = re.findall(rf"```{language}\n(.*?)```", section, flags=re.DOTALL)
    return blocks[nth]


def test_the_tour_prints_what_the_readme_shows(tmp_path: Path) -> None:
    program = tmp_path / "tour.py"
    program.write_text(_block_after("## A short tour", "python"))
    done = subprocess.run(
        [sys.executable, str(program)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == _block_after("## A short tour", "text")


def test_ci_runs_the_readme_test_command() -> None:
    setup = _block_after("# tideflow", "sh")
    commands = [line.split("#")[0].strip() for line in setup.splitlines() if "pytest" in line]
    assert len(commands) == 1
    assert commands[0] in (ROOT / ".ci" / "run").read_text()


def test_the_readme_starts_from_a_fresh_virtual_environment() -> None:
    first = _block_after("# tideflow", "sh").splitlines()[0]
    assert first.startswith("python3 -m venv .venv && . .venv/bin/activate")
