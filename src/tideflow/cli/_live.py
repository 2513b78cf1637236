"""Watch a run: record attempts and durations, and show progress as it happens.

Both are subscribers of :meth:`tideflow.Engine.subscribe` (typed events, delivered on
the engine's thread). :class:`Recorder` writes into the run's records what a summary
needs later: each atom record's meta gets ``attempts`` (execute calls, counted across
resumes), ``duration`` (seconds of its last execute) and ``revert_duration``; the flow
record's meta entry :data:`~tideflow.cli._report.META_KEY` gets ``started_at`` (first
start) and ``ended_at``. They are written with the round that records the state change,
in the same transaction. :class:`Display` shows the run in one of four ways: a live
view on a terminal (done of total, the atoms running now, a bar, elapsed time), one
plain line per change, one JSON object per line, or nothing.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import IO, Any, Literal

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from tideflow import AtomEvent, AtomState, Engine, FlowEvent, FlowState
from tideflow.cli._report import META_KEY, failure_dict, failure_line, jsonable
from tideflow.events import Event

__all__ = ["Display", "Mode", "Recorder"]

Mode = Literal["live", "plain", "json", "quiet"]

_DONE = frozenset({AtomState.SUCCESS, AtomState.IGNORE})
_FINAL_FLOW = frozenset({FlowState.SUCCESS, FlowState.REVERTED, FlowState.FAILURE})


class Recorder:
    """Writes attempts and durations into the run's records as the run goes."""

    def __init__(self, engine: Engine, attempts: Mapping[str, int], meta: dict[str, Any]) -> None:
        self._storage = engine.storage
        self._attempts = dict(attempts)
        self._meta = meta  # the command's entry of the flow record's meta
        self._started: dict[str, float] = {}
        self._reverting: dict[str, float] = {}

    def __call__(self, event: Event) -> None:
        if isinstance(event, FlowEvent):
            if event.state is FlowState.RUNNING and "started_at" not in self._meta:
                self._meta["started_at"] = event.at
            elif event.state in _FINAL_FLOW or event.state is FlowState.SUSPENDED:
                self._meta["ended_at"] = event.at
            else:
                return
            self._storage.update_flow_metadata({META_KEY: dict(self._meta)})
            return
        name = event.atom_name
        state = event.state
        if state is AtomState.RUNNING:
            self._started[name] = event.at
            self._attempts[name] = self._attempts.get(name, 0) + 1
            self._storage.update_atom_metadata(name, {"attempts": self._attempts[name]})
        elif state in (AtomState.SUCCESS, AtomState.FAILURE) and name in self._started:
            duration = event.at - self._started.pop(name)
            self._storage.update_atom_metadata(name, {"duration": duration})
        elif state is AtomState.REVERTING:
            self._reverting[name] = event.at
        elif state in (AtomState.REVERTED, AtomState.REVERT_FAILURE) and name in self._reverting:
            duration = event.at - self._reverting.pop(name)
            self._storage.update_atom_metadata(name, {"revert_duration": duration})


def _event_json(event: Event) -> dict[str, Any]:
    if isinstance(event, FlowEvent):
        return {
            "event": "flow",
            "run": event.flow_uuid,
            "flow": event.flow_name,
            "state": str(event.state),
            "old_state": str(event.old_state),
            "at": event.at,
        }
    body: dict[str, Any] = {
        "event": "atom",
        "run": event.flow_uuid,
        "flow": event.flow_name,
        "atom": event.atom_name,
        "kind": event.kind,
        "state": str(event.state),
        "old_state": str(event.old_state),
        "at": event.at,
        "attempt": event.attempt,
    }
    if event.state in (AtomState.SUCCESS, AtomState.REVERTED):
        body["result"] = jsonable(event.result)
    if event.failure is not None:
        body["failure"] = failure_dict(event.failure)
    if event.delay is not None:
        body["delay"] = event.delay
    return body


class Display:
    """Shows a run's events: ``live`` (rich), ``plain`` lines, ``json`` lines or ``quiet``.

    Use it as a context manager around ``engine.run()`` and subscribe it to the engine.
    ``out`` receives the JSON lines (the command's real stdout: in JSON mode the user's
    own prints go to stderr).
    """

    def __init__(
        self,
        mode: Mode,
        console: Console,
        total: int,
        done: int,
        out: IO[str] | None = None,
    ) -> None:
        self.mode = mode
        self._console = console
        self._out = out
        self._total = total
        self._done = done
        self._running: dict[str, None] = {}  # insertion-ordered set
        #: Atoms reverted by this run, in the order they were reverted.
        self.reverted: list[str] = []
        self._lock = threading.Lock()
        self._began = time.monotonic()
        self._progress: Progress | None = None
        self._task_id: Any = None
        self._live: Live | None = None

    # -- context --------------------------------------------------------------------

    def __enter__(self) -> Display:
        if self.mode == "live":
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("atoms done"),
                TimeElapsedColumn(),
                console=self._console,
            )
            self._task_id = self._progress.add_task(
                "running", total=self._total, completed=self._done
            )
            self._live = Live(
                self._renderable(), console=self._console, refresh_per_second=8, transient=False
            )
            self._live.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.update(self._renderable(), refresh=True)
            self._live.__exit__(exc_type, exc, tb)
            self._live = None

    def _renderable(self) -> Group:
        assert self._progress is not None
        with self._lock:
            running = list(self._running)
        line = Text("running: ", style="cyan")
        line.append(", ".join(running) if running else "-", style="" if running else "dim")
        return Group(self._progress, line)

    # -- events ---------------------------------------------------------------------

    def note(self, message: str) -> None:
        """A line about the run from the command itself (suspending, ...)."""
        if self.mode == "json":
            self._write({"event": "note", "message": message})
        elif self.mode != "quiet":
            self._console.print(message, highlight=False)

    def __call__(self, event: Event) -> None:
        if isinstance(event, AtomEvent):
            self._count(event)
        if self.mode == "json":
            self._write(_event_json(event))
        elif self.mode == "plain":
            self._console.print(self._plain(event), highlight=False, soft_wrap=True)
        elif self.mode == "live":
            self._live_event(event)

    def _count(self, event: AtomEvent) -> None:
        with self._lock:
            state, old = event.state, event.old_state
            if state is AtomState.RUNNING:
                self._running[event.atom_name] = None
            else:
                self._running.pop(event.atom_name, None)
            if state in _DONE and old not in _DONE:
                self._done += 1
            elif old in _DONE and state not in _DONE:
                self._done -= 1
            if state is AtomState.REVERTED:
                self.reverted.append(event.atom_name)

    def _write(self, body: dict[str, Any]) -> None:
        assert self._out is not None
        self._out.write(json.dumps(body) + "\n")
        self._out.flush()

    def _plain(self, event: Event) -> str:
        elapsed = f"[{time.monotonic() - self._began:7.2f}s]"
        if isinstance(event, FlowEvent):
            return f"{elapsed} flow {event.flow_name} {event.state}"
        line = f"{elapsed} {event.atom_name} {event.state}"
        if event.failure is not None:
            line += f": {failure_line(event.failure)}"
        if event.state is AtomState.RETRYING and event.delay is not None:
            line += f" (attempt {event.attempt} in {event.delay:g}s)"
        return f"{line}  ({self._done}/{self._total} done)"

    def _live_event(self, event: Event) -> None:
        assert self._progress is not None
        assert self._live is not None
        self._progress.update(self._task_id, completed=self._done)
        if isinstance(event, FlowEvent):
            self._progress.update(self._task_id, description=str(event.state).lower())
        elif event.state in (AtomState.FAILURE, AtomState.REVERT_FAILURE):
            assert event.failure is not None
            self._live.console.print(
                Text.assemble(("✗ ", "red"), f"{event.atom_name} ", failure_line(event.failure))
            )
        elif event.state is AtomState.REVERTED:
            self._live.console.print(Text.assemble(("↺ ", "yellow"), f"{event.atom_name} reverted"))
        self._live.update(self._renderable())
