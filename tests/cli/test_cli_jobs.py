"""``tideflow jobs ...`` and ``tideflow conductor``, run for real in subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("rich")

import tideflow
from tideflow import jobs

FLOWS = """
import tideflow


def double(n):
    return n * 2


def make(scale, name="doubling"):
    task = tideflow.FunctorTask(double, name="double", provides="doubled")
    return tideflow.LinearFlow(f"{name}-{scale}").add(task)
"""


def cmd(cwd: Path, *args: str, board: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TIDEFLOW_DB", "TIDEFLOW_BOARD")}
    env["COLUMNS"] = "200"
    if board is not None:
        env["TIDEFLOW_BOARD"] = board
    return subprocess.run(
        [sys.executable, "-m", "tideflow.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def mistake(done: subprocess.CompletedProcess[str], says: str) -> None:
    """Exit 2, one line on stderr saying ``says``, no traceback."""
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("tideflow: error: ")
    assert says in lines[0]


@pytest.fixture
def here(tmp_path: Path) -> Path:
    (tmp_path / "cli_jobs_flows.py").write_text(textwrap.dedent(FLOWS))
    return tmp_path


@pytest.fixture
def board_url(here: Path) -> str:
    return f"sqlite:///{here / 'jobs.db'}"


def post(here: Path, board_url: str, name: str, *extra: str) -> dict[str, Any]:
    done = cmd(
        here,
        "jobs",
        "post",
        name,
        "cli_jobs_flows:make",
        "--allow",
        "cli_jobs_flows",
        "--json",
        *extra,
        board=board_url,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_post_list_show_and_trash(here: Path, board_url: str) -> None:
    first = post(here, board_url, "one", "--arg", "3", "--store", "n=21", "--priority", "5")
    assert (first["name"], first["args"], first["store"], first["priority"]) == (
        "one",
        [3],
        {"n": 21},
        5,
    )
    second = post(here, board_url, "two", "--arg", "4", "--kwarg", 'name="x"', "--store", "n=1")
    assert second["kwargs"] == {"name": "x"}
    listed = json.loads(cmd(here, "jobs", "list", "--json", board=board_url).stdout)
    assert [j["uuid"] for j in listed] == [first["uuid"], second["uuid"]]  # priority first
    table = cmd(here, "jobs", "list", "--board", board_url)
    assert table.returncode == 0, table.stderr
    assert first["uuid"][:8] in table.stdout
    assert "UNCLAIMED" in table.stdout
    shown = cmd(here, "jobs", "show", second["uuid"][:8], "--json", board=board_url)
    assert json.loads(shown.stdout) == second
    plain = cmd(here, "jobs", "show", second["uuid"], board=board_url)
    assert "cli_jobs_flows:make" in plain.stdout
    trashed = cmd(here, "jobs", "trash", second["uuid"], board=board_url)
    assert trashed.returncode == 0, trashed.stderr
    assert f"trashed job {second['uuid']} (two)" in trashed.stdout
    opened = jobs.connect(board_url)
    try:
        assert opened.get(second["uuid"]).state is jobs.JobState.TRASHED
    finally:
        opened.close()
    listed = json.loads(cmd(here, "jobs", "list", "--json", board=board_url).stdout)
    assert [j["uuid"] for j in listed] == [first["uuid"]]


def test_the_conductor_command_runs_posted_jobs_and_records_them(here: Path, board_url: str):
    posted = [
        post(here, board_url, f"d{n}", "--arg", str(n), "--store", f"n={n * 10}") for n in (1, 2, 3)
    ]
    store_url = f"sqlite:///{here / 'runs.db'}"
    done = cmd(
        here,
        "conductor",
        "--store",
        store_url,
        "--allow",
        "cli_jobs_flows",
        "--workers",
        "2",
        "--pool",
        "threads",
        "--until-idle",
        board=board_url,
    )
    assert done.returncode == 0, done.stderr
    assert "3 jobs dispatched, 3 consumed" in done.stderr
    assert "Traceback" not in done.stderr
    assert json.loads(cmd(here, "jobs", "list", "--json", board=board_url).stdout) == []
    store = tideflow.connect(store_url)
    try:
        with store.get_connection() as conn:
            for job, n in zip(posted, (1, 2, 3), strict=True):
                record = conn.get_flow_details(job["uuid"])
                assert record.state is tideflow.FlowState.SUCCESS
                assert record.name == f"doubling-{n}"
                assert {d.name: d.results for d in record} == {"double": n * 20}
    finally:
        store.close()


def test_the_conductor_command_claims_ahead_as_told(here: Path, board_url: str) -> None:
    for n in (1, 2, 3):
        post(here, board_url, f"a{n}", "--arg", str(n), "--store", f"n={n}")
    store_url = f"sqlite:///{here / 'runs.db'}"
    args = ("--store", store_url, "--allow", "cli_jobs_flows", "--until-idle")
    done = cmd(here, "conductor", *args, "--claim-ahead", "1", board=board_url)
    assert done.returncode == 0, done.stderr
    assert "3 jobs dispatched, 3 consumed" in done.stderr
    assert json.loads(cmd(here, "jobs", "list", "--json", board=board_url).stdout) == []


def test_the_conductor_records_in_the_default_store_that_tideflow_show_reads(
    here: Path, board_url: str
) -> None:
    job = post(here, board_url, "default", "--arg", "1", "--store", "n=5")
    done = cmd(here, "conductor", "--allow", "cli_jobs_flows", "--max-jobs", "1", board=board_url)
    assert done.returncode == 0, done.stderr
    assert (here / ".tideflow" / "runs.db").is_file()
    shown = cmd(here, "show", job["uuid"], "--json")
    assert shown.returncode == 0, shown.stderr
    run = json.loads(shown.stdout)
    assert (run["run"], run["flow"], run["state"]) == (job["uuid"], "doubling-1", "SUCCESS")
    assert [(a["name"], a["result"]) for a in run["atoms"]] == [("double", 10)]


def test_a_conductor_leaves_jobs_outside_its_allow_list_alone(here: Path, board_url: str):
    job = post(here, board_url, "elsewhere")
    store_url = f"sqlite:///{here / 'runs.db'}"
    done = cmd(
        here,
        "conductor",
        "--store",
        store_url,
        "--allow",
        "other_flows",
        "--until-idle",
        board=board_url,
    )
    assert done.returncode == 0, done.stderr
    assert "0 jobs dispatched" in done.stderr
    listed = json.loads(cmd(here, "jobs", "list", "--json", board=board_url).stdout)
    assert [(j["uuid"], j["state"], j["token"]) for j in listed] == [(job["uuid"], "UNCLAIMED", 0)]


def test_mistakes_are_one_line_and_exit_2(here: Path, board_url: str) -> None:
    mistake(cmd(here, "jobs", "list"), "no job board: pass --board URL")
    mistake(
        cmd(here, "jobs", "post", "x", "cli_jobs_flows:make", board=board_url),
        "tideflow jobs post needs --allow PREFIX",
    )
    mistake(
        cmd(here, "jobs", "post", "x", "os:system", "--allow", "cli_jobs_flows", board=board_url),
        "refuses the flow factory 'os:system'",
    )
    mistake(
        cmd(
            here,
            "jobs",
            "post",
            "x",
            "cli_jobs_flows:make",
            "--allow",
            "cli_jobs_flows",
            "--arg",
            "{",
            board=board_url,
        ),
        "--arg '{': not JSON",
    )
    mistake(cmd(here, "jobs", "show", "nope", board=board_url), "no job 'nope' on")
    mistake(cmd(here, "jobs", "trash", "nope", board=board_url), "no job 'nope' on")
    mistake(cmd(here, "jobs", "list", "--board", "ftp://x"), "no job board for 'ftp'")
    mistake(cmd(here, "conductor", board=board_url), "tideflow conductor needs --allow PREFIX")
    mistake(
        cmd(here, "conductor", "--allow", "x", "--pool", "processes", board=board_url),
        "give --workers",
    )
    mistake(cmd(here, "conductor", "--allow", "x", "--lease", "0", board=board_url), "--lease")
    mistake(
        cmd(
            here,
            "conductor",
            "--allow",
            "x",
            "--claim-ahead",
            "2",
            "--workers",
            "2",
            board=board_url,
        ),
        "--claim-ahead is for a conductor running one job at a time",
    )
    mistake(cmd(here, "conductor", "--allow", "x", "--claim-ahead", "0", board=board_url), "0")
    mistake(
        cmd(here, "conductor", "--allow", "x", "--store", "nosuch://x", board=board_url),
        "nosuch",
    )
    # a job a conductor holds cannot be trashed from the command line
    job = post(here, board_url, "held")
    opened = jobs.connect(board_url, allowed=("cli_jobs_flows",))
    try:
        opened.claim(job["uuid"], "someone", lease=60)
    finally:
        opened.close()
    mistake(cmd(here, "jobs", "trash", job["uuid"], board=board_url), "is claimed by 'someone'")
