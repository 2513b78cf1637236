"""Entry points: load a flow into an engine, run it, rebuild one from its record."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tideflow._engine import ENGINE_KINDS, Engine
from tideflow._flow import Flow, LinearFlow
from tideflow._options import closest, describe
from tideflow._task import Atom, callable_name, never_initialised
from tideflow.errors import NotFoundError
from tideflow.executors import SubmitExecutor, resolve_executor
from tideflow.failure import Failure
from tideflow.persistence.models import FlowDetail, LogBook
from tideflow.states import FlowState

__all__ = [
    "connect",
    "flow_from_detail",
    "load",
    "load_from_detail",
    "load_from_factory",
    "resume",
    "run",
    "run_async",
    "save_factory_details",
]

_ALIASES = {"default": "serial", "serial": "serial", "parallel": "parallel"}


def _as_flow(flow: Flow | Atom) -> Flow:
    if isinstance(flow, Flow):
        return flow
    if isinstance(flow, Atom):
        if not hasattr(flow, "name"):
            raise TypeError(never_initialised(flow))
        return LinearFlow(flow.name).add(flow)
    raise TypeError(f"load() takes a flow (or a single atom), got {describe(flow)}")


def _engine_kind(engine: object) -> str:
    """The engine kind named by ``engine``, or an error saying what the names are."""
    if not isinstance(engine, str):
        raise TypeError(f"engine= takes a name, 'serial' or 'parallel', got {describe(engine)}")
    kind = _ALIASES.get(engine.strip().lower())
    if kind is not None:
        return kind
    if "://" in engine:
        raise ValueError(
            f"engine={engine!r}: tideflow.load() takes an engine name ('serial' or "
            "'parallel') and its options as keywords (max_workers=4); engine URIs are "
            "TaskFlow's spelling, accepted by taskflow.engines.load()"
        )
    hint = closest(engine, sorted(_ALIASES))
    if "worker" in engine.lower():
        hint += (
            "TaskFlow's worker-based engine is not available in tideflow; engine='parallel' "
            "runs atoms on a pool of threads. "
        )
    raise NotFoundError(f"unknown engine {engine!r}: {hint}choose one of {sorted(ENGINE_KINDS)}")


def _as_backend(backend: Any) -> Any:
    """A store object for ``backend``: URLs such as 'sqlite:///runs.db' are opened here."""
    if isinstance(backend, str):
        return connect(backend)
    return backend


def connect(url: str, **options: Any) -> Any:
    """Open the store at ``url``: ``'sqlite:///runs.db'``, ``'postgresql://...'``, ...

    Pass the result as ``backend=`` to :func:`load`, :func:`run` or :func:`resume`, or
    a URL there directly. Options are the store's (``codec='pickle'``,
    ``synchronous='FULL'`` for SQLite, ...): see :mod:`tideflow.persistence`.
    """
    from tideflow import persistence  # noqa: PLC0415  # the registry, when asked for

    return persistence.connect(url, **options)


def resume(
    run_id: str, backend: Any, store: Mapping[str, Any] | None = None, **options: Any
) -> dict[str, Any]:
    """Finish the run recorded as flow record ``run_id`` in ``backend``; return its values.

    The flow is rebuilt from the factory recorded by :func:`load_from_factory`. Atoms
    recorded SUCCESS are not run again; atoms caught running run again; a run caught
    reverting goes on reverting; a finished run is reported, never run again: a run that
    succeeded returns its values, one that was reverted raises what made it revert.
    """
    store_backend = _as_backend(backend)
    conn = store_backend.get_connection()
    try:
        flow_detail = conn.get_flow_details(run_id)
    finally:
        conn.close()
    engine = load_from_detail(flow_detail, store, backend=store_backend, **options)
    if flow_detail.state is FlowState.REVERTED:
        # finished by reverting: report it as run() did, rather than start it over
        Failure.reraise_if_any([d.failure for d in flow_detail if d.failure is not None])
    else:
        engine.run()
    return engine.storage.fetch_all()


def load(
    flow: Flow | Atom,
    store: Mapping[str, Any] | None = None,
    *,
    engine: str = "serial",
    executor: SubmitExecutor | str | None = None,
    max_workers: int | None = None,
    backend: Any | None = None,
    book: LogBook | None = None,
    flow_detail: FlowDetail | None = None,
    defer_reverts: bool = False,
    never_resolve: bool = False,
    fence: tuple[str, int] | None = None,
) -> Engine:
    """Make an engine for ``flow``; ``store`` gives the values its atoms may require.

    ``engine`` is ``"serial"`` (atoms run one at a time on the calling thread) or
    ``"parallel"`` (ready atoms run at once on ``executor``: ``"threads"``, the
    default, a pool of ``max_workers`` threads; ``"processes"``; ``"asyncio"``
    (coroutines on an event loop, other atoms on threads); any name registered with
    :func:`tideflow.executors.register_executor`; a ``concurrent.futures`` executor or
    anything with ``submit()``, used as given and never shut down; or a
    ``distributed.Client``).
    ``backend`` keeps the run's records (a store object, or a URL such as
    ``"memory://"``); ``flow_detail`` resumes one. Options are checked here: an option
    the chosen engine would ignore is an error. ``defer_reverts`` and ``never_resolve``
    change how failures are resolved (``docs/failure-resolution.md``): a retry
    controller's REVERT always defers to the enclosing one, or no failure is resolved
    at all (the run stops FAILURE, nothing reverted). ``fence=(job.uuid, job.token)``
    runs under a job board's claim: a newer claim of the job takes the run's record
    over, after which this engine's writes are refused (``RunOwnedError``) and it stops
    (``docs/jobs.md``).
    """
    kind = _engine_kind(engine)
    if isinstance(executor, str):
        resolve_executor(executor)  # an unknown name is refused first, with the choices
        if kind == "serial":
            raise ValueError(
                f"executor={executor!r} would be ignored: the serial engine runs every atom "
                "on the calling thread; pass engine='parallel' to run atoms there"
            )
    return Engine(
        _as_flow(flow),
        store=store,
        backend=_as_backend(backend),
        book=book,
        flow_detail=flow_detail,
        kind=kind,
        executor=executor,
        max_workers=max_workers,
        defer_reverts=defer_reverts,
        never_resolve=never_resolve,
        fence=fence,
    )


def run(
    flow: Flow | Atom, store: Mapping[str, Any] | None = None, **options: Any
) -> dict[str, Any]:
    """Load and run ``flow``; return every named value (store values and results)."""
    engine = load(flow, store, **options)
    engine.run()
    return engine.storage.fetch_all()


async def run_async(
    flow: Flow | Atom, store: Mapping[str, Any] | None = None, **options: Any
) -> dict[str, Any]:
    """Load and run ``flow`` from a coroutine, without blocking the event loop.

    As :func:`run`, with ``engine='parallel', executor='asyncio'`` unless ``engine`` is
    given: async atoms run on the caller's loop, as many at once as are ready, others on
    a thread pool. Cancelling the awaiting task suspends the run (running atoms finish
    and are recorded); a later run of the same record finishes it.
    """
    if "engine" not in options:
        options["engine"] = "parallel"
        options.setdefault("executor", "asyncio")
    engine = load(flow, store, **options)
    await engine.run_async()
    return engine.storage.fetch_all()


def _factory_name(factory: Callable[..., Flow]) -> str:
    name = callable_name(factory)
    if "<" in name or "." not in name:
        raise ValueError(
            f"flow factory {factory!r} is not importable by name ({name}); "
            "use a module-level function"
        )
    return name


def _import_factory(name: str) -> Callable[..., Flow]:
    return _resolve_factory(name)[0]


def _resolve_factory(name: str) -> tuple[Callable[..., Flow], list[str]]:
    """The factory a dotted name leads to, and the attribute names it went through
    below its module: the longest importable module prefix whose attributes resolve."""
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            obj: Any = importlib.import_module(module_name)
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr, None)
            if obj is None:
                break
        if callable(obj):
            return obj, parts[cut:]
    raise NotFoundError(f"flow factory {name!r} cannot be imported; is its module on sys.path?")


def save_factory_details(
    flow_detail: FlowDetail,
    flow_factory: Callable[..., Flow],
    factory_args: Sequence[Any] | None,
    factory_kwargs: Mapping[str, Any] | None,
    backend: Any | None = None,
) -> None:
    """Record in ``flow_detail`` how to rebuild its flow: the factory's name and arguments."""
    flow_detail.meta["factory"] = {
        "name": _factory_name(flow_factory),
        "args": list(factory_args or ()),
        "kwargs": dict(factory_kwargs or {}),
    }
    if backend is not None:
        conn = backend.get_connection()
        try:
            conn.update_flow_details(flow_detail)
        finally:
            conn.close()


def load_from_factory(
    flow_factory: Callable[..., Flow],
    factory_args: Sequence[Any] | None = None,
    factory_kwargs: Mapping[str, Any] | None = None,
    store: Mapping[str, Any] | None = None,
    book: LogBook | None = None,
    backend: Any | None = None,
    **options: Any,
) -> Engine:
    """Build the flow with ``flow_factory`` and load it, recording the factory for resumption."""
    if not callable(flow_factory):
        raise TypeError(
            f"load_from_factory() takes a function that builds the flow, got "
            f"{describe(flow_factory)}"
        )
    flow = flow_factory(*(factory_args or ()), **(factory_kwargs or {}))
    if not isinstance(flow, Flow):
        raise TypeError(
            f"flow factory {callable_name(flow_factory)} must return a flow, returned "
            f"{describe(flow)}"
        )
    flow_detail = FlowDetail(flow.name)
    save_factory_details(flow_detail, flow_factory, factory_args, factory_kwargs)
    book = book if book is not None else LogBook("tmp")
    book.add(flow_detail)
    backend = _as_backend(backend)
    if backend is not None:
        conn = backend.get_connection()
        try:
            conn.save_logbook(book)
        finally:
            conn.close()
    return load(flow, store, book=book, backend=backend, flow_detail=flow_detail, **options)


def flow_from_detail(flow_detail: FlowDetail) -> Flow:
    """Rebuild the flow a record was made for, from the factory recorded in it."""
    if not isinstance(flow_detail, FlowDetail):
        raise TypeError(
            f"load_from_detail() takes the FlowDetail record of a run (for instance from "
            f"book.find(uuid) or the store), got {describe(flow_detail)}"
        )
    factory = flow_detail.meta.get("factory")
    if not factory:
        raise ValueError(
            f"cannot rebuild the flow of record {flow_detail.name!r} ({flow_detail.uuid}): "
            "no factory was recorded; load it with load_from_factory()"
        )
    make = _import_factory(factory["name"])
    return make(*factory.get("args", ()), **factory.get("kwargs", {}))


def load_from_detail(
    flow_detail: FlowDetail,
    store: Mapping[str, Any] | None = None,
    backend: Any | None = None,
    **options: Any,
) -> Engine:
    """Load the flow a record was made for, to resume (or inspect) that run."""
    return load(
        flow_from_detail(flow_detail), store, backend=backend, flow_detail=flow_detail, **options
    )
