"""Where atom code runs: the dispatcher seam, and the registry of executors by name.

The engine hands out :class:`Work` and collects :class:`Outcome` through a
:class:`Dispatcher`; workers only run user code and return a value or a
:class:`~tideflow.Failure`, never touching engine state. Each kind of executor is a
module of its own, made by a factory the registry finds by name:

===============  ==========================  =============================================
name (aliases)   module                      runs atom calls
===============  ==========================  =============================================
(serial engine)  ``executors/serial.py``     on the engine thread, at once
``threads``      ``executors/threads.py``    on a thread pool, or any object with submit()
(``thread``,
``threaded``)
``processes``    ``executors/processes.py``  on a pool of worker processes
(``process``)
``asyncio``      ``executors/aio.py``        coroutines on an event loop, the rest on threads
(``async``)
``dask``         ``executors/dask.py``       on a Dask cluster (pass a ``distributed.Client``)
===============  ==========================  =============================================

``load(engine='parallel', executor=...)`` takes a name, a ``concurrent.futures``
executor or anything with ``submit()`` (run by the threads dispatcher, or the processes
one for a ``ProcessPoolExecutor``; used as given, never shut down by the engine), or a
``distributed.Client`` (recognised by its type's module, so Dask is never imported
unless it is used). Third parties add executors with :func:`register_executor` or an
entry point in the group ``tideflow.executors`` whose value is ``"module:factory"``.
Factories given as ``"module:attr"`` are imported the first time they are asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable, Mapping
from contextvars import ContextVar
from types import CoroutineType
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeAlias

from tideflow._task import Atom, is_async_method
from tideflow.failure import Failure

if TYPE_CHECKING:
    import asyncio
    import concurrent.futures as cf

__all__ = [
    "CALLER_LOOP",
    "Awaiter",
    "Dispatcher",
    "DispatcherFactory",
    "EventSink",
    "ExecutorDispatcher",
    "Outcome",
    "SerialDispatcher",
    "SubmitExecutor",
    "ThreadDispatcher",
    "Work",
    "call_atom",
    "caller_loop",
    "executor_names",
    "factory_for",
    "make_dispatcher",
    "register_executor",
    "resolve_executor",
]


#: One atom call to make: ``(node, reverting, atom, kwargs)``. Plain tuples, not
#: named ones: one is made per atom call and named tuples cost several times more.
Work: TypeAlias = tuple[int, bool, Atom, dict[str, Any]]
#: What one atom call gave: ``(node, reverting, ok, value or Failure)``.
Outcome: TypeAlias = tuple[int, bool, bool, Any]
#: The engine's receiver of a task's own events (progress, custom events); callable from
#: any thread, always with the engine-side atom object.
EventSink: TypeAlias = Callable[[Atom, str, Mapping[str, Any]], None]
#: Runs a coroutine an atom's execute/revert handed back to its end; returns its value.
Awaiter: TypeAlias = Callable[[Coroutine[Any, Any, Any]], Any]


#: The event loop ``run_async()`` is awaited on, set in the engine thread it starts (and
#: so seen by the dispatchers that thread makes); unset in a plain ``run()``.
CALLER_LOOP: ContextVar[asyncio.AbstractEventLoop | None] = ContextVar(
    "tideflow_caller_loop", default=None
)


def caller_loop() -> asyncio.AbstractEventLoop | None:
    """The loop async atoms of this run go to: the one ``run_async()`` was awaited on.

    None in a plain ``run()``, and where this thread is that loop's own (a flow run
    synchronously from inside an async atom would otherwise wait for itself).
    """
    loop = CALLER_LOOP.get()
    if loop is None:
        return None
    import asyncio  # noqa: PLC0415  # loaded already: a loop exists

    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    return None if running is loop or loop.is_closed() else loop


def _await_alone(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine to its end on a loop of its own, in this thread.

    What a worker with no engine loop at hand (a process, a Dask worker) does with an
    ``async def`` atom.
    """
    import asyncio  # noqa: PLC0415  # only for async atoms

    return asyncio.run(coroutine)


def _finish(atom: Atom, reverting: bool, value: Any, awaiter: Awaiter | None) -> Any:
    """Run the coroutine an ``async def`` method handed back to its end; refuse others.

    A plain function that returns a coroutine is refused, not awaited: it says it does
    the work itself, and a coroutine it hands back is most likely a forgotten ``await``.
    """
    method = "revert" if reverting else "execute"
    if is_async_method(atom, method):
        return (awaiter or _await_alone)(value)
    value.close()  # never awaited, on purpose: say so quietly, not with a warning
    raise TypeError(
        f"atom {atom.name!r}: {method}() returned {type(value).__name__} object instead of "
        "a result, but it is not an async def: await it inside (or make the method "
        "async def, which the engine awaits)"
    )


def call_atom(
    node: int,
    reverting: bool,
    atom: Atom,
    kwargs: dict[str, Any],
    awaiter: Awaiter | None = None,
) -> Outcome:
    """Run one atom call with its pre/post hooks, turning an exception into a Failure.

    An ``async def`` execute/revert is run to its end by ``awaiter`` (the engine's event
    loop) before the post hook, or, without one, on a loop of its own in this thread.
    """
    try:
        if reverting:
            atom.pre_revert()
            try:
                value = atom.revert(**kwargs)
                if value.__class__ is CoroutineType:
                    value = _finish(atom, reverting, value, awaiter)
            finally:
                atom.post_revert()
        else:
            atom.pre_execute()
            try:
                value = atom.execute(**kwargs)
                if value.__class__ is CoroutineType:
                    value = _finish(atom, reverting, value, awaiter)
            finally:
                atom.post_execute()
    except Exception as exc:
        return (node, reverting, False, Failure.from_exception(exc))
    return (node, reverting, True, value)


class Dispatcher(Protocol):
    """Runs work somewhere and hands back outcomes to the engine thread."""

    def start(self, work: Work) -> None:
        """Begin ``work`` (a serial dispatcher finishes it before returning)."""

    def finish(self, outcome: Outcome) -> None:
        """Hand back an outcome decided without running anything (nothing to undo)."""

    def wait(self, timeout: float | None) -> list[Outcome]:
        """Outcomes finished since the last call; blocks for one if none is ready."""

    @property
    def in_flight(self) -> int:
        """How many started works have not been handed back yet."""

    def close(self) -> None:
        """Release what the dispatcher owns, without waiting for a pool to wind down."""


class SubmitExecutor(Protocol):
    """Anything with ``submit()`` returning a concurrent.futures Future."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]: ...


class DispatcherFactory(Protocol):
    """Makes the dispatcher of one run.

    ``executor`` is what the user passed: None for a named kind (make your own pool,
    of ``max_workers`` workers where that means something), or the user's object,
    which the dispatcher uses as given and never shuts down. ``sink`` is the engine's
    receiver of task events, for events raised where the engine cannot see them.
    """

    def __call__(self, executor: Any, *, max_workers: int | None, sink: EventSink) -> Dispatcher:
        """Return a dispatcher ready to start work."""
        ...


# -- the registry ------------------------------------------------------------------

#: name -> factory, or "module:attr" not imported yet
_FACTORIES: dict[str, DispatcherFactory | str] = {}
#: alias -> name (every name is its own alias)
_ALIASES: dict[str, str] = {}
_ENTRY_POINT_GROUP: Final = "tideflow.executors"
_entry_points_read = False


def register_executor(
    name: str, factory: DispatcherFactory | str, *, aliases: Iterable[str] = ()
) -> None:
    """Make ``executor=name`` (or any alias) run atom calls on ``factory``'s dispatchers.

    ``factory`` may be ``"module:attr"``, imported the first time the name is asked
    for. Registering a name again replaces its factory.
    """
    if not isinstance(name, str) or not name.strip():
        raise TypeError(f"register_executor() takes a name (str), got {name!r}")
    if not (callable(factory) or (isinstance(factory, str) and ":" in factory)):
        raise TypeError(
            f"register_executor({name!r}, ...) takes a dispatcher factory or its "
            f"'module:attr' path, got {factory!r}"
        )
    key = name.strip().lower()
    _FACTORIES[key] = factory
    _ALIASES[key] = key
    for alias in aliases:
        _ALIASES[alias.strip().lower()] = key


def _read_entry_points() -> None:
    """Register the executors third-party packages declare (once, when first needed)."""
    global _entry_points_read  # read once per process
    if _entry_points_read:
        return
    _entry_points_read = True
    from importlib.metadata import entry_points  # noqa: PLC0415  # only for unknown names

    for point in entry_points(group=_ENTRY_POINT_GROUP):
        if point.name.strip().lower() not in _FACTORIES:
            register_executor(point.name, point.value)


def executor_names() -> list[str]:
    """Every executor name ``load(executor=...)`` understands, aliases included, sorted."""
    _read_entry_points()
    return sorted(set(_ALIASES) - set(_BY_OBJECT_ONLY))


#: Executors chosen by the object passed, not by a name alone: what to pass instead.
_BY_OBJECT_ONLY: Final = {
    "dask": "the distributed.Client of the cluster to run on (e.g. "
    "executor=distributed.Client('tcp://scheduler:8786'))",
}


def _canonical(name: str) -> str:
    key = name.strip().lower()
    if key in _BY_OBJECT_ONLY:
        raise ValueError(
            f"executor={name!r} does not say which cluster to run on: pass {_BY_OBJECT_ONLY[key]}"
        )
    found = _ALIASES.get(key)
    if found is None:
        _read_entry_points()
        found = _ALIASES.get(key)
    if found is None:
        import difflib  # noqa: PLC0415  # only on error paths

        close = difflib.get_close_matches(key, list(_ALIASES), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(
            f"executor={name!r} is not an executor name; {hint}choose one of "
            f"{sorted(set(_FACTORIES) - set(_BY_OBJECT_ONLY))} (or their aliases "
            f"{sorted(set(_ALIASES) - set(_FACTORIES))}), "
            "or pass an object with submit() (a concurrent.futures or futurist executor) "
            "or a distributed.Client"
        )
    return found


def _is_dask_client(executor: object) -> bool:
    cls = type(executor)
    return cls.__module__.split(".")[0] == "distributed" and cls.__name__ == "Client"


def resolve_executor(executor: object) -> tuple[str, Any]:
    """The registered name that runs ``executor``, and the object the factory gets.

    ``executor`` is None (the threads default), a name, a ``distributed.Client``, a
    ``ProcessPoolExecutor`` or anything with ``submit()``. An unknown name is a
    ValueError naming the choices; an object of another kind a TypeError.
    """
    if executor is None:
        return "threads", None
    if isinstance(executor, str):
        return _canonical(executor), None
    if _is_dask_client(executor):
        return "dask", executor
    if not callable(getattr(executor, "submit", None)):
        raise TypeError(
            "executor= takes an object with submit() (a concurrent.futures or futurist "
            "executor), a distributed.Client or a name "
            f"({', '.join(repr(n) for n in sorted(set(_FACTORIES) - set(_BY_OBJECT_ONLY)))}), "
            f"got {_describe(executor)}"
        )
    import concurrent.futures as cf  # noqa: PLC0415  # loaded by any executor object

    if isinstance(executor, cf.ProcessPoolExecutor):
        return "processes", executor
    return "threads", executor


def _describe(value: object) -> str:
    text = repr(value)
    return f"{text if len(text) <= 80 else text[:77] + '...'} ({type(value).__name__})"


def _module_missing(name: str, path: str, exc: ImportError) -> ValueError:
    return ValueError(
        f"executor={name!r}: the {name} executor is not available in this version of "
        f"tideflow: its module {path.partition(':')[0]} cannot be imported ({exc}); use "
        "executor='threads' (or any object with submit(), such as a "
        "concurrent.futures.ThreadPoolExecutor) with engine='parallel'"
    )


def factory_for(name: str) -> DispatcherFactory:
    """The dispatcher factory registered as ``name`` (a name :func:`resolve_executor` gave).

    A ``"module:attr"`` factory is imported here; a module that cannot be imported is
    a ValueError saying which.
    """
    factory = _FACTORIES[name]
    if not isinstance(factory, str):
        return factory
    import importlib  # noqa: PLC0415  # a factory's first use

    module_name, _, attr = factory.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise _module_missing(name, factory, exc) from None  # the module itself is absent
        raise _module_missing(name, factory, exc) from exc  # something it needs is absent
    loaded = getattr(module, attr, None)
    if not callable(loaded):
        raise ValueError(
            f"executor={name!r}: {factory!r} names no dispatcher factory "
            f"({module_name} has no callable {attr!r})"
        )
    _FACTORIES[name] = loaded
    return loaded  # type: ignore[no-any-return]


def make_dispatcher(
    name: str, executor: Any, *, max_workers: int | None, sink: EventSink
) -> Dispatcher:
    """The dispatcher for one run on the executor registered as ``name``."""
    return factory_for(name)(executor, max_workers=max_workers, sink=sink)


register_executor(
    "threads", "tideflow.executors.threads:make_dispatcher", aliases=("thread", "threaded")
)
register_executor("processes", "tideflow.executors.processes:make_dispatcher", aliases=("process",))
register_executor("asyncio", "tideflow.executors.aio:make_dispatcher", aliases=("async",))
register_executor("dask", "tideflow.executors.dask:make_dispatcher")

# The two dispatchers every engine may need, importable from here as before (below the
# definitions above, which their modules import).
from tideflow.executors.serial import SerialDispatcher  # noqa: E402
from tideflow.executors.threads import ThreadDispatcher  # noqa: E402

#: The thread pool dispatcher's former name.
ExecutorDispatcher = ThreadDispatcher
