"""The crash suite's child processes: a fork server that runs or resumes one flow per child.

Started once per test session with ``subprocess`` (``python crash_driver.py serve``),
it imports tideflow, the flow factories and the store drivers, then waits for
commands on stdin, one JSON object a line. For each it forks a child that opens the
store afresh and runs the command; the test process kills that child with SIGKILL.
Forking from a process that has imported everything but opened nothing costs a few
milliseconds, where starting Python and importing SQLAlchemy costs 0.2-0.5 s: that
is what lets hundreds of kills fit in CI. The server never opens a store, starts a
thread or runs a task, so a child starts as clean as a new process.

Commands: ``{"op": "start" | "resume", "url": ..., "flow": kind, "ledger": path,
"seed": n, "engine": {...}, "book": [name, uuid], "run_id": uuid}``.

Lines on stdout (each written whole with one ``os.write``, so lines never mix):

- ``pid N`` (server): the child's process id, to kill;
- ``running RUN_ID`` (child): the flow record exists and the run (or resume) starts now;
- ``done JSON`` (child): the run returned (``{"error": null}``) or raised
  (``{"error": {"type", "names", "message"}}``);
- ``exit N CODE`` (server): the child ended (CODE -9 when killed).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import traceback
from typing import Any

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import crash_flows  # noqa: E402  # found through the path set just above

import tideflow  # noqa: E402
from tideflow.persistence import LogBook  # noqa: E402

_MAX_LINE = 3500  # below PIPE_BUF: one write is one unbroken line


def emit(line: str) -> None:
    """Write one line to stdout in a single write."""
    data = (line.replace("\n", " ")[:_MAX_LINE] + "\n").encode()
    os.write(1, data)


def describe_error(exc: BaseException) -> dict[str, Any]:
    """What the test needs of an exception: its type, the failures inside it, its text."""
    names: list[list[str]] = []
    if isinstance(exc, tideflow.WrappedFailure):
        names = [list(failure.exc_type_names) for failure in exc]
    return {
        "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "names": names,
        "message": str(exc)[:1500],
    }


def run_command(command: dict[str, Any]) -> dict[str, Any]:
    """Start or resume the run ``command`` names; report how it ended."""
    backend = tideflow.connect(command["url"])
    try:
        factory, _ = crash_flows.FLOWS[command["flow"]]
        options = dict(command["engine"])
        try:
            if command["op"] == "start":
                book_name, book_uuid = command["book"]
                engine = tideflow.load_from_factory(
                    factory,
                    factory_kwargs={"ledger": command["ledger"], "seed": command["seed"]},
                    backend=backend,
                    book=LogBook(book_name, book_uuid),
                    **options,
                )
                emit(f"running {engine.storage.flow_uuid}")
                engine.run()
            else:
                emit(f"running {command['run_id']}")
                tideflow.resume(command["run_id"], backend, **options)
        except Exception as exc:
            return {"error": describe_error(exc)}
        return {"error": None}
    finally:
        backend.close()


def _child(command: dict[str, Any]) -> None:
    code = 0
    try:
        emit("done " + json.dumps(run_command(command)))
    except BaseException:
        emit("crash " + json.dumps(traceback.format_exc()))
        code = 1
    finally:
        os._exit(code)


def serve() -> None:
    """Fork one child per command line on stdin; report its pid and its end."""
    # pay for the store modules and drivers once, here, not in every child
    for module in ("tideflow.persistence.sqlite", "tideflow.persistence.directory"):
        __import__(module)
    for module in ("tideflow.persistence.sql", "psycopg", "pymysql"):
        with contextlib.suppress(ImportError):
            __import__(module)
    emit("ready")
    for line in sys.stdin:
        if not line.strip():
            continue
        command = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(command)
        emit(f"pid {pid}")
        _, status = os.waitpid(pid, 0)
        emit(f"exit {pid} {os.waitstatus_to_exitcode(status)}")


if __name__ == "__main__":
    if sys.argv[1:] == ["serve"]:
        serve()
    else:
        sys.exit("usage: crash_driver.py serve")
