"""Fixtures for engine behaviour tests: engine kinds, a recording task, a notification log.

Every behaviour test that takes the ``engine_kind`` (or ``load``) fixture runs once per
kind in :data:`engine_support.ENGINE_KINDS`:

=============  ====================================================================
``serial``     ``engine='serial'``
``threads``    ``engine='parallel'``, ``executor='threads'`` (the default pool)
``processes``  ``engine='parallel'`` on one warm ``ProcessPoolExecutor`` (fork server)
               kept for the session: a pool per run would cost ~0.3 s of worker start-up
               per test; ``TIDEFLOW_TEST_FRESH_POOLS=1`` passes ``executor='processes'``
               instead, so every run makes (and drops) a pool of its own
``asyncio``    ``engine='parallel'``, ``executor='asyncio'``
``dask``       ``engine='parallel'`` on a ``distributed.Client`` of a two-worker
               ``LocalCluster`` (worker processes) started once for the session
=============  ====================================================================

``engine_kind`` is an :class:`~engine_support.EngineKind`: a string equal to the
``engine=`` name (``"serial"`` or ``"parallel"``) with the kind in ``.kind``. While a
test runs on a parallel kind, every ``tideflow.load`` / ``run`` / ``load_from_factory``
/ ``load_from_detail`` (and TaskFlow's ``engines.load``, which calls ``tideflow.load``)
that asks for ``engine='parallel'`` without an ``executor=`` gets the kind's executor, so
tests written as ``tideflow.run(flow, engine=engine_kind)`` run there too. An explicit
``executor=`` is left alone.

Skips, each with its reason in the ``-ra`` summary:

* a kind whose executor is not in the registry yet (its module cannot be imported):
  "executor X not available yet"; ``dask`` when ``distributed`` is not installed;
* on ``processes`` and ``dask`` (:data:`~engine_support.REMOTE_KINDS`), a test marked
  ``@pytest.mark.local_only("why")``: its tasks must run in this process (they change
  or read objects of this process: a list, the engine, a lock, a counter on the task;
  or the test asserts object identity across the call). ``local_only("why",
  on="processes")`` skips only there: task classes or functions defined inside the test
  cannot be sent by the standard pickle a process pool uses, but Dask's cloudpickle
  sends them by value.

Known gaps of an executor (:data:`KNOWN_GAPS`) are xfails, not run, with the reason.

Every kind runs every test it can by default: on this 2-core machine the engine_kind
tests take about 3 s each on serial, threads, processes and asyncio and about 14 s on
dask (4 s of them starting the cluster; each run there pays a few scheduler round
trips), so no subset is needed. ``TIDEFLOW_TEST_KINDS=serial,threads`` (a comma list)
deselects the other kinds, for a quick loop.

The ``journal`` of a test on a remote kind is kept in a file (``tmp_path``) that the
worker processes append to, so ``journal.executed()`` and the rest read the same on every
kind. :class:`~engine_support.Recorder` is a module-level class: it pickles by reference
and the workers import ``engine_support`` by name (this directory is on ``sys.path``).
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import importlib.util
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

import tideflow
from tideflow import _helpers, executors

# The resumable flow factories live beside this file and must be importable by name
# (``load_from_detail`` re-imports them, and worker processes import the task modules),
# whatever pytest's import mode.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from engine_support import (  # noqa: E402  # after the path is set
    ENGINE_KINDS,
    REMOTE_KINDS,
    EngineKind,
    Journal,
    Notifications,
    Recorder,
)

#: ``max_workers`` the ``load`` fixture gives a parallel engine (a test may pass its own).
WORKERS = 4


def _selected_kinds() -> tuple[str, ...]:
    chosen = os.environ.get("TIDEFLOW_TEST_KINDS", "").strip()
    if not chosen:
        return ENGINE_KINDS
    kinds = tuple(k.strip() for k in chosen.split(",") if k.strip())
    unknown = sorted(set(kinds) - set(ENGINE_KINDS))
    if unknown:
        raise pytest.UsageError(
            f"TIDEFLOW_TEST_KINDS names {unknown}: choose among {list(ENGINE_KINDS)}"
        )
    return kinds


@functools.cache
def unavailable(kind: str) -> str | None:
    """Why ``kind`` cannot run here, or None: asks the executor registry."""
    if kind == "serial":
        return None
    if kind == "dask" and importlib.util.find_spec("distributed") is None:
        return "dask: distributed is not installed (pip install 'tideflow[dask]')"
    try:
        executors.factory_for(kind)  # each kind is registered under its own name
    except (KeyError, ValueError):  # not registered; its module cannot be imported
        return f"executor {kind} not available yet"
    return None


#: Behaviour an executor does not have yet: ``(test file, test name) -> {kind: why}``.
#: Each is an xfail that is not run (it would disturb the shared executor); remove the
#: entry when the executor gains the behaviour.
KNOWN_GAPS: dict[tuple[str, str], dict[str, str]] = {
    ("test_failures.py", "test_base_exceptions_are_not_captured"): {
        "dask": "dask executor: a KeyboardInterrupt raised by a task kills its Dask worker "
        "(retried on others until KilledWorker) instead of coming back to run()",
    },
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the kinds ``TIDEFLOW_TEST_KINDS`` leaves out; mark the known gaps."""
    kinds = _selected_kinds()
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        kind = callspec.params.get("engine_kind") if callspec is not None else None
        if not (str(item.path).startswith(_HERE + os.sep) and kind in ENGINE_KINDS):
            kept.append(item)
            continue
        if kind not in kinds:
            dropped.append(item)
            continue
        kept.append(item)
        gap = KNOWN_GAPS.get((item.path.name, getattr(item, "originalname", item.name)), {})
        if kind in gap:
            item.add_marker(pytest.mark.xfail(reason=gap[kind], run=False))
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


# -- executors shared by the session ---------------------------------------------------


class _WarmPool:
    """One fork-server process pool for the session, replaced when a test broke it."""

    def __init__(self) -> None:
        self._pool: cf.ProcessPoolExecutor | None = None

    def get(self) -> cf.ProcessPoolExecutor:
        pool = self._pool
        if pool is None or getattr(pool, "_broken", False):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
            # made lazily, so the workers see sys.path with every test directory on it
            context = multiprocessing.get_context("forkserver")
            pool = self._pool = cf.ProcessPoolExecutor(WORKERS, mp_context=context)
        return pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


@pytest.fixture(scope="session")
def _warm_process_pool() -> Iterator[_WarmPool]:
    holder = _WarmPool()
    yield holder
    holder.close()


@pytest.fixture(scope="session")
def dask_client() -> Iterator[Any]:
    """A client of a two-worker ``LocalCluster`` (worker processes, two threads each).

    Its HTTP server takes a free port (``dashboard_address=None`` still binds 8787, which
    another cluster of this or another session may hold: a warning, an error here).
    """
    distributed = pytest.importorskip("distributed", reason="distributed is not installed")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=2, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def _executor_of(kind: str, request: pytest.FixtureRequest) -> Any:
    """What ``executor=`` a parallel engine of ``kind`` gets."""
    if kind == "processes":
        if os.environ.get("TIDEFLOW_TEST_FRESH_POOLS"):
            return "processes"
        return request.getfixturevalue("_warm_process_pool").get()
    if kind == "dask":
        return request.getfixturevalue("dask_client")
    return kind


def _bind_executor(monkeypatch: pytest.MonkeyPatch, executor: Any) -> None:
    """Make ``engine='parallel'`` without an executor run on ``executor`` in this test."""
    real_load = _helpers.load

    @functools.wraps(real_load)
    def load(
        flow: Any, store: Mapping[str, Any] | None = None, *, engine: Any = "serial", **options: Any
    ) -> tideflow.Engine:
        if (
            options.get("executor") is None
            and isinstance(engine, str)
            and engine.strip().lower() == "parallel"
        ):
            options["executor"] = executor
        return real_load(flow, store, engine=engine, **options)

    # run(), load_from_factory() and load_from_detail() call the module's load()
    monkeypatch.setattr(_helpers, "load", load)
    monkeypatch.setattr(tideflow, "load", load)


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture(params=ENGINE_KINDS)
def engine_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> EngineKind:
    """Each engine kind in turn (skipped where it cannot run; see the module docstring)."""
    kind = EngineKind(str(request.param))
    reason = unavailable(kind.kind)
    if reason is not None:
        pytest.skip(reason)
    if kind.remote:
        for marker in request.node.iter_markers("local_only"):
            on = marker.kwargs.get("on", REMOTE_KINDS)
            if kind.kind in ((on,) if isinstance(on, str) else on):
                why = marker.args[0] if marker.args else "(no reason given)"
                pytest.skip(f"local only, not on {kind.kind}: {why}")
    if kind != "serial":
        kind.executor = _executor_of(kind.kind, request)
        _bind_executor(monkeypatch, kind.executor)
    return kind


@pytest.fixture
def load(engine_kind: EngineKind) -> Callable[..., tideflow.Engine]:
    """``tideflow.load`` bound to the engine kind under test."""

    def _load(
        flow: tideflow.Flow | tideflow.Atom,
        store: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> tideflow.Engine:
        if engine_kind == "parallel":
            options.setdefault("max_workers", WORKERS)
        return tideflow.load(flow, store=store, engine=engine_kind, **options)

    return _load


def _remote(request: pytest.FixtureRequest) -> bool:
    callspec = getattr(request.node, "callspec", None)
    kind = callspec.params.get("engine_kind") if callspec is not None else None
    return isinstance(kind, str) and kind in REMOTE_KINDS


@pytest.fixture
def journal(request: pytest.FixtureRequest) -> Journal:
    """A fresh journal: in memory, or in a file the workers append to on remote kinds."""
    if _remote(request):
        tmp_path: Path = request.getfixturevalue("tmp_path")
        return Journal(tmp_path / "journal")
    return Journal()


@pytest.fixture
def make(journal: Journal) -> Callable[..., Recorder]:
    """Make a :class:`Recorder` writing to the test's journal: ``make("a", fail=...)``."""

    def _make(name: str, **options: Any) -> Recorder:
        return Recorder(name, journal, **options)

    return _make


@pytest.fixture
def watch() -> Callable[[tideflow.Engine], Notifications]:
    """Start recording an engine's notifications: ``notes = watch(engine)``."""
    return Notifications


@pytest.fixture
def states() -> Callable[[tideflow.Engine, Iterable[str]], dict[str, str]]:
    """``states(engine, names)`` -> ``{name: state}`` as plain strings."""

    def _states(engine: tideflow.Engine, names: Iterable[str]) -> dict[str, str]:
        return {name: str(engine.storage.get_atom_state(name)) for name in names}

    return _states
