"""Find the flow a command names: ``FILE.py[:NAME]`` or an importable ``module:attr``.

A name may be a flow object or a function that builds one (called without
arguments). Without ``:NAME``, the file's one flow is taken: its module-level flow
objects and its own functions annotated to return a flow. Where the flow came from
is kept as a small dict (:attr:`Loaded.source`) that the run's record carries, so
``tideflow resume`` can load it again the same way.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
import traceback
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import tideflow

__all__ = ["CommandError", "Loaded", "load_source", "load_spec"]


class CommandError(Exception):
    """A mistake in how the command was used: one line saying what and what to do (exit 2)."""


@dataclass(frozen=True)
class Loaded:
    """A flow found by name, and how to find it again."""

    flow: tideflow.Flow
    #: The function that built the flow, or None when the name was the flow itself.
    factory: Callable[[], tideflow.Flow] | None
    #: ``{"file": ..., "name": ...}`` or ``{"module": ..., "name": ...}``
    source: dict[str, str]

    @property
    def label(self) -> str:
        """How the user would name this flow on the command line."""
        where = self.source.get("file") or self.source.get("module", "?")
        return f"{where}:{self.source['name']}"


def _split(spec: str) -> tuple[str, str | None]:
    """``'a/b.py:make'`` -> ``('a/b.py', 'make')``; a name is optional."""
    head, sep, tail = spec.rpartition(":")
    if sep and tail.isidentifier() and head:
        return head, tail
    return spec, None


def _is_file(target: str) -> bool:
    return target.endswith(".py") or os.sep in target or "/" in target or Path(target).exists()


def _module_name(path: Path) -> str:
    """A module name for a file: its stem, unless that is taken by another module."""
    stem = path.stem if path.stem.isidentifier() else "_tideflow_flow_file"
    known = sys.modules.get(stem)
    if known is None or getattr(known, "__file__", None) == str(path):
        return stem
    return f"_tideflow_file_{abs(hash(str(path)))}"


def _import_file(path: Path, shown: str) -> ModuleType:
    """Import ``path`` as ``python path`` would: its directory first on ``sys.path``."""
    if not path.is_file():
        raise CommandError(f"{shown}: no such file; give the path of a Python file defining a flow")
    name = _module_name(path)
    directory = str(path.parent)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise CommandError(f"{shown}: cannot be imported as Python (is it a .py file?)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise CommandError(f"{shown}: importing it failed: {_where(exc, path)}") from exc
    return module


def _where(exc: BaseException, path: Path) -> str:
    """``'line 3: NameError: ...'``: the user's line that raised, and the error."""
    message = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, SyntaxError) and exc.lineno is not None:
        return f"line {exc.lineno}: {message}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
    return f"line {frames[-1].lineno}: {message}" if frames else message


def _import_module(name: str) -> ModuleType:
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` would
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):
            raise CommandError(
                f"{name}: no such file or module; give FILE.py[:NAME] or module:attr"
            ) from exc
        raise CommandError(f"{name}: importing it failed: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        raise CommandError(f"{name}: importing it failed: {type(exc).__name__}: {exc}") from exc


def _returns_flow(func: Callable[..., Any], namespace: Mapping[str, Any]) -> bool:
    """Say whether ``func`` is annotated to return a flow (and needs no arguments)."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return False
    if any(
        p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        for p in signature.parameters.values()
    ):
        return False
    annotation = signature.return_annotation
    if isinstance(annotation, str):
        written: str = annotation
        try:
            annotation = typing.get_type_hints(func, globalns=dict(namespace)).get("return")
        except Exception:  # a name the file never imported: go by how it reads
            return written.rsplit(".", 1)[-1].endswith("Flow")
    return isinstance(annotation, type) and issubclass(annotation, tideflow.Flow)


def _candidates(module: ModuleType) -> list[str]:
    """Names in ``module`` that stand for a flow: flow objects, functions returning one."""
    found = []
    namespace = vars(module)
    for name, value in namespace.items():
        if name.startswith("_"):
            continue
        if isinstance(value, tideflow.Flow) or (
            inspect.isfunction(value)
            and value.__module__ == module.__name__
            and _returns_flow(value, namespace)
        ):
            found.append(name)
    return found


def _pick(module: ModuleType, where: str, name: str | None) -> tuple[str, Any]:
    if name is not None:
        if not hasattr(module, name):
            options = _candidates(module)
            hint = f"; it defines {', '.join(options)}" if options else ""
            raise CommandError(f"{where} has no attribute {name!r}{hint}")
        return name, getattr(module, name)
    options = _candidates(module)
    if not options:
        raise CommandError(
            f"{where} defines no flow: define a flow object, or a function returning one "
            "(annotated '-> tideflow.Flow'), or name it as FILE.py:NAME"
        )
    if len(options) > 1:
        raise CommandError(
            f"{where} defines several flows ({', '.join(options)}): name one, as {where}:NAME"
        )
    return options[0], getattr(module, options[0])


def _as_loaded(value: Any, name: str, where: str, source: dict[str, str]) -> Loaded:
    if isinstance(value, tideflow.Flow):
        return Loaded(value, None, source)
    if callable(value) and not isinstance(value, type):
        if _needs_arguments(value):
            raise CommandError(
                f"{where}:{name} takes arguments; the command calls it without any "
                "(give its parameters defaults; values the tasks need go in with --store)"
            )
        try:
            flow = value()
        except Exception as exc:
            raise CommandError(
                f"{where}:{name}() failed building the flow: {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(flow, tideflow.Flow):
            raise CommandError(
                f"{where}:{name} returned {type(flow).__name__}, not a flow; return a "
                "tideflow.Flow from it"
            )
        return Loaded(flow, value, source)
    raise CommandError(
        f"{where}:{name} is a {type(value).__name__}, not a flow or a function returning one"
    )


def _needs_arguments(func: Callable[..., Any]) -> bool:
    try:
        inspect.signature(func).bind()
    except TypeError:
        return True
    except ValueError:
        return False
    return False


def load_spec(spec: str) -> Loaded:
    """Load the flow named by ``FILE.py[:NAME]`` or ``module:attr``."""
    target, name = _split(spec)
    if _is_file(target):
        path = Path(target).resolve()
        module = _import_file(path, target)
        where = target
        source = {"file": str(path)}
    else:
        if name is None and "." not in target:
            raise CommandError(
                f"{spec}: no such file; give FILE.py[:NAME] or an importable module:attr"
            )
        module = _import_module(target)
        where = target
        source = {"module": target}
    attr, value = _pick(module, where, name)
    return _as_loaded(value, attr, where, {**source, "name": attr})


def load_source(source: Mapping[str, Any]) -> Loaded:
    """Load a flow again from the ``source`` a run recorded."""
    name = str(source.get("name", ""))
    if "file" in source:
        path = Path(str(source["file"]))
        module = _import_file(path, str(path))
        where = str(path)
        clean = {"file": str(path), "name": name}
    else:
        where = str(source.get("module", ""))
        module = _import_module(where)
        clean = {"module": where, "name": name}
    attr, value = _pick(module, where, name)
    return _as_loaded(value, attr, where, clean)
