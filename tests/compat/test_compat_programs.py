"""TaskFlow-style programs print, on our package, what they printed on TaskFlow 6.5.

Each ``programs/<name>.py`` uses only TaskFlow's API. Its ``<name>.expected`` was
written by ``programs/_regenerate.py`` run under TaskFlow 6.5 itself, so these
tests hold the compat package to TaskFlow's observed behaviour, not to ours.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from compat_support import PROGRAMS, normalise, run_program

CASES = sorted(p for p in PROGRAMS.glob("*.py") if not p.name.startswith("_"))


def test_every_program_has_expected_output() -> None:
    assert CASES
    missing = [p.name for p in CASES if not p.with_suffix(".expected").exists()]
    assert not missing


@pytest.mark.parametrize("program", CASES, ids=lambda p: p.stem)
def test_program_output_matches_taskflow(program: Path) -> None:
    done = run_program(program)
    assert done.returncode == 0, done.stderr
    expected = program.with_suffix(".expected").read_text()
    assert normalise(done.stdout) == expected, done.stderr
