"""Outcomes that come back from another process (a worker process, a Dask worker).

A worker sends ``pickle.dumps((ok, value, exception_data))``: ``value`` is the result
or a :class:`~tideflow.Failure`, and ``exception_data`` the pickled exception when it
could be pickled, so the engine re-raises the task's own exception type where it can.
"""

from __future__ import annotations

import pickle

from tideflow._task import Atom
from tideflow.executors import Outcome
from tideflow.failure import Failure

__all__ = ["load_outcome"]


def load_outcome(data: bytes, node: int, reverting: bool, atom: Atom, sender: str) -> Outcome:
    """The outcome ``sender`` (e.g. "its worker process") sent, with the task's own
    exception back where it can be."""
    try:
        ok, value, exc_data = pickle.loads(data)
    except Exception as exc:
        error = TypeError(
            f"atom {atom.name!r}: what {sender} sent back cannot be unpickled here "
            f"({type(exc).__name__}: {exc})"
        )
        return (node, reverting, False, Failure.from_exception(error))
    if exc_data is not None:
        try:
            original = pickle.loads(exc_data)
        except Exception:
            original = None  # its type cannot be rebuilt here: the Failure's names will do
        if isinstance(original, Exception):
            remote: Failure = value
            value = Failure((type(original), original, None))
            value.traceback_str = remote.traceback_str
            value.causes = remote.causes
    return (node, reverting, ok, value)
