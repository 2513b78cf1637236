"""The ``tideflow`` command, run for real in a subprocess in a fresh directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("rich")

import tideflow
from tideflow.persistence.models import FlowDetail, LogBook

FLOWS = Path(__file__).resolve().parent / "flows"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TIDEFLOW_DB"}
    env["COLUMNS"] = "200"
    return env


def tideflow_cmd(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``tideflow ARGS`` in ``cwd`` (its runs go to cwd/.tideflow/runs.db)."""
    return subprocess.run(
        [sys.executable, "-m", "tideflow.cli", *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def as_json(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def here(tmp_path: Path) -> Path:
    """A directory holding copies of the test flows."""
    for path in FLOWS.glob("*.py"):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


# -- run ------------------------------------------------------------------------------------


def test_run_records_a_successful_run(here: Path) -> None:
    done = tideflow_cmd(here, "run", "ok_flow.py", "--store", "n=20")
    assert done.returncode == 0, done.stderr
    assert "doubling 20" in done.stdout  # the task's own print
    assert "double SUCCESS" in done.stdout  # plain lines: not a terminal
    assert "add-one" in done.stdout
    assert "41" in done.stdout
    assert (here / ".tideflow" / "runs.db").is_file()
    [run] = as_json(tideflow_cmd(here, "runs", "--json"))
    assert run["flow"] == "arith"
    assert run["state"] == "SUCCESS"
    assert run["source"] == {"file": str(here / "ok_flow.py"), "name": "make_flow"}
    shown = as_json(tideflow_cmd(here, "show", run["run"][:6], "--json"))
    atoms = {a["name"]: a for a in shown["atoms"]}
    assert atoms["double"]["result"] == 40
    assert atoms["add-one"]["result"] == 41
    for atom in atoms.values():
        assert atom["state"] == "SUCCESS"
        assert atom["attempts"] == 1
        assert 0 <= atom["duration"] < 10
    assert shown["started_at"] <= shown["ended_at"]


def test_a_failing_run_exits_1_naming_the_atom_its_exception_and_what_was_reverted(
    here: Path,
) -> None:
    done = tideflow_cmd(here, "run", "failing.py")
    assert done.returncode == 1, done.stderr
    out = done.stdout
    assert "failed: boom (execute) raised ValueError: no luck today" in out
    assert 'raise ValueError("no luck today")' in out  # its traceback
    assert "released seat-1" in out  # reserve's revert ran
    assert "reverted: boom, reserve" in out
    assert "REVERTED" in out
    assert "Traceback" not in done.stderr
    [run] = as_json(tideflow_cmd(here, "runs", "--json"))
    shown = as_json(tideflow_cmd(here, "show", run["run"], "--json"))
    boom = next(a for a in shown["atoms"] if a["name"] == "boom")
    assert boom["failure"]["message"] == "no luck today"
    assert boom["failure"]["type"].endswith("ValueError")
    assert "no luck today" in boom["failure"]["traceback"]
    text = tideflow_cmd(here, "show", run["run"][:5])
    assert text.returncode == 0
    assert "ValueError: no luck today" in text.stdout
    assert 'raise ValueError("no luck today")' in text.stdout


def test_run_json_is_one_event_per_line_and_ends_with_the_summary(here: Path) -> None:
    done = tideflow_cmd(here, "run", "ok_flow.py", "--store", "n=1", "--json")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert "doubling 1" in done.stderr  # the user's prints stay out of the JSON
    assert events[0]["event"] == "flow"
    assert events[0]["state"] == "RUNNING"
    states = [(e["atom"], e["state"]) for e in events if e["event"] == "atom"]
    assert states == [
        ("double", "RUNNING"),
        ("double", "SUCCESS"),
        ("add-one", "RUNNING"),
        ("add-one", "SUCCESS"),
    ]
    assert next(e for e in events if e.get("state") == "SUCCESS")["result"] == 2
    end = events[-1]
    assert end["event"] == "end"
    assert end["state"] == "SUCCESS"
    assert end["exit_code"] == 0
    assert {a["name"]: a["result"] for a in end["atoms"]} == {"double": 2, "add-one": 3}


def test_run_json_of_a_failure(here: Path) -> None:
    done = tideflow_cmd(here, "run", "failing.py", "--json")
    assert done.returncode == 1
    events = [json.loads(line) for line in done.stdout.splitlines()]
    failure = next(e for e in events if e.get("state") == "FAILURE")
    assert failure["atom"] == "boom"
    assert failure["failure"]["message"] == "no luck today"
    assert events[-1]["state"] == "REVERTED"
    assert events[-1]["exit_code"] == 1


def test_quiet_prints_only_the_outcome(here: Path) -> None:
    done = tideflow_cmd(here, "run", "ok_flow.py", "--store", "n=1", "--quiet")
    assert done.returncode == 0
    assert "RUNNING" not in done.stdout
    assert "SUCCESS" in done.stdout.splitlines()[-1]


def test_store_json_and_store_values_parsed_as_json(here: Path) -> None:
    (here / "values.json").write_text(json.dumps({"n": 5}))
    done = tideflow_cmd(here, "run", "ok_flow.py", "--store-json", "values.json", "--json")
    assert json.loads(done.stdout.splitlines()[-1])["atoms"][1]["result"] == 11
    override = tideflow_cmd(
        here, "run", "ok_flow.py", "--store-json", "values.json", "--store", "n=7"
    )
    assert override.returncode == 0
    assert "doubling 7" in override.stdout


def test_parallel_engine_and_module_attr(here: Path) -> None:
    done = tideflow_cmd(
        here, "run", "ok_flow:make_flow", "--store", "n=2", "--workers", "2", "--json"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["state"] == "SUCCESS"
    [run] = as_json(tideflow_cmd(here, "runs", "--json"))
    assert run["source"] == {"module": "ok_flow", "name": "make_flow"}


# -- runs -----------------------------------------------------------------------------------


def test_runs_filters_by_state_and_limits(here: Path) -> None:
    assert tideflow_cmd(here, "run", "ok_flow.py", "--store", "n=1").returncode == 0
    assert tideflow_cmd(here, "run", "failing.py").returncode == 1
    assert tideflow_cmd(here, "run", "ok_flow.py", "--store", "n=2").returncode == 0
    every = as_json(tideflow_cmd(here, "runs", "--json"))
    assert [r["state"] for r in every] == ["SUCCESS", "REVERTED", "SUCCESS"]  # newest first
    assert [
        r["flow"] for r in as_json(tideflow_cmd(here, "runs", "--state", "reverted", "--json"))
    ] == ["unlucky"]
    assert len(as_json(tideflow_cmd(here, "runs", "--limit", "2", "--json"))) == 2
    table = tideflow_cmd(here, "runs")
    assert table.returncode == 0
    for run in every:
        assert run["run"][:8] in table.stdout


def test_runs_before_any_run(here: Path) -> None:
    assert as_json(tideflow_cmd(here, "runs", "--json")) == []
    done = tideflow_cmd(here, "runs")
    assert done.returncode == 0
    assert "no runs recorded" in done.stdout
    assert not (here / ".tideflow").exists()  # reading never creates the store


# -- graph and validate --------------------------------------------------------------------


def test_graph_text_shows_inferred_links_deciders_and_retry_scopes(here: Path) -> None:
    done = tideflow_cmd(here, "graph", "graph_flow.py")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "fetch -> parse  [raw]" in out
    assert "fetch -> parse  inferred (raw)" in out
    assert "decider has_rows" in out
    assert "again (Times) guards flow load: publish" in out


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("dot", '"fetch" -> "parse" [label="raw"];'),
        ("mermaid", '-->|"raw"|'),
    ],
)
def test_graph_formats(here: Path, fmt: str, expected: str) -> None:
    done = tideflow_cmd(here, "graph", "graph_flow.py", "--format", fmt)
    assert done.returncode == 0, done.stderr
    assert expected in done.stdout
    assert "decider has_rows" in done.stdout
    if fmt == "dot":
        assert done.stdout.startswith('digraph "etl" {')
        assert done.stdout.rstrip().endswith("}")
    else:
        assert done.stdout.startswith("flowchart LR")


def test_validate(here: Path) -> None:
    done = tideflow_cmd(here, "validate", "ok_flow.py")
    assert done.returncode == 0
    assert "ok:" in done.stdout
    assert "needs from the store (--store): n" in done.stdout
    assert tideflow_cmd(here, "validate", "ok_flow.py", "--store", "n=1").returncode == 0
    missing = tideflow_cmd(here, "validate", "ok_flow.py", "--store", "m=1")
    assert missing.returncode == 1
    assert "invalid:" in missing.stdout
    assert "'n'" in missing.stdout
    assert not (here / ".tideflow").exists()  # nothing ran, nothing recorded


# -- user mistakes: one line, exit 2 ---------------------------------------------------------


def _records(
    here: Path, *uuids: str, state: str = "SUCCESS", meta: dict[str, Any] | None = None
) -> None:
    """Flow records with chosen ids, written straight into the default store."""
    (here / ".tideflow").mkdir(exist_ok=True)
    backend = tideflow.connect(f"sqlite:///{here / '.tideflow' / 'runs.db'}")
    book = LogBook("made by the test")
    for uuid in uuids:
        record = FlowDetail("handmade", uuid)
        record.state = tideflow.FlowState(state)
        record.meta = dict(meta or {})
        book.add(record)
    with backend.get_connection() as conn:
        conn.save_logbook(book)
    backend.close()


MISTAKES: dict[str, tuple[list[str], str]] = {
    "missing file": (["run", "nowhere.py"], "no such file"),
    "missing module": (["run", "no_such_module:flow"], "no such file or module"),
    "no flow": (["run", "no_flow.py"], "defines no flow"),
    "several flows": (["run", "two_flows.py"], "several flows (first, second)"),
    "no such name": (["run", "ok_flow.py:nope"], "no attribute 'nope'"),
    "bad store value": (["run", "ok_flow.py", "--store", "n"], "give NAME=VALUE"),
    "bad store json": (["run", "ok_flow.py", "--store-json", "no_flow.py"], "not JSON"),
    "missing store value": (["run", "ok_flow.py"], "--store NAME=VALUE"),
    "unknown executor": (["run", "ok_flow.py", "--store", "n=1", "--executor", "nope"], "nope"),
    "unknown run": (["show", "ffff"], "no run 'ffff'"),
    "ambiguous run": (["show", "abc"], "ambiguous"),
    "unknown run to resume": (["resume", "ffff"], "no run 'ffff'"),
    "finished run": (["resume", "abc1"], "has finished (SUCCESS)"),
    "foreign run": (["resume", "def0"], "not started by `tideflow run`"),
    "unreachable db": (["runs", "--db", "sqlite:///no_flow.py/runs.db"], "--db"),
    "no database server": (["runs", "--db", "postgresql://nobody@127.0.0.1:1/x"], "--db"),
    "foreign db": (["runs", "--db", "sqlite:///no_flow.py"], "not a SQLite database"),
    "unknown db scheme": (["runs", "--db", "nosuch://x"], "--db nosuch://x"),
    "bad state": (["runs", "--state", "DONE"], "not a flow state"),
    "bad limit": (["runs", "--limit", "0"], "must be 1 or more"),
    "no command": ([], "required"),
}


@pytest.mark.parametrize("case", sorted(MISTAKES))
def test_user_mistakes_are_one_line_and_exit_2(here: Path, case: str) -> None:
    _records(here, "abc1-0000", "abc2-0000")
    _records(here, "def0-0000", state="SUSPENDED")
    args, says = MISTAKES[case]
    done = tideflow_cmd(here, *args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("tideflow: error:")
    assert says in lines[0]


def test_an_unavailable_executor_is_one_line(here: Path) -> None:
    # whichever executors exist today, a name that cannot be used is refused the same way
    done = tideflow_cmd(here, "run", "ok_flow.py", "--store", "n=1", "--executor", "asyncio")
    assert done.returncode in (0, 2)
    if done.returncode == 2:
        assert len(done.stderr.splitlines()) == 1
        assert "asyncio" in done.stderr


def test_an_error_importing_the_file_names_the_line(here: Path) -> None:
    (here / "broken.py").write_text("import tideflow\n\nflow = undefined_name\n")
    done = tideflow_cmd(here, "run", "broken.py")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "tideflow: error: broken.py: importing it failed: line 3: NameError: "
        "name 'undefined_name' is not defined"
    )


def test_the_readme_first_command_runs_and_leaves_a_record(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    block = readme[readme.index("```sh\n") + 6 :].split("```", 1)[0]
    line = block.splitlines()[1].split("#")[0]
    command = line.split("&&", 1)[1].split()
    assert command[:2] == ["tideflow", "run"]
    shutil.copytree(root / "examples", tmp_path / "examples")
    done = tideflow_cmd(tmp_path, *command[1:])
    assert done.returncode == 0, done.stdout + done.stderr
    [run] = as_json(tideflow_cmd(tmp_path, "runs", "--json"))
    assert run["state"] == "SUCCESS"
    assert tideflow_cmd(tmp_path, "show", run["run"][:8]).returncode == 0
