"""Choosing a store by URL: built-in schemes, registered ones, and entry points."""

from importlib import metadata

import pytest

from tideflow import persistence
from tideflow.errors import NotFoundError


def test_memory_by_url_and_by_config():
    assert isinstance(persistence.fetch("memory://"), persistence.MemoryBackend)
    assert isinstance(persistence.fetch({"connection": "memory"}), persistence.MemoryBackend)
    with pytest.raises(ValueError, match="'connection' key"):
        persistence.fetch({"path": "x"})


def test_unknown_scheme_names_the_known_ones_and_the_entry_point_group():
    with pytest.raises(NotFoundError, match=r"no store for 'bogus://x'.*'tideflow.stores'"):
        persistence.fetch("bogus://x")


def test_third_party_stores_come_from_entry_points(monkeypatch):
    made = []

    class Point:
        def load(self):
            return lambda config: made.append(config) or "a store"

    def entry_points(*, group, name):
        assert group == persistence.ENTRY_POINT_GROUP
        return [Point()] if name == "custom" else []

    monkeypatch.setattr(metadata, "entry_points", entry_points)
    monkeypatch.setattr(persistence, "_REGISTRY", dict(persistence._REGISTRY))
    assert persistence.fetch("custom://host/db", timeout=3) == "a store"
    assert made == [{"connection": "custom://host/db", "timeout": 3}]
    # remembered: asked once
    monkeypatch.setattr(metadata, "entry_points", lambda **kw: [])
    assert persistence.fetch("custom://other") == "a store"
