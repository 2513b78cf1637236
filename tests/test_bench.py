"""The benchmark runner's tiny mode runs end to end and writes its JSON; no time is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = {
    "floor",
    "import",
    "linear",
    "unordered",
    "graph",
    "revert",
    "retry",
    "memory",
    "unordered_threads",
    "parallel_sleep",
    "asyncio_sleep",
    "durable_sqlite",
}


@pytest.mark.slow
@pytest.mark.timeout(900)  # the first run creates TaskFlow's venv (pip install, about a minute)
def test_tiny_mode_prints_the_table_and_writes_json(tmp_path: Path) -> None:
    """Run ``python -m bench --tiny`` (TaskFlow's venv is created on first use)."""
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=850,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "TaskFlow/tideflow" in proc.stdout
    assert "targets" in proc.stdout
    data = json.loads(out.read_text())
    assert set(data["workloads"]) == WORKLOADS
    assert {"target", "value", "status", "note"} <= set(data["targets"][0])
    linear = data["workloads"]["linear"]["sizes"]["10"]
    assert linear["tideflow"]["status"] == "ok", linear["tideflow"]
    taskflow_ok = linear["taskflow"]["status"] == "ok"
    assert taskflow_ok or "WARNING: taskflow side unavailable" in proc.stdout, linear["taskflow"]
