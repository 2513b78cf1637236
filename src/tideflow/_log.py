"""Loggers, imported on first use: most runs never log, and logging is slow to import."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import logging

__all__ = ["logger"]


def logger(name: str) -> logging.Logger:
    """The standard-library logger ``name``."""
    import logging  # noqa: PLC0415  # deferred: see the module docstring

    return logging.getLogger(name)
