"""A release pipeline whose process is killed (SIGKILL) mid-run, then finished by another.

The first process runs the flow on a SQLite store and dies during "deploy", as a
machine losing power or an out-of-memory kill would end it: no cleanup, no except
clause. Another process opens the same store and resumes the run by its id: "build"
and "test" were recorded SUCCESS and do not run again; "deploy" was caught running,
so it runs again (at least once); the values of the whole run come back.

    python examples/crash_and_resume.py
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile

import tideflow


class Step(tideflow.Task):
    """One stage of the release; "deploy" kills its own process when CRASH is set."""

    def execute(self) -> str:
        print(f"  run {self.name}", flush=True)
        if self.name == "deploy" and os.environ.get("CRASH") == "1":
            os.kill(os.getpid(), signal.SIGKILL)  # dies here: nothing after runs
        return f"{self.name} done"


def make_release() -> tideflow.LinearFlow:
    """The flow; recorded by import path, so any process can rebuild it to resume."""
    return tideflow.LinearFlow("release").add(
        Step("build", provides="artifact"),
        Step("test", provides="report"),
        Step("deploy", provides="url"),
    )


def first_process(store: str) -> None:
    """Start the run and print its id; this process is killed during deploy."""
    engine = tideflow.load_from_factory(make_release, backend=store)
    print(engine.storage.flow_uuid, flush=True)
    engine.run()


def main() -> None:
    store = f"sqlite:///{tempfile.mkdtemp()}/runs.db"
    here = os.path.dirname(os.path.abspath(__file__))
    child = subprocess.run(
        [sys.executable, "-c", f"import crash_and_resume as m; m.first_process({store!r})"],
        cwd=here,
        env={**os.environ, "CRASH": "1", "PYTHONPATH": here},
        capture_output=True,
        text=True,
        check=False,
    )
    run_id, *lines = child.stdout.splitlines()
    print("first process:")
    print("\n".join(lines))
    print(f"  killed by signal {-child.returncode}")
    print("another process (this one) resumes the run:")
    values = tideflow.resume(run_id, store)
    print("values:", values)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
