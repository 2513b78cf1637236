"""Kill runs with SIGKILL at random moments, resume them, and check the ledger against the records.

A *trial* runs one flow of :mod:`crash_flows` on one store. A child process starts
the run; the test kills it at a moment drawn from the trial's seed, reads the flow
record as the store committed it at that moment (through a store object opened
afresh), writes ``kill K`` into the ledger, and resumes the run in a new child,
which may be killed in turn (one to four kills per trial). The last resume runs to
the end, in a child or in this process (``tideflow.resume``). Then :func:`check`
compares what the tasks did (the ledger) with what the store said at each kill.

What "caught" means
-------------------

The engine commits once per scheduling round: the outcomes of a round (and the
atoms it started) are written in one transaction after they are in, before the
atoms that depend on them start. So between a task writing ``exec-end`` and the
round's commit, the ledger knows more than the store. At kill K, an atom is
*caught mid-execute* if its last ledger line before the kill is ``exec-start`` or
``exec-end`` while the record committed at that moment does not show the execute's
outcome (its state is PENDING or RUNNING, not SUCCESS, FAILURE or a revert state);
it is *caught mid-revert* if its last line is ``revert-start`` or ``revert-end``
while the record does not say REVERTED. An atom whose outcome was not committed yet
counts as caught, exactly like one killed inside its ``execute``.

What is checked
---------------

- Every run finishes: SUCCESS with the values an uninterrupted run gives, or, for
  the failing flow, REVERTED, raising its Boom (as itself, or as a WrappedFailure
  naming it when the failure was read back from the record).
- The record never runs ahead of the ledger: at each kill, an atom recorded SUCCESS
  (or FAILURE) had its last line ``exec-end`` (``... failed``), one recorded
  REVERTED had ``revert-end``, and so on state by state (:data:`RECORDED_AFTER`).
- No atom recorded as having finished a step at a kill repeats that step after it:
  an atom recorded SUCCESS or FAILURE executes again only after a revert, one
  recorded REVERTED is not reverted again. Only a caught atom repeats its step.
- A caught atom is not forgotten: one caught mid-execute runs again (or, in a run
  that reverts, is reverted), one caught mid-revert is reverted again.
- In one process an atom's lines follow ``exec-start, exec-end, revert-start,
  revert-end`` (and ``exec-start`` again after a revert only under a retry
  controller); across a kill only the repeats of caught atoms are added.
- In the failing flow every atom that ran ends reverted (its last line
  ``revert-end``), so each was reverted once, or again only if caught mid-revert.
- Retries keep their attempt count across kills: an attempt never starts with a
  number lower than the controller's recorded history + 1, attempt numbers never go
  back, and the finished controller's history holds exactly the failed attempts.
- Resuming a finished run runs nothing and leaves its state as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import selectors
import signal
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import crash_flows

import tideflow
from tideflow.persistence.models import new_uuid

HERE = Path(__file__).resolve().parent
DRIVER = HERE / "crash_driver.py"

#: How long a child may take to say it runs, to end, or to end once killed, before
#: the harness kills it and reports it hung (seconds).
CHILD_TIMEOUT = 30.0

#: Recorded state at a kill -> the atom's last ledger event before that kill that
#: agrees with it (None: no event yet; "exec-end!": the end of an execute that raised).
#: A step whose outcome is not committed yet leaves the record one step behind the
#: ledger (a caught atom); the record must never be ahead of it.
RECORDED_AFTER: dict[str | None, frozenset[str | None]] = {
    None: frozenset({None}),  # no atom record committed yet: nothing can have run
    "PENDING": frozenset({None, "exec-start", "exec-end", "exec-end!", "revert-end"}),
    "RUNNING": frozenset({None, "exec-start", "exec-end", "exec-end!", "revert-end"}),
    "SUCCESS": frozenset({"exec-end", "revert-start", "revert-end"}),
    "FAILURE": frozenset({"exec-end!", "revert-start", "revert-end"}),
    "REVERTING": frozenset({"exec-end", "exec-end!", "revert-start", "revert-end"}),
    "REVERTED": frozenset({"revert-end"}),
}

#: Recorded states that say an atom's execute finished (its outcome is committed).
EXECUTE_RECORDED = frozenset({"SUCCESS", "FAILURE", "REVERTING", "REVERTED"})

#: Successive events of one atom in one process.
IN_PROCESS = frozenset(
    {
        (None, "exec-start"),
        ("exec-start", "exec-end"),
        ("exec-end", "revert-start"),
        ("revert-start", "revert-end"),
        ("revert-end", "exec-start"),
    }
)
#: Added across a kill: a caught atom repeats its step (or is reverted instead).
ACROSS_KILL = frozenset(
    {
        ("exec-start", "exec-start"),
        ("exec-end", "exec-start"),
        ("exec-start", "revert-start"),
        ("revert-start", "revert-start"),
        ("revert-end", "revert-start"),
    }
)


# -- the ledger -------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One ledger line of a task."""

    line: int  # 1-based line number in the ledger
    segment: int  # how many kills came before it
    kind: str  # exec-start, exec-end, revert-start, revert-end
    name: str
    note: str = ""

    @property
    def failed(self) -> bool:
        """Whether this is the end of an execute that raised."""
        return self.kind == "exec-end" and self.note.endswith("failed")

    @property
    def key(self) -> str:
        """The kind, with ``!`` for the end of a failed execute (see RECORDED_AFTER)."""
        return "exec-end!" if self.failed else self.kind

    @property
    def attempt(self) -> int | None:
        """The attempt number the flaky task wrote, if any."""
        head = self.note.split(" ", 1)[0]
        return int(head) if head.isdigit() else None


#: The line the harness writes before resuming the finished run once more.
FINISHED = "finished"


def parse_ledger(text: str) -> tuple[list[Event], int]:
    """The task events of a ledger up to the run's end, and how many kills it records."""
    events: list[Event] = []
    kills = 0
    for number, raw in enumerate(text.splitlines(), 1):
        if raw == FINISHED:
            break
        parts = raw.split(" ", 2)
        if parts[0] == "kill":
            kills += 1
            continue
        if len(parts) < 2:
            raise ValueError(f"ledger line {number} is not an event: {raw!r}")
        events.append(Event(number, kills, parts[0], parts[1], parts[2] if len(parts) > 2 else ""))
    return events, kills


# -- the flows' links --------------------------------------------------------------------


def dependencies(flow: str) -> dict[str, frozenset[str]]:
    """Atom name -> the atoms whose results it requires, for a flow of crash_flows."""
    factory, _ = crash_flows.FLOWS[flow]
    atoms: list[Any] = []

    def walk(item: Any) -> None:
        if isinstance(item, tideflow.Flow):
            if item.retry is not None:
                atoms.append(item.retry)
            for child in item:
                walk(child)
        else:
            atoms.append(item)

    walk(factory(ledger=os.devnull, seed=0))
    provider = {name: atom.name for atom in atoms for name in atom.provides}
    return {atom.name: frozenset(provider[n] for n in atom.requires) for atom in atoms}


# -- records ----------------------------------------------------------------------------


def snapshot(url: str, run_id: str) -> dict[str, Any]:
    """The flow record ``run_id`` as the store has it now, read through a new store object."""
    backend = tideflow.connect(url)
    try:
        conn = backend.get_connection()
        try:
            flow_detail = conn.get_flow_details(run_id)
        finally:
            conn.close()
    finally:
        backend.close()
    atoms: dict[str, dict[str, Any]] = {}
    for detail in flow_detail:
        atoms[detail.name] = {
            "kind": detail.kind,
            "state": str(detail.state),
            "intention": str(detail.intention),
            "results": detail.results,
            "history": len(getattr(detail, "history", ())),
            "failed_attempts": sum(1 for _, failures in getattr(detail, "history", ()) if failures),
            "decision": getattr(detail, "decision", None),
        }
    return {"state": str(flow_detail.state), "atoms": atoms}


# -- checking ---------------------------------------------------------------------------


@dataclass
class Trial:
    """What one trial did: enough to check it and to report it."""

    store: str
    flow: str
    seed: int
    label: str
    ledger: Path
    #: The log book the run is saved in (a uuid of the suite's own: shared databases
    #: hold other tests' records too).
    book_uuid: str = field(default_factory=new_uuid)
    run_id: str | None = None
    #: One per kill: the record as committed when the child died.
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, Any] | None = None
    #: How the last incarnation ended: {"error": None | {...}}.
    outcome: dict[str, Any] | None = None
    #: Per incarnation: (op, engine options, kill delay or None, how it ended).
    steps: list[tuple[str, dict[str, Any], float | None, str]] = field(default_factory=list)
    #: Problems met while driving the trial (a child that crashed, hung, ...).
    problems: list[str] = field(default_factory=list)
    #: Ledger lines and state change seen when a finished run was resumed once more.
    rerun: dict[str, Any] | None = None

    def report(self) -> str:
        """Everything about the trial, for a failure message."""
        ledger = self.ledger.read_text() if self.ledger.exists() else "(no ledger)"
        lines = [
            f"trial {self.label}: store {self.store}, flow {self.flow}, seed {self.seed}, "
            f"run {self.run_id}",
            "incarnations (op, engine, kill after s, ended):",
            *(f"  {step}" for step in self.steps),
            "ledger:",
            *(f"  {n:3} {line}" for n, line in enumerate(ledger.splitlines(), 1)),
        ]
        for k, snap in enumerate(self.snapshots, 1):
            lines.append(f"record at kill {k}: flow {snap['state']}")
            lines.extend(
                f"    {name}: {a['state']}/{a['intention']}"
                + (
                    f" history={a['history']} ({a['failed_attempts']} failed)"
                    f" decision={a['decision']}"
                    if a["kind"] == "retry"
                    else ""
                )
                for name, a in snap["atoms"].items()
            )
        if self.final is not None:
            lines.append(f"final record: {json.dumps(self.final, default=str)}")
        lines.append(f"outcome: {self.outcome}")
        if self.rerun is not None:
            lines.append(f"resuming the finished run again: {self.rerun}")
        return "\n".join(lines)


def _state_at(snap: dict[str, Any], name: str) -> str | None:
    atom = snap["atoms"].get(name)
    return None if atom is None else str(atom["state"])


def check(
    trial: Trial,
    events: list[Event],
    kills: int,
    expected: dict[str, Any],
) -> list[str]:
    """Every way the trial breaks the rules of the module docstring, as sentences."""
    problems = list(trial.problems)
    if trial.final is None:
        return [*problems, "the run never finished (no final record)"]
    retrying = trial.flow == "retry"
    failing = trial.flow == "failing"
    by_name: dict[str, list[Event]] = {}
    for event in events:
        by_name.setdefault(event.name, []).append(event)
    tasks = sorted(n for n, a in trial.final["atoms"].items() if a["kind"] == "task")
    for name in sorted(set(by_name) - set(tasks)):
        problems.append(f"{name}: in the ledger but has no record")
    requires = dependencies(trial.flow)
    for name in tasks:
        evs = by_name.get(name, [])
        problems.extend(_check_kills(name, evs, kills, trial.snapshots, retrying))
        problems.extend(_check_order(name, by_name, kills, trial.snapshots, requires, retrying))
        problems.extend(_check_sequence(name, evs, retrying))
        problems.extend(_check_end(name, evs, trial.final, failing))
    if retrying:
        problems.extend(_check_attempts(events, trial.snapshots, trial.final))
    problems.extend(_check_outcome(trial, expected, failing))
    return problems


def _check_kills(
    name: str, evs: list[Event], kills: int, snaps: list[dict[str, Any]], retrying: bool
) -> list[str]:
    problems: list[str] = []
    for k in range(1, kills + 1):
        if k > len(snaps):
            problems.append(f"kill {k}: no record was read")
            continue
        state = _state_at(snaps[k - 1], name)
        before = [e for e in evs if e.segment < k]
        after = [e for e in evs if e.segment >= k]
        last = before[-1] if before else None
        first = after[0] if after else None
        last_key = last.key if last else None
        allowed = RECORDED_AFTER.get(state)
        if allowed is None:
            problems.append(f"{name}: recorded {state} at kill {k}, a state no task here reaches")
        elif last_key in ("revert-start", "revert-end") and state in ("PENDING", "RUNNING"):
            # after a retry the reverted atoms are reset to PENDING: legitimate then
            if not (retrying and last_key == "revert-end"):
                problems.append(
                    f"{name}: its revert began ({_where(last)}) while the record (at kill {k}: "
                    f"{state}) did not hold the outcome of its execute: the engine acted on an "
                    "outcome before committing it"
                )
        elif last_key not in allowed:
            problems.append(
                f"{name}: the record at kill {k} says {state}, but its last ledger line before "
                f"the kill is {_where(last)}: the record ran ahead of what the task did"
            )
        if last is None:
            continue
        if first is None:
            if last.kind == "exec-start" and state not in EXECUTE_RECORDED:
                problems.append(
                    f"{name}: caught mid-execute at kill {k} (line {last.line}, record "
                    f"{state}) and never executed (nor reverted) again"
                )
            if last.kind == "revert-start" and state != "REVERTED":
                problems.append(
                    f"{name}: caught mid-revert at kill {k} (line {last.line}, record "
                    f"{state}) and its revert never finished"
                )
            continue
        if first.kind == "exec-start" and last.kind in ("exec-start", "exec-end"):
            if state in EXECUTE_RECORDED:
                problems.append(
                    f"{name}: executed again after kill k={k} (line {first.line}) although the "
                    f"record at that kill said {state} (execute recorded finished)"
                )
        elif first.kind == "exec-start" and last.kind == "revert-start":
            problems.append(
                f"{name}: caught mid-revert at kill {k} (line {last.line}) and executed again "
                f"(line {first.line}) before its revert finished"
            )
        elif first.kind == "revert-start" and last.kind in ("revert-start", "revert-end"):
            if state == "REVERTED":
                problems.append(
                    f"{name}: reverted again after kill {k} (line {first.line}) although the "
                    "record at that kill said REVERTED"
                )
        elif (
            first.kind == "revert-start"
            and last.kind == "exec-start"
            and state
            not in (
                "PENDING",
                "RUNNING",
            )
        ):
            problems.append(
                f"{name}: reverted after kill {k} (line {first.line}) though its execute "
                f"never ended (line {last.line}) and the record said {state}"
            )
    return problems


def _check_order(
    name: str,
    by_name: dict[str, list[Event]],
    kills: int,
    snaps: list[dict[str, Any]],
    requires: dict[str, frozenset[str]],
    retrying: bool,
) -> list[str]:
    """Each round is committed before what depends on it starts: at every kill, an atom
    executing has its requirements' successes committed, and an atom reverting has the
    reverts of the atoms that require it committed."""
    problems: list[str] = []
    users = [other for other, needs in requires.items() if name in needs]
    for k in range(1, kills + 1):
        snap = snaps[k - 1] if k <= len(snaps) else None
        before = [e for e in by_name.get(name, []) if e.segment < k]
        if snap is None or not before:
            continue
        last = before[-1]
        if last.kind in ("exec-start", "exec-end"):
            for needed in sorted(requires.get(name, ())):
                state = _state_at(snap, needed)
                if state != "SUCCESS":
                    problems.append(
                        f"{name}: executing at kill {k} ({_where(last)}) while the record said "
                        f"{needed}, which it requires, was {state}: it started before that "
                        "success was committed"
                    )
        else:
            for user in users:
                ran = [e for e in by_name.get(user, []) if e.segment < k]
                if not ran:
                    continue
                state = _state_at(snap, user)
                reset = retrying and state == "PENDING" and ran[-1].kind == "revert-end"
                if state != "REVERTED" and not reset:
                    problems.append(
                        f"{name}: reverting at kill {k} ({_where(last)}) while the record said "
                        f"{user}, which requires it, was {state}: its revert began before "
                        f"{user}'s was committed"
                    )
    return problems


def _check_sequence(name: str, evs: list[Event], retrying: bool) -> list[str]:
    problems: list[str] = []
    prev: Event | None = None
    for event in evs:
        pair = (prev.kind if prev else None, event.kind)
        same_process = prev is None or prev.segment == event.segment
        if same_process and pair not in IN_PROCESS:
            problems.append(
                f"{name}: {_where(prev)} then {_where(event)} in one process: not a step order"
            )
        elif not same_process and pair not in IN_PROCESS and pair not in ACROSS_KILL:
            problems.append(
                f"{name}: {_where(prev)}, a kill, then {_where(event)}: not a step order"
            )
        if pair == ("revert-end", "exec-start") and not retrying:
            problems.append(
                f"{name}: executed again ({_where(event)}) after it was reverted, in a flow "
                "without a retry controller"
            )
        prev = event
    return problems


def _check_end(name: str, evs: list[Event], final: dict[str, Any], failing: bool) -> list[str]:
    state = _state_at(final, name)
    last = evs[-1] if evs else None
    if failing:
        if last is None:
            return [] if state == "PENDING" else [f"{name}: never ran, yet recorded {state}"]
        if last.kind != "revert-end" or state != "REVERTED":
            return [
                f"{name}: ran in a run that failed, but ends with {_where(last)} and is "
                f"recorded {state} (every atom that ran must be reverted)"
            ]
        return []
    if last is None or last.key != "exec-end" or state != "SUCCESS":
        return [f"{name}: ends with {_where(last)}, recorded {state}; expected exec-end, SUCCESS"]
    return []


def _check_attempts(
    events: list[Event], snaps: list[dict[str, Any]], final: dict[str, Any]
) -> list[str]:
    problems: list[str] = []
    starts = [e for e in events if e.name == "flaky" and e.kind == "exec-start"]
    highest = 0
    for event in starts:
        attempt = event.attempt
        if attempt is None:
            problems.append(f"flaky: {_where(event)} carries no attempt number")
            continue
        if attempt < highest:
            problems.append(f"flaky: attempt {attempt} at line {event.line} after {highest}")
        highest = max(highest, attempt)
        for k in range(1, event.segment + 1):
            times = snaps[k - 1]["atoms"].get("times", {})
            # each attempt adds a history entry as the controller runs, and failures to it
            # as they come: the attempt under way may run again, an earlier one never
            floor = max(times.get("history", 0), times.get("failed_attempts", 0) + 1)
            if attempt < floor:
                problems.append(
                    f"flaky: attempt {attempt} started at line {event.line}, after kill {k} "
                    f"whose record held {times.get('history')} attempts "
                    f"({times.get('failed_attempts')} failed): the count was lost"
                )
    failed = sorted({e.attempt for e in events if e.name == "flaky" and e.failed})
    wanted = list(range(1, crash_flows.FAIL_FIRST + 1))
    if failed != wanted:
        problems.append(f"flaky: failed attempts {failed}, expected {wanted}")
    if highest != crash_flows.FAIL_FIRST + 1:
        problems.append(f"flaky: last attempt {highest}, expected {crash_flows.FAIL_FIRST + 1}")
    times = final["atoms"].get("times", {})
    wanted_history = (crash_flows.FAIL_FIRST + 1, crash_flows.FAIL_FIRST)
    if (times.get("history"), times.get("failed_attempts")) != wanted_history:
        problems.append(
            f"times: the finished record's history holds {times.get('history')} attempts, "
            f"{times.get('failed_attempts')} failed; expected {wanted_history[0]}, "
            f"{wanted_history[1]} failed"
        )
    return problems


def _check_outcome(trial: Trial, expected: dict[str, Any], failing: bool) -> list[str]:
    problems: list[str] = []
    final = trial.final
    assert final is not None
    error = (trial.outcome or {}).get("error")
    if failing:
        if final["state"] != "REVERTED":
            problems.append(f"the failing run ended {final['state']}, expected REVERTED")
        if not _is_boom(error):
            problems.append(f"the failing run's last resume raised {error}, expected Boom")
    else:
        if final["state"] != "SUCCESS":
            problems.append(f"the run ended {final['state']}, expected SUCCESS")
        if error is not None:
            problems.append(f"the run's last resume raised {error}")
        results = {n: a["results"] for n, a in final["atoms"].items() if a["kind"] == "task"}
        if results != expected:
            problems.append(f"recorded results {results} differ from an uninterrupted run's")
    rerun = trial.rerun
    if rerun is not None:
        if rerun["lines"]:
            problems.append(f"resuming the finished run ran again: {rerun['lines']}")
        if rerun["state"] != final["state"]:
            problems.append(
                f"resuming the finished run changed its state {final['state']} -> {rerun['state']}"
            )
        if failing and rerun["error"] is not None and not _is_boom(rerun["error"]):
            problems.append(f"resuming the finished failing run raised {rerun['error']}")
        if not failing and rerun["error"] is not None:
            problems.append(f"resuming the finished run raised {rerun['error']}")
    return problems


def _is_boom(error: dict[str, Any] | None) -> bool:
    if error is None:
        return False
    if error["type"].endswith(".Boom"):
        return True
    return error["type"].endswith("WrappedFailure") and [
        names[0].rsplit(".", 1)[-1] for names in error["names"]
    ] == ["Boom"]


def _where(event: Event | None) -> str:
    if event is None:
        return "nothing"
    return (
        f"'{event.kind} {event.name}{' ' + event.note if event.note else ''}' (line {event.line})"
    )


# -- driving children ---------------------------------------------------------------------


class ForkServer:
    """The crash driver's server process: forks a child per command (see crash_driver)."""

    def __init__(self, log: Path) -> None:
        self._log = log
        self._stderr = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(DRIVER), "serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            cwd=str(HERE),
        )
        assert self.proc.stdout is not None
        self._fd = self.proc.stdout.fileno()
        self._buffer = b""
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._fd, selectors.EVENT_READ)
        line = self.read_line(CHILD_TIMEOUT)
        if line != "ready":
            raise RuntimeError(f"crash driver did not start ({line!r}): {self.stderr_tail()}")

    def stderr_tail(self) -> str:
        """The end of what the server and its children wrote to stderr."""
        self._stderr.flush()
        return self._log.read_text(errors="replace")[-3000:]

    def read_line(self, timeout: float) -> str | None:
        """The next line from the server or its child; None if none came within ``timeout``."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not self._selector.select(left):
                return None
            chunk = os.read(self._fd, 65536)
            if not chunk:
                raise RuntimeError(f"crash driver ended: {self.stderr_tail()}")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    def send(self, command: dict[str, Any]) -> None:
        """Ask for a child that runs ``command``."""
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(command) + "\n").encode())
        self.proc.stdin.flush()

    def close(self) -> None:
        """Stop the server."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._selector.close()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()


@dataclass
class Incarnation:
    """How one child ended."""

    run_id: str | None
    killed: bool
    outcome: dict[str, Any] | None
    problem: str | None = None
    #: Seconds from "running" to the child's end.
    elapsed: float = 0.0


def run_child(server: ForkServer, command: dict[str, Any], kill_after: float | None) -> Incarnation:
    """Run ``command`` in a child; SIGKILL it ``kill_after`` seconds after it starts running."""
    server.send(command)
    pid: int | None = None
    run_id: str | None = None
    outcome: dict[str, Any] | None = None
    killed = hung = False
    deadline: float | None = None
    began = time.monotonic()
    while True:
        if deadline is not None and not killed and pid is not None:
            timeout = max(0.0, deadline - time.monotonic())
        else:
            # (the server's "pid" line may come after the child's "running": two
            # processes write to the pipe; a kill that is due waits for it)
            timeout = CHILD_TIMEOUT
        line = server.read_line(timeout)
        if line is None:
            if pid is None or hung:
                raise RuntimeError(f"the crash driver stopped answering: {server.stderr_tail()}")
            hung = killed or deadline is None  # no kill was due: it took too long
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            killed = True
            continue
        word, _, rest = line.partition(" ")
        if word == "pid":
            pid = int(rest)
        elif word == "running":
            run_id = rest
            began = time.monotonic()
            if kill_after is not None:
                deadline = time.monotonic() + kill_after
        elif word == "done":
            outcome = json.loads(rest)
        elif word == "crash":
            outcome = {"error": {"type": "crash", "names": [], "message": json.loads(rest)}}
        elif word == "exit":
            code = int(rest.split()[1])
            if hung:
                return Incarnation(
                    run_id, False, None, f"child hung (killed after {CHILD_TIMEOUT} s): {command}"
                )
            elapsed = time.monotonic() - began
            if code == -signal.SIGKILL:
                return Incarnation(run_id, True, None, elapsed=elapsed)
            problem = None
            if code != 0 or outcome is None:
                problem = f"child exited {code} with {outcome}: {server.stderr_tail()}"
            return Incarnation(run_id, False, outcome, problem, elapsed)
        else:
            raise RuntimeError(f"unexpected line from the crash driver: {line!r}")


# -- a trial ------------------------------------------------------------------------------


def engine_choices(flow: str) -> list[dict[str, Any]]:
    """Engines a run of ``flow`` may be started or resumed on."""
    _, options = crash_flows.FLOWS[flow]
    if flow == "parallel":
        return [options]
    return [{}, {"engine": "parallel", "max_workers": 3}]


#: How long an in-process resume may take before the trial reports it hung (seconds).
RESUME_TIMEOUT = 30.0


def in_process_resume(url: str, run_id: str, options: dict[str, Any]) -> dict[str, Any]:
    """``tideflow.resume`` in this process; how it ended, as a child reports it.

    It runs on a thread, so that an engine that never ends is reported (as a "hung"
    error) rather than hanging the test session; such a thread cannot be stopped, so
    the caller ends the test at once.
    """
    from crash_driver import describe_error

    ended: dict[str, Any] = {}

    def resume() -> None:
        backend = tideflow.connect(url)
        try:
            tideflow.resume(run_id, backend, **options)
            ended["error"] = None
        except Exception as exc:
            ended["error"] = describe_error(exc)
        finally:
            backend.close()

    thread = threading.Thread(target=resume, name=f"resume-{run_id}", daemon=True)
    thread.start()
    thread.join(RESUME_TIMEOUT)
    if thread.is_alive():
        return {
            "error": {
                "type": "hung",
                "names": [],
                "message": f"tideflow.resume did not return within {RESUME_TIMEOUT} s",
            },
            "hung": True,
        }
    return ended


def expected_results(flow: str, workdir: Path) -> dict[str, Any]:
    """The task results of an uninterrupted run of ``flow`` in memory."""
    factory, options = crash_flows.FLOWS[flow]
    ledger = workdir / f"expected-{flow}.ledger"
    engine = tideflow.load(factory(ledger=str(ledger), seed=0), **options)
    with contextlib.suppress(crash_flows.Boom):
        engine.run()
    return {
        detail.name: detail.results
        for detail in engine.storage.flow_detail
        if detail.kind == "task"
    }


def calibrate(server: ForkServer, url: str, flow: str, workdir: Path, book_uuid: str) -> float:
    """Seconds an uninterrupted run of ``flow`` takes in a child on this store, from the
    moment it says it runs (the best of two: the first also sets the store up)."""
    best = float("inf")
    for attempt in range(2):
        command = {
            "op": "start",
            "url": url,
            "flow": flow,
            "ledger": str(workdir / f"calibrate-{flow}-{attempt}.ledger"),
            "seed": 0,
            "engine": crash_flows.FLOWS[flow][1],
            "book": [f"tideflow-faults-calibrate-{flow}", book_uuid],
        }
        ended = run_child(server, command, None)
        if ended.problem or ended.killed:
            raise RuntimeError(f"calibration run of {flow} on {url} failed: {ended.problem}")
        best = min(best, ended.elapsed)
    return best


def run_trial(
    server: ForkServer,
    url: str,
    store: str,
    flow: str,
    label: str,
    workdir: Path,
    duration: float,
) -> Trial:
    """One trial: start, kill and resume until the run ends, then resume it once more."""
    seed = zlib.crc32(label.encode())
    rng = random.Random(seed)
    trial = Trial(store, flow, seed, label, workdir / f"{label}.ledger")
    book = [f"tideflow-faults-{label}", trial.book_uuid]
    kills_wanted = rng.randint(1, 4)
    kills = 0
    while True:
        options = rng.choice(engine_choices(flow))
        last = kills >= kills_wanted
        if last and rng.random() < 0.5 and trial.run_id is not None:
            trial.outcome = in_process_resume(url, trial.run_id, options)
            trial.steps.append(("resume in-process", options, None, "ended"))
            if trial.outcome.get("hung"):
                trial.problems.append(f"the in-process resume hung: {trial.outcome}")
                trial.final = snapshot(url, trial.run_id)
                return trial
            break
        delay = None if last else rng.uniform(0.0, duration)
        command = {
            "op": "start" if trial.run_id is None else "resume",
            "url": url,
            "flow": flow,
            "ledger": str(trial.ledger),
            "seed": seed,
            "engine": options,
            "book": book,
            "run_id": trial.run_id,
        }
        ended = run_child(server, command, delay)
        if trial.run_id is None:
            trial.run_id = ended.run_id
        if ended.problem:
            trial.problems.append(ended.problem)
            trial.steps.append((str(command["op"]), options, delay, "problem"))
            break
        if not ended.killed:
            trial.outcome = ended.outcome
            trial.steps.append((str(command["op"]), options, delay, "ended"))
            break
        kills += 1
        trial.steps.append((str(command["op"]), options, delay, f"killed ({kills})"))
        crash_flows.write_event(str(trial.ledger), f"kill {kills}")
        if trial.run_id is None:
            trial.problems.append("the child was killed before it said which run it started")
            break
        trial.snapshots.append(snapshot(url, trial.run_id))
    if trial.run_id is not None:
        trial.final = snapshot(url, trial.run_id)
        crash_flows.write_event(str(trial.ledger), FINISHED)
        size = trial.ledger.stat().st_size
        outcome = in_process_resume(url, trial.run_id, rng.choice(engine_choices(flow)))
        if outcome.get("hung"):
            trial.problems.append(f"resuming the finished run hung: {outcome}")
        text = trial.ledger.read_text()
        trial.rerun = {
            "lines": text.encode()[size:].decode().splitlines(),
            "state": snapshot(url, trial.run_id)["state"],
            "error": outcome["error"],
        }
    return trial


def trial_count(default: int) -> int:
    """Trials per store: TIDEFLOW_CRASH_TRIALS if set, else ``default``."""
    value = os.environ.get("TIDEFLOW_CRASH_TRIALS")
    return int(value) if value else default


def labels(store: str, flow: str, count: int) -> Iterator[str]:
    """Trial labels (their seeds derive from them); TIDEFLOW_CRASH_SEED varies them all,
    TIDEFLOW_CRASH_ONLY=<label> replays one."""
    only = os.environ.get("TIDEFLOW_CRASH_ONLY")
    base = os.environ.get("TIDEFLOW_CRASH_SEED", "8")
    for i in range(count):
        label = f"{store}-{flow}-{base}-{i}"
        if only is None or only == label:
            yield label
