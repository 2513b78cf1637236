"""Shared helpers for engine behaviour tests: engine kinds, a recording task, a notification log.

Every behaviour test that does not depend on a strict order between independent atoms
takes the ``engine_kind`` (or ``load``) fixture and so runs on both the serial and the
parallel engine.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

import tideflow

# The resumable flow factories live beside this file and must be importable by name
# (``load_from_detail`` re-imports them), whatever pytest's import mode.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from engine_support import ENGINE_KINDS, Journal, Notifications, Recorder  # noqa: E402  # after the path is set


@pytest.fixture(params=ENGINE_KINDS)
def engine_kind(request: pytest.FixtureRequest) -> str:
    """Each engine kind in turn."""
    return str(request.param)


@pytest.fixture
def load(engine_kind: str) -> Callable[..., tideflow.Engine]:
    """``tideflow.load`` bound to the engine kind under test."""

    def _load(
        flow: tideflow.Flow | tideflow.Atom,
        store: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> tideflow.Engine:
        if engine_kind == "parallel":
            options.setdefault("max_workers", 4)
        return tideflow.load(flow, store=store, engine=engine_kind, **options)

    return _load


@pytest.fixture
def journal() -> Journal:
    """A fresh journal."""
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
