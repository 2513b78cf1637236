"""TaskFlow's ``taskflow.conductors.backends``: find a conductor by its kind.

``fetch('blocking' | 'nonblocking', name, jobboard, **kwargs)`` returns a
:class:`taskflow.conductors.base.Conductor` over tideflow's ``Conductor`` or
``PooledConductor`` (threads). Keywords are TaskFlow's: ``persistence``, ``engine``,
``engine_options``, ``wait_timeout``, ``log``, ``max_simultaneous_jobs`` and, for
``'nonblocking'``, ``executor_factory``. Other kinds get
:class:`~taskflow.exceptions.NotFound` naming the two.
"""

from __future__ import annotations

from typing import Any, Final

from taskflow import exceptions as exc
from taskflow.conductors.base import KINDS, Conductor
from taskflow.jobs.base import JobBoard

__all__ = ["CONDUCTOR_NAMESPACE", "fetch"]

CONDUCTOR_NAMESPACE: Final = "taskflow.conductors"


def fetch(
    kind: str,
    name: str,
    jobboard: JobBoard,
    namespace: str = CONDUCTOR_NAMESPACE,
    **kwargs: Any,
) -> Conductor:
    """The conductor of ``kind`` named ``name`` over ``jobboard``. ``namespace`` is
    accepted and ignored: conductors are not looked up through entry points here."""
    del namespace
    if kind not in KINDS:
        raise exc.NotFound(
            f"Could not find conductor {kind}: the conductors are 'blocking' (one job at a "
            "time) and 'nonblocking' (max_simultaneous_jobs at once, on threads)"
        )
    if kind == "blocking" and "executor_factory" in kwargs:
        raise TypeError(
            "executor_factory= is for the 'nonblocking' conductor; the 'blocking' one runs "
            "each job on the thread that calls run()"
        )
    return Conductor(kind, name, jobboard, **kwargs)
