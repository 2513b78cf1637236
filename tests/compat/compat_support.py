"""Helpers for the compat tests: run a TaskFlow-style program and normalise its output."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import taskflow.task

PROGRAMS = Path(__file__).resolve().parent / "programs"

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# An engine's repr, tideflow's (<tideflow.Engine ...>) or TaskFlow's (<...Engine object at 0x..>).
_ENGINE = re.compile(r"<[^<>\n]*Engine[^<>\n]*>")
_ADDRESS = re.compile(r" at 0x[0-9a-f]+")


def normalise(text: str) -> str:
    """Replace what differs run to run: engine reprs, uuids, object addresses."""
    text = _ENGINE.sub("<ENGINE>", text)
    text = _UUID.sub("<UUID>", text)
    return _ADDRESS.sub(" at 0x...", text)


def run_program(path: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``path`` with this interpreter (so with the installed compat package)."""
    return subprocess.run(
        [sys.executable, str(path)],
        cwd=path.parent,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Seven(taskflow.task.Task):  # type: ignore[misc]
    """Returns 7; importable by name, so worker processes can load it."""

    def execute(self) -> int:
        return 7
