"""The live view under a pseudo-terminal, Ctrl-C mid-run, then ``tideflow resume``."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pexpect = pytest.importorskip("pexpect")
pytest.importorskip("rich")

FLOWS = Path(__file__).resolve().parent / "flows"


def _wait_for(path: Path, line: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and line in path.read_text().splitlines():
            return
        time.sleep(0.05)
    raise AssertionError(f"{line!r} never appeared in {path}")


def test_live_view_ctrl_c_suspends_and_resume_finishes(tmp_path: Path) -> None:
    shutil.copy(FLOWS / "slow.py", tmp_path / "slow.py")
    ledger = tmp_path / "ledger.txt"
    env = {k: v for k, v in os.environ.items() if k != "TIDEFLOW_DB"}
    env["TERM"] = "xterm-256color"
    child = pexpect.spawn(
        sys.executable,
        ["-m", "tideflow.cli", "run", "slow.py", "--store", f"ledger={json.dumps(str(ledger))}"],
        cwd=str(tmp_path),
        env=env,
        encoding="utf-8",
        timeout=30,
        dimensions=(40, 160),
    )
    try:
        _wait_for(ledger, "slow:start")
        # the live view: done of total, the atom running now, elapsed time
        child.expect(r"1/3")
        child.expect(r"atoms done")
        child.expect(r"running: .*slow")
        child.sendintr()  # Ctrl-C while 'slow' runs
        child.expect(r"resume it with: tideflow resume ([0-9a-f-]{36})")
        run_id = child.match.group(1)
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 130
    # the running atom finished and was recorded; the last one never started
    assert ledger.read_text().splitlines() == ["first:start", "first", "slow:start", "slow"]

    shown = subprocess.run(
        [sys.executable, "-m", "tideflow.cli", "show", run_id[:8], "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    record = json.loads(shown.stdout)
    assert record["state"] == "SUSPENDED"
    assert [a["state"] for a in record["atoms"]] == ["SUCCESS", "SUCCESS", "PENDING"]

    resumed = subprocess.run(
        [sys.executable, "-m", "tideflow.cli", "resume", run_id[:8]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert re.search(r"run [0-9a-f-]{36} SUCCESS", resumed.stdout)
    # nothing recorded SUCCESS ran again
    assert ledger.read_text().splitlines() == [
        "first:start",
        "first",
        "slow:start",
        "slow",
        "last:start",
        "last",
    ]
    again = subprocess.run(
        [sys.executable, "-m", "tideflow.cli", "show", run_id, "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    atoms = json.loads(again.stdout)["atoms"]
    assert [(a["state"], a["attempts"]) for a in atoms] == [("SUCCESS", 1)] * 3
