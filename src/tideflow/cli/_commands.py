"""The subcommands: run, runs, show, resume, graph, validate.

Each takes the parsed arguments and returns the exit code: 0 done, 1 the run (or the
flow checked) failed, 2 a mistake in how the command was used
(:class:`~tideflow.cli._load.CommandError`, printed as one line by ``main``), 130
interrupted. Records are reached through the public store API only
(``tideflow.connect``, ``iter_runs``, ``get_flow_details``); a run started here keeps
in its flow record's meta (:data:`~tideflow.cli._report.META_KEY`) where its flow
came from and the engine options it ran with, so ``resume`` can load it again.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console

import tideflow
from tideflow import AtomState, FlowState
from tideflow.cli._graph import draw, render
from tideflow.cli._live import Display, Mode, Recorder
from tideflow.cli._load import CommandError, load_source, load_spec
from tideflow.cli._report import (
    META_KEY,
    print_outcome,
    print_runs,
    print_show,
    run_dict,
    summary_table,
)
from tideflow.persistence.models import FlowDetail, LogBook

__all__ = ["graph", "resume", "run", "runs", "show", "validate"]

#: Where runs are recorded unless --db (or TIDEFLOW_DB) says otherwise.
DEFAULT_DB = Path(".tideflow") / "runs.db"
_FINISHED = frozenset({FlowState.SUCCESS, FlowState.REVERTED, FlowState.FAILURE})
_STORE_ERRORS = (tideflow.TideflowError, ValueError, TypeError, ImportError, OSError)


def _console() -> Console:
    # not a terminal: no width to fit, so tables are not squeezed into 80 columns
    wide = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(highlight=False, width=160 if wide else None)


# -- the store ----------------------------------------------------------------------------


class Store:
    """The store the command records runs in, and how to name it back to the user."""

    def __init__(self, given: str | None) -> None:
        given = given or os.environ.get("TIDEFLOW_DB") or None
        self.explicit = given is not None
        if given is None:
            self.path: Path | None = Path.cwd() / DEFAULT_DB
            self.url = f"sqlite:///{self.path}"
        else:
            self.path = None
            self.url = given
        self._backend: Any = None

    def exists(self) -> bool:
        """False only for the default file before anything was recorded there."""
        return self.path is None or self.path.exists()

    def backend(self) -> Any:
        """The store, opened and checked; any problem is the user's to fix (exit 2)."""
        if self._backend is None:
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                backend = tideflow.connect(self.url)
                with backend.get_connection() as conn:
                    conn.validate()
            except _STORE_ERRORS as exc:
                raise CommandError(f"--db {self.url}: {_one_line(exc)}") from exc
            self._backend = backend
        return self._backend

    @contextlib.contextmanager
    def connection(self) -> Iterator[Any]:
        """A connection; a store error while reading is reported as one line."""
        conn = self.backend().get_connection()
        try:
            yield conn
        except tideflow.StoreError as exc:
            raise CommandError(f"--db {self.url}: {_one_line(exc)}") from exc
        finally:
            conn.close()

    def resume_command(self, uuid: str) -> str:
        """The exact command that resumes run ``uuid``."""
        return f"tideflow resume {uuid}" + (f" --db {self.url}" if self.explicit else "")

    def describe(self) -> str:
        return str(DEFAULT_DB) if not self.explicit else self.url


def _one_line(exc: BaseException) -> str:
    # tideflow's errors add their causes on further lines: the message says it all
    text = (getattr(exc, "message", None) or str(exc)).strip() or type(exc).__name__
    return " ".join(text.split())


def find_run(store: Store, given: str) -> FlowDetail:
    """The run ``given`` names: a full run id or a unique prefix of one."""
    prefix = given.strip()
    if not prefix:
        raise CommandError("give a run id (or the start of one): `tideflow runs` lists them")
    if not store.exists():
        raise CommandError(
            f"no run {prefix!r}: nothing is recorded in {store.describe()} yet "
            "(run a flow with `tideflow run FILE.py`, or pass --db URL)"
        )
    with store.connection() as conn:
        try:
            return conn.get_flow_details(prefix)  # type: ignore[no-any-return]
        except tideflow.NotFoundError:
            pass
        matches = [fd.uuid for fd in conn.iter_runs() if fd.uuid.startswith(prefix)]
        if not matches:
            raise CommandError(
                f"no run {prefix!r} in {store.describe()}: `tideflow runs` lists the runs there"
            )
        if len(matches) > 1:
            shown = ", ".join(matches[:10]) + (", ..." if len(matches) > 10 else "")
            raise CommandError(
                f"run id {prefix!r} is ambiguous: {len(matches)} runs start with it "
                f"({shown}); give more of it"
            )
        return conn.get_flow_details(matches[0])  # type: ignore[no-any-return]


# -- options --------------------------------------------------------------------------------


def _store_values(pairs: list[str] | None, json_file: str | None) -> dict[str, Any]:
    """--store-json FILE, then each --store NAME=VALUE (VALUE read as JSON if it is JSON)."""
    values: dict[str, Any] = {}
    if json_file is not None:
        path = Path(json_file)
        try:
            loaded = json.loads(path.read_text())
        except OSError as exc:
            raise CommandError(f"--store-json {json_file}: {exc.strerror or exc}") from exc
        except ValueError as exc:
            raise CommandError(f"--store-json {json_file}: not JSON ({exc})") from exc
        if not isinstance(loaded, dict):
            raise CommandError(
                f"--store-json {json_file}: holds a JSON {type(loaded).__name__}, "
                'give an object ({"name": value, ...})'
            )
        values.update(loaded)
    for pair in pairs or ():
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise CommandError(f"--store {pair!r}: give NAME=VALUE, for example --store card=4111")
        try:
            values[name] = json.loads(text)
        except ValueError:
            values[name] = text  # not JSON: the text itself
    return values


def _engine_options(
    engine: str | None, executor: str | None, workers: int | None
) -> dict[str, Any]:
    if engine is None and (executor is not None or workers is not None):
        engine = "parallel"  # only the parallel engine takes them
    options: dict[str, Any] = {}
    if engine is not None:
        options["engine"] = engine
    if executor is not None:
        options["executor"] = executor
    if workers is not None:
        options["max_workers"] = workers
    return options


def _load_engine(flow: tideflow.Flow, store: Mapping[str, Any] | None, **kw: Any) -> Any:
    """``tideflow.load``, with a refused option reported as the user's mistake."""
    try:
        return tideflow.load(flow, store, **kw)
    except tideflow.DefinitionError:
        raise
    except (tideflow.TideflowError, ValueError, TypeError, ImportError) as exc:
        raise CommandError(_one_line(exc)) from exc


def _count_atoms(flow: tideflow.Flow) -> int:
    count = 1 if flow.retry is not None else 0
    for child, _meta in flow.iter_nodes():
        count += _count_atoms(child) if isinstance(child, tideflow.Flow) else 1
    return count


def _mode(args: argparse.Namespace, console: Console) -> Mode:
    if args.json:
        return "json"
    if args.quiet:
        return "quiet"
    return "live" if console.is_terminal else "plain"


def _invalid(console: Console, what: str, exc: BaseException) -> int:
    console.print(f"[bold red]invalid:[/] {what}: {_one_line(exc)}")
    return 1


# -- run and resume -------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    """``tideflow run FILE.py[:NAME]``: load, check, record and run a flow."""
    console = _console()
    values = _store_values(args.store, args.store_json)
    loaded = load_spec(args.flow)
    options = _engine_options(args.engine, args.executor, args.workers)
    # checked on a private engine first: a flow that cannot run leaves no record
    check = _load_engine(loaded.flow, values, **options)
    try:
        check.validate()
    except tideflow.MissingRequirementError as exc:
        raise CommandError(f"{_one_line(exc)}; give each value with --store NAME=VALUE") from exc
    except tideflow.DefinitionError as exc:
        return _invalid(console, f"flow {loaded.flow.name!r} in {loaded.label}", exc)
    store = Store(args.db)
    backend = store.backend()
    record = FlowDetail(loaded.flow.name)
    meta: dict[str, Any] = {
        "source": loaded.source,
        "engine": args.engine,
        "executor": args.executor,
        "workers": args.workers,
    }
    record.meta[META_KEY] = meta
    if loaded.factory is not None:
        # what load_from_factory records, so tideflow.resume() can rebuild it too
        with contextlib.suppress(ValueError):
            tideflow.save_factory_details(record, loaded.factory, None, None)
    book = LogBook(f"tideflow run {loaded.label}")
    book.add(record)
    with store.connection() as conn:
        conn.save_logbook(book)
    engine = _load_engine(
        loaded.flow, values, backend=backend, book=book, flow_detail=record, **options
    )
    return _drive(engine, record, meta, {}, store, args, console)


def resume(args: argparse.Namespace) -> int:
    """``tideflow resume RUN``: finish a run that was interrupted, suspended or crashed."""
    console = _console()
    store = Store(args.db)
    record = find_run(store, args.run)
    if record.state in _FINISHED:
        raise CommandError(
            f"run {record.uuid} has finished ({record.state}): there is nothing to resume; "
            f"`tideflow show {record.uuid[:8]}` shows what it did"
        )
    meta: dict[str, Any] = dict(record.meta.get(META_KEY) or {})
    source = meta.get("source")
    if isinstance(source, dict):
        flow = load_source(source).flow
    elif record.meta.get("factory"):
        try:
            flow = tideflow.flow_from_detail(record)
        except Exception as exc:
            raise CommandError(f"run {record.uuid}: {_one_line(exc)}") from exc
    else:
        raise CommandError(
            f"run {record.uuid} was not started by `tideflow run` and records no flow factory: "
            "resume it from Python with tideflow.load(flow, backend=..., flow_detail=...)"
        )
    options = _engine_options(meta.get("engine"), meta.get("executor"), meta.get("workers"))
    engine = _load_engine(flow, None, backend=store.backend(), flow_detail=record, **options)
    attempts = {d.name: d.meta.get("attempts", 0) for d in record}
    return _drive(engine, record, meta, attempts, store, args, console)


def _drive(
    engine: tideflow.Engine,
    record: FlowDetail,
    meta: dict[str, Any],
    attempts: Mapping[str, int],
    store: Store,
    args: argparse.Namespace,
    console: Console,
) -> int:
    """Run ``engine`` under the display, Ctrl-C suspending it; report how it ended."""
    mode = _mode(args, console)
    out = sys.stdout
    done = sum(1 for d in record if d.state in (AtomState.SUCCESS, AtomState.IGNORE))
    display = Display(mode, console, _count_atoms(engine.flow), done, out)
    engine.subscribe(Recorder(engine, attempts, meta))
    engine.subscribe(display)
    interrupts = 0

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts > 1:
            raise KeyboardInterrupt
        engine.suspend()  # running atoms finish and are recorded; nothing new starts

    previous = signal.signal(signal.SIGINT, on_interrupt)
    stopped = False
    try:
        quiet_user = contextlib.redirect_stdout(sys.stderr) if mode == "json" else None
        with display, quiet_user or contextlib.nullcontext():
            if mode in ("plain", "live"):
                display.note(f"run {record.uuid}: flow {engine.flow.name} (Ctrl-C suspends it)")
            try:
                engine.run()
            except KeyboardInterrupt:
                stopped = True
            except (
                tideflow.FlowChangedError,
                tideflow.RunOwnedError,
                tideflow.DefinitionError,  # refused before anything ran (an unpicklable atom)
            ) as exc:
                raise CommandError(_one_line(exc)) from exc
            except tideflow.StoreError as exc:
                display.note(f"store error: {_one_line(exc)}")
            except Exception:
                pass  # the run's failure: shown from its record below
    finally:
        signal.signal(signal.SIGINT, previous)
    with store.connection() as conn:
        final = conn.get_flow_details(record.uuid)
    if final.state is FlowState.SUCCESS:
        code = 0
    elif stopped or (interrupts and final.state not in _FINISHED):
        code = 130
    else:
        code = 1
    _report_end(final, code, mode, console, display, store, stopped)
    return code


def _report_end(
    final: FlowDetail,
    code: int,
    mode: Mode,
    console: Console,
    display: Display,
    store: Store,
    stopped: bool,
) -> None:
    """The summary of a run that ended (or stopped): a table and the outcome, or JSON."""
    hint = store.resume_command(final.uuid)
    if mode == "json":
        body = {"event": "end", **run_dict(final), "exit_code": code}
        if final.state not in _FINISHED:
            body["resume"] = hint
        sys.stdout.write(json.dumps(body) + "\n")
        sys.stdout.flush()
        return
    if mode != "quiet":
        console.print(summary_table(final))
    if stopped:
        console.print("stopped at once: atoms caught running will run again on resume")
    print_outcome(console, final, display.reverted, hint)


# -- reading records ------------------------------------------------------------------------


def runs(args: argparse.Namespace) -> int:
    """``tideflow runs``: the recorded runs, newest first."""
    state: str | None = None
    if args.state is not None:
        try:
            state = str(FlowState(args.state.upper()))
        except ValueError as exc:
            names = ", ".join(s.value for s in FlowState)
            raise CommandError(f"--state {args.state!r}: not a flow state; one of {names}") from exc
    store = Store(args.db)
    found: list[FlowDetail] = []
    if store.exists():
        with store.connection() as conn:
            found = list(conn.iter_runs(state=state, limit=args.limit))
    if args.json:
        print(json.dumps([run_dict(fd, with_atoms=False) for fd in found]))
        return 0
    console = _console()
    if not found:
        console.print(
            f"no runs recorded in {store.describe()}" + (f" in state {state}" if state else "")
        )
        return 0
    print_runs(console, found)
    return 0


def show(args: argparse.Namespace) -> int:
    """``tideflow show RUN``: one run's atoms, results and failures."""
    store = Store(args.db)
    record = find_run(store, args.run)
    if args.json:
        print(json.dumps(run_dict(record)))
        return 0
    hint = None if record.state in _FINISHED else store.resume_command(record.uuid)
    print_show(_console(), record, hint)
    return 0


# -- looking at a flow ------------------------------------------------------------------------


def graph(args: argparse.Namespace) -> int:
    """``tideflow graph FILE.py[:NAME]``: the compiled plan as text, dot or mermaid."""
    loaded = load_spec(args.flow)
    engine = _load_engine(loaded.flow, None)
    try:
        drawing = draw(engine)
    except tideflow.DefinitionError as exc:
        return _invalid(_console(), f"flow {loaded.flow.name!r} in {loaded.label}", exc)
    print(render(drawing, args.format))
    return 0


def validate(args: argparse.Namespace) -> int:
    """``tideflow validate FILE.py[:NAME]``: the compile-time checks, nothing run."""
    console = _console()
    values = _store_values(args.store, args.store_json)
    loaded = load_spec(args.flow)
    engine = _load_engine(loaded.flow, values)
    what = f"flow {loaded.flow.name!r} in {loaded.label}"
    try:
        drawing = draw(engine)
        if values:
            engine.validate()
    except tideflow.DefinitionError as exc:
        return _invalid(console, what, exc)
    needed = sorted(set(drawing.external) - set(values))
    line = f"[green]ok:[/] {what}: {len(drawing.atoms)} atoms, {len(drawing.edges)} edges"
    if needed:
        line += f"; needs from the store (--store): {', '.join(needed)}"
    console.print(line)
    return 0
