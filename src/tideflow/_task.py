"""Atoms and tasks: what a flow schedules, and how their arguments are named.

An atom's requirements come from its ``execute`` signature (parameters without a
default are required, with a default optional), plus ``requires=``, renamed by
``rebind=``. Its result is published under the names of ``provides=`` (or the
class's ``default_provides``): a string names the whole result, a tuple or list
names its items by position, a set names them by key.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar, TypeAlias

from tideflow._log import logger
from tideflow._notifier import RestrictedNotifier
from tideflow.errors import CompilationError, InvalidArgumentError

__all__ = [
    "Atom",
    "FunctorTask",
    "MapFunctorTask",
    "ReduceFunctorTask",
    "Task",
    "TaskFactory",
    "task",
]

_LOGGER = "tideflow.task"

Provides: TypeAlias = str | tuple[str, ...] | list[str] | set[str] | frozenset[str] | None
Rebind: TypeAlias = Mapping[str, str] | Iterable[str] | None
Requires: TypeAlias = str | Iterable[str] | None
#: Where a provided name sits in a result: None = the whole result, int = index, str = key.
Index: TypeAlias = int | str | None
EventSink: TypeAlias = Callable[["Atom", str, Mapping[str, Any]], None]

_EMPTY_MAP: Mapping[str, Any] = MappingProxyType({})
_EMPTY: frozenset[str] = frozenset()
#: Parameter names the engine supplies to ``revert`` itself.
REVERT_RESULT = "result"
REVERT_FLOW_FAILURES = "flow_failures"


class _Signature:
    """What a callable's signature says about its arguments (computed once per callable)."""

    __slots__ = ("has_var_kwargs", "optional", "required")

    def __init__(self, func: Callable[..., Any], skip_first: bool) -> None:
        import inspect  # noqa: PLC0415  # deferred: slow to import, needed once per class

        params = list(inspect.signature(func).parameters.values())
        if (
            skip_first
            and params
            and params[0].kind
            in (
                inspect.Parameter.POSITIONAL_ONLY,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
            )
        ):
            params = params[1:]
        positional_only = [p.name for p in params if p.kind is inspect.Parameter.POSITIONAL_ONLY]
        if positional_only:
            # the engine passes every argument by name
            raise TypeError(
                f"{callable_name(func)}() takes {positional_only} positionally only; tideflow "
                "passes arguments by name: remove the '/' from its signature"
            )
        named = [
            p
            for p in params
            if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        ]
        self.required = tuple(p.name for p in named if p.default is inspect.Parameter.empty)
        self.optional = tuple(p.name for p in named if p.default is not inspect.Parameter.empty)
        self.has_var_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


@functools.lru_cache(maxsize=4096)
def _signature(func: Callable[..., Any], skip_first: bool) -> _Signature:
    return _Signature(func, skip_first)


_UNBOUND: dict[tuple[type, str], tuple[Callable[..., Any], bool]] = {}


def _unbound(cls: type, method: str) -> tuple[Callable[..., Any], bool]:
    """The function behind ``cls.method`` and whether its first parameter is the instance.

    Cached per class: tasks built with ``requires=`` or ``rebind=`` ask once each.
    """
    found = _UNBOUND.get((cls, method))
    if found is not None:
        return found
    import inspect  # noqa: PLC0415  # deferred: slow to import, needed once per class

    attr = inspect.getattr_static(cls, method)
    if isinstance(attr, staticmethod):
        found = (attr.__func__, False)
    elif isinstance(attr, classmethod):
        found = (attr.__func__, True)
    else:
        found = (getattr(cls, method), True)
    _UNBOUND[(cls, method)] = found
    return found


def _as_names(value: Requires, what: str, owner: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    names = tuple(value)
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"{owner}: {what} must be names (str), got {name!r}")
    return names


_CALL_KINDS: dict[object, str | None] = {}
_COROUTINE = "an async def (coroutine) function"


def _call_kind(func: Callable[..., Any]) -> str | None:
    """Say whether ``func`` is a coroutine, async generator or generator function."""
    try:
        return _CALL_KINDS[func]
    except KeyError:
        pass
    except TypeError:  # an unhashable callable object: look every time
        return _inspect_call_kind(func)
    kind = _CALL_KINDS[func] = _inspect_call_kind(func)
    return kind


def _inspect_call_kind(func: Callable[..., Any]) -> str | None:
    import inspect  # noqa: PLC0415  # deferred: slow to import, needed once per callable

    if inspect.iscoroutinefunction(func):
        return _COROUTINE
    if inspect.isasyncgenfunction(func):
        return "an async generator function"
    if inspect.isgeneratorfunction(func):
        return "a generator function"
    return None


def refuse_undrivable(atoms: Sequence[Atom | None]) -> None:
    """Refuse atoms whose execute or revert the engines cannot drive: generators.

    A generator or async generator ``execute``/``revert`` would hand back an unfinished
    object instead of doing its work; storing that as the result would hide the
    mistake, so it is refused before anything runs. An ``async def`` one is awaited.
    """
    # one look per class (a set of types: C speed), and per instance only where the
    # callables are the instance's own (functor tasks)
    suspects: set[type] = set()
    for cls in set(map(type, atoms)):
        if not issubclass(cls, Atom):
            continue  # flow start/end nodes have no atom
        if cls._mappings_cacheable is not Atom._mappings_cacheable or any(
            _call_kind(_unbound(cls, method)[0]) not in _DRIVABLE for method in _METHODS
        ):
            suspects.add(cls)
    if suspects:
        for atom in atoms:
            if atom is not None and type(atom) in suspects:
                _refuse_one(atom)


_METHODS = ("execute", "revert")
#: What ``_call_kind`` says of methods the engines can drive.
_DRIVABLE = (None, _COROUTINE)


def is_async_method(atom: Atom, method: str) -> bool:
    """Say whether ``atom``'s ``method`` (execute or revert) is an ``async def``."""
    return _call_kind(atom._callable(method)[0]) == _COROUTINE


def _refuse_one(atom: Atom) -> None:
    for method in _METHODS:
        func = atom._callable(method)[0]
        kind = _call_kind(func)
        if kind in _DRIVABLE:
            continue
        fix = (
            "return a list instead of yielding"
            if kind == "a generator function"
            else "make it an async def that returns a list (async def methods are awaited)"
        )
        raise CompilationError(
            f"atom {atom.name!r}: its {method}() is {kind} ({callable_name(func)}), which "
            "no engine can drive: calling it would hand back an unfinished object instead "
            f"of doing the work; {fix}"
        )


def never_initialised(obj: object) -> str:
    """The message for an atom whose ``__init__`` did not call ``super().__init__()``."""
    return (
        f"{type(obj).__qualname__} was never initialised: its __init__ must call "
        "super().__init__(...) (which sets its name, requirements and provided names)"
    )


class ArgMapping:
    """How one callable's parameters are filled: parameter name -> symbol name."""

    __slots__ = ("mapping", "optional", "required")

    def __init__(
        self, mapping: Mapping[str, str], required: frozenset[str], optional: frozenset[str]
    ) -> None:
        #: parameter name -> the symbol (store key or provided name) it is filled from
        self.mapping = mapping
        #: symbols that must be available
        self.required = required
        #: symbols used when available
        self.optional = optional


_NO_ARGS = ArgMapping(_EMPTY_MAP, _EMPTY, _EMPTY)


def build_arg_mapping(
    owner: str,
    sig: _Signature,
    *,
    requires: Requires = None,
    rebind: Rebind = None,
    auto_extract: bool = True,
    ignore: Iterable[str] = (),
) -> ArgMapping:
    """Work out which symbol fills each parameter of a callable with signature ``sig``."""
    ignored = set(ignore)
    required = [a for a in sig.required if a not in ignored] if auto_extract else []
    optional = [a for a in sig.optional if a not in ignored] if auto_extract else []
    for name in _as_names(requires, "requires", owner):
        if name not in required:
            required.append(name)
            if name in optional:
                optional.remove(name)
    renamed: dict[str, str]
    if rebind is None:
        renamed = {}
    elif isinstance(rebind, Mapping):
        renamed = dict(rebind)
    else:
        names = _as_names(rebind, "rebind", owner)
        renamed = dict(zip(required, names, strict=False))
        for extra in names[len(required) :]:
            renamed[extra] = extra
    for arg, symbol in renamed.items():
        if not isinstance(arg, str) or not isinstance(symbol, str):
            raise TypeError(f"{owner}: rebind must map names to names, got {arg!r}: {symbol!r}")
        if arg in optional:
            # a renamed optional parameter is asked for on purpose: it becomes required
            optional.remove(arg)
            required.append(arg)
    for arg in renamed:
        if arg not in required:
            required.append(arg)
    declared = {*sig.required, *sig.optional}
    extras = [a for a in required if a not in declared]
    if extras and not sig.has_var_kwargs:
        raise ValueError(
            f"{owner}: {sorted(extras)} are not parameters of its callable, which takes no "
            "**kwargs; remove them from requires=/rebind= or add the parameters"
        )
    if not required and not optional:
        return _NO_ARGS
    mapping = {arg: renamed.get(arg, arg) for arg in [*required, *optional]}
    return ArgMapping(
        mapping,
        frozenset(mapping[a] for a in required),
        frozenset(mapping[a] for a in optional),
    )


def build_save_as(provides: Provides, owner: str) -> Mapping[str, Index]:
    """Map each provided name to where it sits in the result."""
    if provides is None:
        return _EMPTY_MAP
    if isinstance(provides, str):
        return {provides: None}
    if isinstance(provides, set | frozenset):
        names = _as_names(sorted(provides), "provides", owner)
        return {name: name for name in names}
    if isinstance(provides, tuple | list):
        names = _as_names(provides, "provides", owner)
        return {name: i for i, name in enumerate(names)}
    raise TypeError(
        f"{owner}: provides must be a name, a tuple/list of names or a set of names, "
        f"got {type(provides).__name__}"
    )


_CLASS_MAPPINGS: dict[type, tuple[ArgMapping, ArgMapping]] = {}


def _default_name(obj: object) -> str:
    """An atom's default name: its class's dotted name."""
    cls = type(obj)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def callable_name(func: Callable[..., Any]) -> str:
    """The dotted name of a function, method or callable object."""
    module = getattr(func, "__module__", None) or ""
    qualname = getattr(func, "__qualname__", None) or type(func).__qualname__
    return f"{module}.{qualname}" if module and module != "builtins" else qualname


class Atom:
    """Anything a flow schedules: it has a name, requirements and provided names.

    Subclasses say how to run (``execute``) and undo (``revert``) their work.
    Attributes left at their class defaults cost nothing per instance, which
    keeps flows of 100,000 atoms small.
    """

    #: Names the result is published under when ``provides`` is not given.
    default_provides: ClassVar[Provides] = None
    #: Extra symbols required beyond the signature (class-level default).
    default_requires: ClassVar[Requires] = None

    name: str
    version: tuple[int, ...] = (1, 0)
    #: Among atoms ready at the same moment, higher priorities start first (default 0).
    priority: int = 0
    inject: Mapping[str, Any] | None = None
    save_as: Mapping[str, Index] = _EMPTY_MAP
    #: Whether ``provides`` names items of the result (a tuple/list or a set of names).
    _indexed_provides: bool = False
    _args: ArgMapping = _NO_ARGS
    _revert_args: ArgMapping = _NO_ARGS
    #: True for retry controllers, which the engine schedules differently.
    _is_retry: ClassVar[bool] = False
    #: Set by the engine while the atom runs: receives the atom's own events.
    _event_sink: EventSink | None = None
    #: The atom's own notifier, made on first use (tasks have one).
    _notifier: RestrictedNotifier | None = None

    def __init__(
        self,
        name: str | None = None,
        provides: Provides = None,
        requires: Requires = None,
        auto_extract: bool = True,
        rebind: Rebind = None,
        inject: Mapping[str, Any] | None = None,
        ignore_list: Iterable[str] | None = None,
        revert_rebind: Rebind = None,
        revert_requires: Requires = None,
        *,
        priority: int = 0,
    ) -> None:
        if type(self).execute is Atom.execute:
            raise TypeError(
                f"{type(self).__qualname__} has no execute(): a task says what it does by "
                "defining execute() (subclass tideflow.Task and define it, or use "
                "tideflow.FunctorTask / @tideflow.task for a plain function)"
            )
        if name is None:
            name = _default_name(self)
        elif not isinstance(name, str):
            raise TypeError(f"an atom name must be a str, got {type(name).__name__}")
        self.name = name
        if priority:
            if isinstance(priority, bool) or not isinstance(priority, int):
                raise TypeError(
                    f"atom {name!r}: priority= takes an int (higher starts first among atoms "
                    f"ready at the same time), got {priority!r} ({type(priority).__name__})"
                )
            self.priority = priority
        if provides is None:
            provides = self.default_provides
        if provides is not None:
            self.save_as = build_save_as(provides, f"atom {name!r}")
            if not isinstance(provides, str) and self.save_as:
                self._indexed_provides = True  # a tuple/list by position, a set by key
        if inject is not None:
            if not isinstance(inject, Mapping):
                raise TypeError(
                    f"atom {name!r}: inject= takes a mapping of names to values, got "
                    f"{type(inject).__name__}"
                )
            for key in inject:
                if not isinstance(key, str):
                    raise TypeError(
                        f"atom {name!r}: inject= keys are the names its arguments are filled "
                        f"from, so they must be str; got {key!r} ({type(key).__name__})"
                    )
            self.inject = dict(inject)
        if requires is None:
            requires = self.default_requires
        if (
            requires is None
            and rebind is None
            and auto_extract
            and ignore_list is None
            and revert_rebind is None
            and revert_requires is None
            and self._mappings_cacheable()
        ):
            # the common case: everything comes from the signatures, the same for every
            # instance of the class, so work it out once per class
            cached = _CLASS_MAPPINGS.get(type(self))
            if cached is None:
                self._build_mappings(None, None, True, None, None, None)
                _CLASS_MAPPINGS[type(self)] = (self._args, self._revert_args)
            else:
                args, revert_args = cached
                if args is not _NO_ARGS:
                    self._args = args
                if revert_args is not _NO_ARGS:
                    self._revert_args = revert_args
        else:
            self._build_mappings(
                requires, rebind, auto_extract, ignore_list, revert_rebind, revert_requires
            )
        if self.inject:
            self._check_inject(self.inject)

    def _check_inject(self, inject: Mapping[str, Any]) -> None:
        """Refuse an ``inject=`` key that fills none of the atom's arguments (a typo)."""
        taken = {*self._args.mapping.values(), *self._revert_args.mapping.values()}
        unused = sorted(key for key in inject if key not in taken)
        if unused:
            raise ValueError(
                f"atom {self.name!r}: inject= gives {unused}, which none of its arguments "
                f"is filled from; it takes {sorted(taken)} (names after rebind=). Remove "
                "the key, or add the argument to execute() or requires="
            )

    def _mappings_cacheable(self) -> bool:
        """Say whether argument mappings depend on the class alone (not on the instance)."""
        return True

    def _build_mappings(
        self,
        requires: Requires,
        rebind: Rebind,
        auto_extract: bool,
        ignore_list: Iterable[str] | None,
        revert_rebind: Rebind,
        revert_requires: Requires,
    ) -> None:
        owner = f"atom {self.name!r}"
        execute, skip = self._callable("execute")
        args = build_arg_mapping(
            owner,
            _signature(execute, skip),
            requires=requires,
            rebind=rebind,
            auto_extract=auto_extract,
            ignore=ignore_list or (),
        )
        if args is not _NO_ARGS:
            self._args = args
        revert, skip = self._callable("revert")
        revert_sig = _signature(revert, skip)
        if revert_rebind is None and isinstance(rebind, Mapping):
            # execute's renames carry over to the parameters revert shares with it
            params = {*revert_sig.required, *revert_sig.optional}
            revert_rebind = {a: s for a, s in rebind.items() if a in params}
        elif revert_rebind is None and rebind is not None:
            revert_rebind = list(_as_names(rebind, "rebind", owner))
            revert_rebind = revert_rebind[: len(revert_sig.required)]
        revert_args = build_arg_mapping(
            owner,
            revert_sig,
            requires=revert_requires,
            rebind=revert_rebind,
            auto_extract=auto_extract,
            ignore=[*(ignore_list or ()), REVERT_RESULT, REVERT_FLOW_FAILURES],
        )
        if revert_args is not _NO_ARGS:
            self._revert_args = revert_args

    def _callable(self, method: str) -> tuple[Callable[..., Any], bool]:
        """The function behind ``method`` and whether it takes the instance first."""
        return _unbound(type(self), method)

    # -- what the flow and the compiler read -------------------------------------------

    @property
    def rebind(self) -> Mapping[str, str]:
        """Parameter name -> symbol it is filled from, for ``execute``."""
        return self._args.mapping

    @property
    def revert_rebind(self) -> Mapping[str, str]:
        """Parameter name -> symbol it is filled from, for ``revert``."""
        return self._revert_args.mapping

    @property
    def requires(self) -> frozenset[str]:
        """Symbols that must be available to run (``execute`` and ``revert``), less injected."""
        needed = self._args.required | self._revert_args.required
        if self.inject:
            needed = needed - self.inject.keys()
        return needed

    @property
    def optional(self) -> frozenset[str]:
        """Symbols passed to ``execute`` when available."""
        return self._args.optional

    @property
    def revert_requires(self) -> frozenset[str]:
        """Symbols that must be available for ``revert``."""
        return self._revert_args.required

    @property
    def revert_optional(self) -> frozenset[str]:
        """Symbols passed to ``revert`` when available."""
        return self._revert_args.optional

    @property
    def provides(self) -> frozenset[str]:
        """Names this atom's result is published under."""
        return frozenset(self.save_as)

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        """Do the atom's work; the return value is its result."""
        raise NotImplementedError(f"{type(self).__name__} must implement execute()")

    def revert(self, *args: Any, **kwargs: Any) -> Any:
        """Undo the atom's work (the default does nothing)."""

    def pre_execute(self) -> None:
        """Called just before ``execute``."""

    def post_execute(self) -> None:
        """Called just after ``execute`` (whether it succeeded or not)."""

    def pre_revert(self) -> None:
        """Called just before ``revert``."""

    def post_revert(self) -> None:
        """Called just after ``revert``."""

    def __str__(self) -> str:
        return f'"{self.name}=={".".join(map(str, self.version))}"'

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.{type(self).__qualname__} {self}>"

    def __getstate__(self) -> object:
        """What a pickled (or copied) atom keeps: everything but what ties it to an engine.

        The event sink (a bound method of the engine running it) and the atom's own
        notifier (its listeners live in this process) stay behind, so an atom sent to a
        worker process or another machine carries nothing of the engine.
        """
        state = super().__getstate__()
        slots = None
        if isinstance(state, tuple):  # a subclass with __slots__: (dict or None, slots)
            state, slots = state
        if isinstance(state, dict) and ("_event_sink" in state or "_notifier" in state):
            state = {k: v for k, v in state.items() if k not in _ENGINE_ONLY}
        return state if slots is None else (state, slots)

    def __setstate__(self, state: object) -> None:
        """Restore what :meth:`__getstate__` kept (the sink and notifier start empty)."""
        if isinstance(state, tuple):
            state, slots = state
            for key, value in slots.items():
                object.__setattr__(self, key, value)
        if isinstance(state, dict):
            self.__dict__.update(state)


#: Attributes of an atom that belong to the engine running it, never pickled.
_ENGINE_ONLY = frozenset(("_event_sink", "_notifier"))


class _TaskNotifier(RestrictedNotifier):
    """A task's own notifier: its listeners, plus the engine running it, hear its events."""

    def __init__(self, owner: Task, events: Iterable[str]) -> None:
        super().__init__(events)
        self._owner = owner

    def notify(
        self, event_type: str, details: Mapping[str, Any] | None, *, include_any: bool = True
    ) -> None:
        super().notify(event_type, details, include_any=include_any)
        sink = self._owner._event_sink
        if sink is not None:
            sink(self._owner, event_type, details or {})


class Task(Atom):
    """An atom that does work in ``execute`` and undoes it in ``revert``.

    ``revert`` receives the same arguments as ``execute`` plus ``result`` (the value
    ``execute`` returned, or the :class:`~tideflow.Failure` it raised) and
    ``flow_failures`` (atom name -> Failure for every failure of the run).
    """

    #: Events this task may report through ``self.notifier`` (listeners may also use '*').
    TASK_EVENTS: ClassVar[tuple[str, ...]] = ("update_progress",)

    @property
    def notifier(self) -> RestrictedNotifier:
        """This task's notifier: register for its ``TASK_EVENTS`` (or '*'), or notify them."""
        if self._notifier is None:
            self._notifier = _TaskNotifier(self, self.TASK_EVENTS)
        return self._notifier

    def update_progress(self, progress: float) -> None:
        """Report progress as a fraction from 0.0 to 1.0 (values outside are clamped)."""
        if isinstance(progress, bool) or not isinstance(progress, int | float):
            raise TypeError(
                f"task {self.name!r}: update_progress() takes a number from 0.0 to 1.0, got "
                f"{progress!r} ({type(progress).__name__})"
            )
        if math.isnan(progress):  # no order to clamp it by
            raise ValueError(f"task {self.name!r}: update_progress() got NaN")
        if progress > 1.0:
            logger(_LOGGER).warning(
                "task %r reported progress %s > 1.0; using 1.0", self.name, progress
            )
            progress = 1.0
        elif progress < 0.0:
            logger(_LOGGER).warning(
                "task %r reported progress %s < 0.0; using 0.0", self.name, progress
            )
            progress = 0.0
        if self._notifier is None and self._event_sink is None:
            return
        self.notifier.notify("update_progress", {"progress": progress})


class FunctorTask(Task):
    """A task made from plain functions: ``execute`` and optionally ``revert``."""

    def __init__(
        self,
        execute: Callable[..., Any],
        name: str | None = None,
        provides: Provides = None,
        requires: Requires = None,
        auto_extract: bool = True,
        rebind: Rebind = None,
        revert: Callable[..., Any] | None = None,
        version: tuple[int, ...] | None = None,
        inject: Mapping[str, Any] | None = None,
        *,
        priority: int = 0,
    ) -> None:
        if not callable(execute):
            raise InvalidArgumentError(f"FunctorTask needs a callable execute, got {execute!r}")
        if revert is not None and not callable(revert):
            raise InvalidArgumentError(f"FunctorTask revert must be callable, got {revert!r}")
        self._execute = execute
        self._revert = revert
        super().__init__(
            name if name is not None else callable_name(execute),
            provides=provides,
            requires=requires,
            auto_extract=auto_extract,
            rebind=rebind,
            inject=inject,
            priority=priority,
        )
        if version is not None:
            self.version = version

    def _mappings_cacheable(self) -> bool:
        return False

    def _callable(self, method: str) -> tuple[Callable[..., Any], bool]:
        if method == "execute":
            return self._execute, False
        if self._revert is not None:
            return self._revert, False
        return _unbound(Atom, "revert")

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        return self._execute(*args, **kwargs)

    def revert(self, *args: Any, **kwargs: Any) -> Any:
        if self._revert is not None:
            return self._revert(*args, **kwargs)
        return None


def _check_arity(functor: Callable[..., Any], count: int, kind: str) -> None:
    """Refuse a functor that cannot be called with ``count`` positional arguments."""
    import inspect  # noqa: PLC0415  # deferred: slow to import, needed once per functor

    try:
        signature = inspect.signature(functor)
    except (TypeError, ValueError):
        return  # some builtins have no signature to read: they are trusted
    try:
        signature.bind(*range(count))
    except TypeError:
        takes = "exactly 1 argument" if count == 1 else f"exactly {count} arguments"
        raise InvalidArgumentError(
            f"{kind}: its functor {callable_name(functor)}{signature} must take {takes} "
            f"(it is called as functor({', '.join('abc'[:count])}))"
        ) from None


class _FoldTask(Task):
    """Shared set-up of map and reduce tasks: they act on their required values in order."""

    #: How many positional arguments the functor is called with.
    _ARITY: ClassVar[int] = 1

    def __init__(
        self,
        functor: Callable[..., Any],
        requires: Iterable[str],
        name: str | None = None,
        provides: Provides = None,
        auto_extract: bool = True,
        rebind: Rebind = None,
        inject: Mapping[str, Any] | None = None,
    ) -> None:
        kind = type(self).__name__
        if not callable(functor):
            raise InvalidArgumentError(f"{kind} needs a callable functor, got {functor!r}")
        _check_arity(functor, self._ARITY, kind)
        if isinstance(requires, str):
            raise InvalidArgumentError(
                f"{kind}: requires= is the list of names whose values it takes, in order; got "
                f"the single string {requires!r} (write [{requires!r}] for one name)"
            )
        names = _as_names(requires, "requires", kind)
        if not names:
            raise ValueError(f"{kind} needs requires= naming the values to use")
        self._functor = functor
        self._order = names
        super().__init__(
            name if name is not None else callable_name(functor),
            provides=provides,
            requires=names,
            auto_extract=auto_extract,
            rebind=rebind,
            inject=inject,
        )

    def _values(self, kwargs: Mapping[str, Any]) -> list[Any]:
        return [kwargs[name] for name in self._order]


class MapFunctorTask(_FoldTask):
    """Apply ``functor`` to each required value; the result is the list of outcomes."""

    def execute(self, *args: Any, **kwargs: Any) -> list[Any]:
        return [self._functor(value) for value in self._values(kwargs)]


class ReduceFunctorTask(_FoldTask):
    """Fold the required values (in ``requires`` order) with a two-argument ``functor``."""

    _ARITY = 2

    def __init__(self, functor: Callable[[Any, Any], Any], requires: Iterable[str], **kwargs: Any):
        super().__init__(functor, requires, **kwargs)
        if len(self._order) < 2:
            raise ValueError("ReduceFunctorTask needs at least two names in requires=")

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        return functools.reduce(self._functor, self._values(kwargs))


class TaskFactory:
    """What ``@tideflow.task`` makes of a function: call it to get a new task each time.

    Keyword arguments given to the decorator are defaults; keyword arguments given
    when calling the factory override them (``name=``, ``provides=``, ``rebind=``...).
    """

    def __init__(self, func: Callable[..., Any], defaults: Mapping[str, Any]) -> None:
        self.func = func
        self.defaults = dict(defaults)
        functools.update_wrapper(self, func)

    def __call__(self, **options: Any) -> FunctorTask:
        merged = {**self.defaults, **options}
        return FunctorTask(self.func, **merged)

    def __repr__(self) -> str:
        return f"<task factory {callable_name(self.func)}>"


def task(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    provides: Provides = None,
    requires: Requires = None,
    rebind: Rebind = None,
    revert: Callable[..., Any] | None = None,
    inject: Mapping[str, Any] | None = None,
    priority: int | None = None,
) -> Any:
    """Turn a plain function into a task factory: ``@task`` or ``@task(provides="x")``.

    The decorated name becomes a :class:`TaskFactory`; ``flow.add(make_sum())`` adds a
    new :class:`FunctorTask` running the function. The function is kept as ``.func``.
    """
    defaults = {
        key: value
        for key, value in {
            "name": name,
            "provides": provides,
            "requires": requires,
            "rebind": rebind,
            "revert": revert,
            "inject": inject,
            "priority": priority,
        }.items()
        if value is not None
    }

    def wrap(f: Callable[..., Any]) -> TaskFactory:
        if not callable(f):
            raise TypeError(f"@task decorates a function, got {f!r}")
        return TaskFactory(f, defaults)

    if func is not None:
        return wrap(func)
    return wrap
