"""TaskFlow's ``impl_memory``: the in-memory store."""

from __future__ import annotations

from tideflow.persistence import MemoryBackend, MemoryConnection

__all__ = ["MemoryBackend", "MemoryConnection"]
