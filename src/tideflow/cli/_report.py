"""What a run's record says, as tables, text and JSON: ``show``, ``runs`` and run summaries.

Everything here reads records (:class:`~tideflow.persistence.models.FlowDetail`), never
an engine, so a finished run, a run in progress in another process and the run just
ended are shown the same way. Attempts and durations are what the command's own
:class:`~tideflow.cli._live.Recorder` wrote into each atom record's meta
(``attempts``, ``duration``, ``revert_duration``); a run made by a program without
the command has none, and shows ``-`` there.
"""

from __future__ import annotations

import json
import math
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from tideflow import AtomState, Failure, FlowState
from tideflow.persistence.models import AtomDetail, FlowDetail

__all__ = [
    "META_KEY",
    "atom_dict",
    "failure_dict",
    "failure_line",
    "format_duration",
    "jsonable",
    "print_outcome",
    "print_runs",
    "print_show",
    "run_dict",
    "summary_table",
]

#: The key of the command's own entry in a flow record's meta.
META_KEY = "tideflow.cli"

_STYLES = {
    "SUCCESS": "green",
    "FAILURE": "bold red",
    "REVERT_FAILURE": "bold red",
    "REVERTED": "yellow",
    "REVERTING": "yellow",
    "RUNNING": "cyan",
    "SUSPENDED": "magenta",
    "IGNORE": "dim",
    "PENDING": "dim",
}
_RESULT_WIDTH = 60


def jsonable(value: Any) -> Any:
    """``value`` if JSON can say it as it is, else its ``repr``."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return repr(value)
    return value


def format_duration(seconds: float | None) -> str:
    """``'0.012s'``, ``'3.4s'``, ``'2m05s'``; ``'-'`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    if seconds < 1:
        return f"{seconds:.3f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _RESULT_WIDTH else text[: _RESULT_WIDTH - 3] + "..."


def _type_name(failure: Failure) -> str:
    names = failure.exception_type_names
    return names[0].rsplit(".", 1)[-1] if names else "Exception"


def failure_line(failure: Failure) -> str:
    """``'CardDeclined: card 0000 was declined'``."""
    return f"{_type_name(failure)}: {failure.exception_str}"


def failure_dict(failure: Failure | None) -> dict[str, Any] | None:
    """A failure as JSON: its type (qualified), message and traceback text."""
    if failure is None:
        return None
    names = failure.exception_type_names
    return {
        "type": names[0] if names else "Exception",
        "message": failure.exception_str,
        "traceback": failure.traceback_str,
    }


def _meta_number(detail: AtomDetail, key: str) -> float | None:
    value = detail.meta.get(key)
    return float(value) if isinstance(value, int | float) else None


def atom_dict(detail: AtomDetail) -> dict[str, Any]:
    """One atom record as JSON."""
    attempts = detail.meta.get("attempts")
    return {
        "name": detail.name,
        "kind": detail.kind,
        "state": str(detail.state),
        "intention": str(detail.intention),
        "attempts": attempts if isinstance(attempts, int) else None,
        "duration": _meta_number(detail, "duration"),
        "revert_duration": _meta_number(detail, "revert_duration"),
        "result": jsonable(detail.results) if detail.failure is None else None,
        "failure": failure_dict(detail.failure),
        "revert_failure": failure_dict(detail.revert_failure),
    }


def run_dict(flow_detail: FlowDetail, with_atoms: bool = True) -> dict[str, Any]:
    """A run record as JSON, with its atoms unless ``with_atoms`` is false."""
    mine = flow_detail.meta.get(META_KEY) or {}
    body: dict[str, Any] = {
        "run": flow_detail.uuid,
        "flow": flow_detail.name,
        "state": str(flow_detail.state),
        "started_at": mine.get("started_at"),
        "ended_at": mine.get("ended_at"),
        "source": mine.get("source"),
    }
    if with_atoms:
        body["atoms"] = [atom_dict(d) for d in flow_detail]
    return body


def _state_text(state: str) -> Text:
    return Text(state, style=_STYLES.get(state, ""))


def summary_table(flow_detail: FlowDetail) -> Table:
    """Atom, state, attempts, duration, result or failure: one row per atom record."""
    table = Table(title=f"{flow_detail.name}  {flow_detail.uuid}", title_justify="left")
    for column in ("atom", "state", "attempts", "duration", "result or failure"):
        table.add_column(column, overflow="fold", no_wrap=column != "result or failure")
    for detail in flow_detail:
        attempts = detail.meta.get("attempts")
        if detail.failure is not None:
            outcome = Text(failure_line(detail.failure), style="red")
        elif detail.state is AtomState.SUCCESS or detail.results is not None:
            outcome = Text(_short(detail.results))
        else:
            outcome = Text("")
        if detail.revert_failure is not None:
            outcome.append(f"  revert: {failure_line(detail.revert_failure)}", style="red")
        table.add_row(
            detail.name,
            _state_text(str(detail.state)),
            str(attempts) if isinstance(attempts, int) else "-",
            format_duration(_meta_number(detail, "duration")),
            outcome,
        )
    return table


def _failures(flow_detail: FlowDetail) -> list[tuple[str, str, Failure]]:
    found = []
    for detail in flow_detail:
        if detail.failure is not None:
            found.append((detail.name, "execute", detail.failure))
        if detail.revert_failure is not None:
            found.append((detail.name, "revert", detail.revert_failure))
    return found


def print_failures(console: Console, flow_detail: FlowDetail, tracebacks: bool = True) -> None:
    """Each failing atom, its exception and (with ``tracebacks``) the traceback text."""
    for name, phase, failure in _failures(flow_detail):
        console.print(
            Text.assemble(
                ("failed: ", "bold red"), f"{name} ({phase}) raised ", failure_line(failure)
            )
        )
        if tracebacks and failure.traceback_str:
            console.print(Text(failure.traceback_str.rstrip(), style="dim"))


def print_outcome(
    console: Console, flow_detail: FlowDetail, reverted: list[str], resume_hint: str
) -> None:
    """How a run ended: failures and what was reverted, or how to resume it."""
    state = flow_detail.state
    if state in (FlowState.REVERTED, FlowState.FAILURE):
        print_failures(console, flow_detail)
        order = reverted or [d.name for d in flow_detail if d.state is AtomState.REVERTED]
        undone = [name for name in order if _ran(flow_detail, name)]
        console.print(
            Text.assemble(("reverted: ", "yellow"), ", ".join(undone) if undone else "nothing")
        )
    elif state is FlowState.SUSPENDED or state not in (FlowState.SUCCESS,):
        console.print(f"run {flow_detail.uuid} is {state}; resume it with: {resume_hint}")
    console.print(
        Text.assemble("run ", flow_detail.uuid, " ", _state_text(str(state))), highlight=False
    )


def _ran(flow_detail: FlowDetail, name: str) -> bool:
    """Say whether an atom's execute had been called (so its revert undid something)."""
    detail = flow_detail.find_by_name(name)
    return detail is not None and detail.state is AtomState.REVERTED


def print_show(console: Console, flow_detail: FlowDetail, resume_hint: str | None) -> None:
    """``tideflow show``: the run, its atoms, and every failure with its traceback."""
    mine = flow_detail.meta.get(META_KEY) or {}
    source = mine.get("source") or {}
    where = source.get("file") or source.get("module")
    console.print(
        Text.assemble("run ", flow_detail.uuid, "  flow ", flow_detail.name, "  "),
        _state_text(str(flow_detail.state)),
    )
    if where:
        console.print(f"from {where}:{source.get('name')}", highlight=False)
    console.print(summary_table(flow_detail))
    print_failures(console, flow_detail)
    if resume_hint is not None:
        console.print(f"resume it with: {resume_hint}", highlight=False)


def print_runs(console: Console, runs: list[FlowDetail]) -> None:
    """``tideflow runs``: one row per run, newest first."""
    import datetime  # noqa: PLC0415  # needed by this command only

    table = Table(caption="run ids may be abbreviated to any unique start")
    for column in ("run", "flow", "state", "started", "source"):
        table.add_column(column, no_wrap=True)
    for run in runs:
        mine = run.meta.get(META_KEY) or {}
        started = mine.get("started_at")
        when = (
            datetime.datetime.fromtimestamp(started).strftime("%Y-%m-%d %H:%M:%S")
            if isinstance(started, int | float)
            else "-"
        )
        source = mine.get("source") or {}
        where = source.get("file") or source.get("module")
        table.add_row(
            run.uuid[:8],
            run.name,
            _state_text(str(run.state)),
            when,
            f"{where}:{source.get('name')}" if where else "-",
        )
    console.print(table)
