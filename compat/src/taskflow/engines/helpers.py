"""TaskFlow's engine entry points, translating its spellings onto :func:`tideflow.load`.

TaskFlow takes engine options as free ``**kwargs`` (or in an engine URI such as
``'parallel://?max_workers=4'``); tideflow's ``load`` takes typed keywords. The ones
tideflow understands (``executor``, ``max_workers``) are translated here; every
option given is kept, untouched, in ``engine.options`` as TaskFlow does, so unknown
ones never fail the load.
"""

from __future__ import annotations

import contextlib
import importlib
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

import tideflow
from taskflow.persistence import backends as _backends
from taskflow.persistence.backends import impl_memory
from taskflow.utils import persistence_utils as _p_utils
from tideflow import Atom, Engine, Flow
from tideflow._options import closest
from tideflow.errors import NotFoundError
from tideflow.persistence.models import FlowDetail, LogBook

__all__ = [
    "ENGINES_NAMESPACE",
    "ENGINE_DEFAULT",
    "flow_from_detail",
    "load",
    "load_from_detail",
    "load_from_factory",
    "run",
    "save_factory_details",
]

ENGINES_NAMESPACE: Final = "taskflow.engines"
ENGINE_DEFAULT: Final = "default"

#: TaskFlow engine names -> tideflow engine kinds.
_KINDS: Final = {"default": "serial", "serial": "serial", "parallel": "parallel"}
#: TaskFlow's executor strings; all run on tideflow's thread pool (no eventlet here).
_THREAD_EXECUTORS: Final = frozenset(
    {"thread", "threads", "threaded", "greenthread", "greenthreads", "greenthreaded"}
)
#: Executors tideflow runs beyond TaskFlow's (TaskFlow 6 removed its process executor and
#: never had asyncio): passed to tideflow by its own name.
_TIDEFLOW_EXECUTORS: Final = {
    "process": "processes",
    "processes": "processes",
    "asyncio": "asyncio",
    "async": "asyncio",
}
_URI_SCHEME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def _extract_engine(engine: str | None, kwargs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """Split ``engine`` (a name or URI) into an engine name and the full options dict."""
    kind = engine or ENGINE_DEFAULT
    options: dict[str, Any] = {}
    if isinstance(kind, str) and _URI_SCHEME.match(kind):
        parts = urlsplit(kind)
        kind = parts.scheme
        if parts.hostname:
            options["hostname"] = (
                f"{parts.hostname}:{parts.port}" if parts.port is not None else parts.hostname
            )
        for key, value in (("username", parts.username), ("password", parts.password)):
            if value:
                options[key] = value
        if parts.port is not None:
            options["port"] = parts.port
        for key, value in parse_qsl(parts.query):
            options.setdefault(key, value)
    options.update(kwargs)  # explicit keywords win over what the URI says
    return kind, options


def _flag(options: Mapping[str, Any], name: str) -> bool:
    """A boolean engine option, in any of TaskFlow's spellings ('true', 'yes', '1', True)."""
    value = options.get(name, False)
    if isinstance(value, str):
        return value.strip().lower() in ("1", "t", "true", "on", "y", "yes")
    return bool(value)


def _engine_keywords(kind: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Translate TaskFlow's engine name and options into tideflow.load() keywords."""
    resolution = {
        "defer_reverts": _flag(options, "defer_reverts"),
        "never_resolve": _flag(options, "never_resolve"),
    }
    tideflow_kind = _KINDS.get(kind) if isinstance(kind, str) else None
    if tideflow_kind is None:
        asked = str(kind)
        hint = closest(asked, sorted(_KINDS))
        if "worker" in asked.lower():
            hint += "TaskFlow's worker-based engine is not available in tideflow. "
        raise NotFoundError(
            f"Could not find engine '{kind}': {hint}tideflow provides the engines {sorted(_KINDS)}"
        )
    if tideflow_kind == "serial":
        ignored = sorted(k for k in ("executor", "max_workers") if options.get(k) is not None)
        if ignored:
            # TaskFlow's serial engine ignores them too, and programs that pick the engine
            # by configuration rely on that: say so, and go on
            warnings.warn(
                f"engine '{kind}' runs atoms one at a time on the calling thread and ignores "
                f"{ignored}; use engine='parallel' for them to take effect",
                UserWarning,
                stacklevel=4,
            )
        return {"engine": "serial", **resolution}
    executor = options.get("executor")
    if isinstance(executor, str):
        key = executor.lower()
        if key in _TIDEFLOW_EXECUTORS:
            executor = _TIDEFLOW_EXECUTORS[key]
        elif key in _THREAD_EXECUTORS:
            executor = None
        else:
            known = sorted(_THREAD_EXECUTORS | set(_TIDEFLOW_EXECUTORS))
            raise ValueError(
                f"Unknown executor string '{executor}': {closest(executor, known)}"
                f"expected one of {known} (or mixed case equivalent)"
            )
    elif executor is not None and not callable(getattr(executor, "submit", None)):
        raise TypeError(
            f"Unknown executor '{executor}' ({type(executor)}) expected an object with "
            "submit(), such as a concurrent.futures or futurist executor"
        )
    return {
        "engine": "parallel",
        "executor": executor,
        "max_workers": _whole_number("max_workers", options.get("max_workers")),
        **resolution,
    }


def _whole_number(option: str, value: Any) -> int | None:
    """An engine option that counts something; URIs give it as text ('4')."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise ValueError(
        f"engine option {option}={value!r} must be a whole number (for instance "
        f"'parallel://?{option}=4' or {option}=4)"
    )


def _as_backend(backend: Any | None) -> Any | None:
    """A store for ``backend``: TaskFlow's configuration dicts (and URLs) are fetched."""
    if isinstance(backend, Mapping | str):
        return _backends.fetch(backend)
    return backend


def load(
    flow: Flow | Atom,
    store: Mapping[str, Any] | None = None,
    flow_detail: FlowDetail | None = None,
    book: LogBook | None = None,
    backend: Any | None = None,
    namespace: str = ENGINES_NAMESPACE,
    engine: str = ENGINE_DEFAULT,
    **kwargs: Any,
) -> Engine:
    """Load ``flow`` into an engine, as ``taskflow.engines.load`` does.

    ``engine`` is ``'default'``/``'serial'`` or ``'parallel'`` (optionally as a URI
    carrying options); ``backend`` may be a store or its configuration (a dict, or a
    URL). Without ``flow_detail`` a record is made for the run, in ``book`` (or in a
    ``'tmp'`` book) and saved to the store; without a store, the record lives in a
    memory store of its own. ``namespace``
    is accepted and ignored: engines are not looked up through entry points here.
    """
    kind, options = _extract_engine(engine, kwargs)
    keywords = _engine_keywords(kind, options)
    backend = _as_backend(backend)
    if flow_detail is None:
        flow_detail = _p_utils.create_flow_detail(flow, book=book, backend=backend)
    if backend is None:
        # as TaskFlow's storage does for a run without a store: the flow record is kept
        # in a memory store of its own, outside any log book (backend.memory shows it)
        backend = impl_memory.MemoryBackend()
        with contextlib.closing(backend.get_connection()) as conn:
            conn.update_flow_details(flow_detail, ignore_missing=True)
    loaded = tideflow.load(
        flow, store, backend=backend, book=book, flow_detail=flow_detail, **keywords
    )
    with contextlib.suppress(AttributeError):  # should tideflow come to define it read-only
        loaded.options = options  # type: ignore[attr-defined]  # TaskFlow's untyped options
    _ = loaded.storage  # TaskFlow creates (and saves) the flow record at load time
    return loaded


def run(
    flow: Flow | Atom,
    store: Mapping[str, Any] | None = None,
    flow_detail: FlowDetail | None = None,
    book: LogBook | None = None,
    backend: Any | None = None,
    namespace: str = ENGINES_NAMESPACE,
    engine: str = ENGINE_DEFAULT,
    **kwargs: Any,
) -> dict[str, Any]:
    """Load and run ``flow``; return every named value (store values and results)."""
    loaded = load(flow, store, flow_detail, book, backend, namespace, engine, **kwargs)
    loaded.run()
    return loaded.storage.fetch_all()


def save_factory_details(
    flow_detail: FlowDetail,
    flow_factory: Callable[..., Flow],
    factory_args: Sequence[Any] | None,
    factory_kwargs: Mapping[str, Any] | None,
    backend: Any | None = None,
) -> None:
    """Record in ``flow_detail`` the factory (and arguments) that rebuilds its flow."""
    tideflow.save_factory_details(
        flow_detail, flow_factory, factory_args, factory_kwargs, backend=backend
    )


def _resolve_factory(flow_factory: Callable[..., Flow] | str) -> Callable[..., Flow]:
    """Accept a factory or its dotted name, as TaskFlow does."""
    if not isinstance(flow_factory, str):
        return flow_factory
    module_name, _, attr = flow_factory.rpartition(".")
    if not module_name:
        raise ImportError(f"flow factory name {flow_factory!r} is not a dotted path")
    factory = getattr(importlib.import_module(module_name), attr, None)
    if not callable(factory):
        raise ImportError(f"flow factory {flow_factory!r} was not found or is not callable")
    return factory  # type: ignore[no-any-return]


def load_from_factory(
    flow_factory: Callable[..., Flow] | str,
    factory_args: Sequence[Any] | None = None,
    factory_kwargs: Mapping[str, Any] | None = None,
    store: Mapping[str, Any] | None = None,
    book: LogBook | None = None,
    backend: Any | None = None,
    namespace: str = ENGINES_NAMESPACE,
    engine: str = ENGINE_DEFAULT,
    **kwargs: Any,
) -> Engine:
    """Build a flow with ``flow_factory`` and load it, recording the factory for resuming."""
    factory = _resolve_factory(flow_factory)
    flow = factory(*(factory_args or ()), **(factory_kwargs or {}))
    backend = _as_backend(backend)
    flow_detail = _p_utils.create_flow_detail(flow, book=book, backend=backend)
    save_factory_details(flow_detail, factory, factory_args, factory_kwargs, backend=backend)
    return load(flow, store, flow_detail, book, backend, namespace, engine, **kwargs)


def flow_from_detail(flow_detail: FlowDetail) -> Flow:
    """Rebuild the flow a record was made for, from the factory recorded in it."""
    return tideflow.flow_from_detail(flow_detail)


def load_from_detail(
    flow_detail: FlowDetail,
    store: Mapping[str, Any] | None = None,
    backend: Any | None = None,
    namespace: str = ENGINES_NAMESPACE,
    engine: str = ENGINE_DEFAULT,
    **kwargs: Any,
) -> Engine:
    """Load the flow a record was made for, to resume (or inspect) that run."""
    flow = flow_from_detail(flow_detail)
    return load(flow, store, flow_detail, None, backend, namespace, engine, **kwargs)
