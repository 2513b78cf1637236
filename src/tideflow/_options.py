"""Checks of what users hand to the entry points, made where the mistake is made.

Every public entry point (``load``, ``run``, ``Engine(...)``, ``engine.run()``) checks
its arguments here before anything is built or recorded, so a wrong option fails at
the call that gave it, with a message naming the option, what it takes and what it
got, instead of as an ``AttributeError`` deep inside a run. Nothing here touches a
store or a flow's records.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

from tideflow._flow import Flow
from tideflow.executors import resolve_executor
from tideflow.persistence.models import FlowDetail, LogBook

__all__ = [
    "check_options",
    "check_store_keys",
    "check_timeout",
    "closest",
    "describe",
    "short_repr",
]


def short_repr(value: object, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters for a message or a log line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe(value: object) -> str:
    """``value`` as an error message shows it: its repr (shortened) and its type."""
    return f"{short_repr(value)} ({type(value).__name__})"


def closest(word: str, choices: Collection[str]) -> str:
    """A ``did you mean 'x'?`` hint for a misspelled name, or nothing."""
    import difflib  # noqa: PLC0415  # only on error paths

    by_folded = {choice.casefold(): choice for choice in choices}
    found = difflib.get_close_matches(word.casefold(), list(by_folded), n=1, cutoff=0.6)
    return f"did you mean {by_folded[found[0]]!r}? " if found else ""


def check_store_keys(values: Mapping[Any, Any], where: str) -> None:
    """Refuse a store/inject mapping whose keys are not names (str)."""
    for key in values:
        if not isinstance(key, str):
            raise TypeError(
                f"{where} keys are the names atoms require, so they must be str; got "
                f"{describe(key)}"
            )


def check_timeout(timeout: object) -> None:
    """``timeout`` is None or a number of seconds, not negative."""
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(
            f"timeout= takes a number of seconds (or None to wait as long as it takes), "
            f"got {describe(timeout)}"
        )
    if math.isnan(timeout) or timeout < 0:
        raise ValueError(f"timeout= must be zero or more seconds, got {timeout!r}")


def check_options(
    flow: object,
    *,
    store: object,
    backend: object,
    book: object,
    flow_detail: object,
    kind: str,
    executor: object,
    max_workers: object,
) -> None:
    """Check an engine's options together; raise naming the first one that is wrong."""
    if not isinstance(flow, Flow):
        raise TypeError(f"an engine runs a flow (or a single atom), got {describe(flow)}")
    if store is not None:
        if not isinstance(store, Mapping):
            raise TypeError(
                f"store= takes a mapping of names to values (e.g. a dict), got "
                f"{type(store).__name__}"
            )
        check_store_keys(store, "store=")
    if backend is not None and not callable(getattr(backend, "get_connection", None)):
        raise TypeError(
            f"backend= takes a store URL such as 'memory://' or a store object with "
            f"get_connection(), got {describe(backend)}"
        )
    if book is not None and not isinstance(book, LogBook):
        raise TypeError(f"book= takes a tideflow LogBook, got {describe(book)}")
    if flow_detail is not None and not isinstance(flow_detail, FlowDetail):
        raise TypeError(
            f"flow_detail= takes the FlowDetail record of a run, got {describe(flow_detail)}"
        )
    if max_workers is not None:
        if isinstance(max_workers, bool) or not isinstance(max_workers, int):
            raise TypeError(f"max_workers= takes a whole number, got {describe(max_workers)}")
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}")
    if executor is not None:
        # a name it knows, a distributed.Client or anything with submit(); the message of
        # a wrong one lists the names (executors/__init__.py)
        resolve_executor(executor)
    if kind == "serial":
        ignored = [
            name
            for name, value in (("executor", executor), ("max_workers", max_workers))
            if value is not None
        ]
        if ignored:
            raise ValueError(
                f"{' and '.join(f'{n}=' for n in ignored)} would be ignored: the serial engine "
                "runs every atom on the calling thread. Pass engine='parallel' to run atoms "
                f"on {'that executor' if executor is not None else 'that many threads'}, "
                "or leave the option out"
            )
