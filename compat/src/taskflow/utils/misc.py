"""The small pieces of TaskFlow's ``taskflow.utils.misc`` that its examples use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["as_int", "clamp"]


def as_int(obj: Any, quiet: bool = False) -> int:
    """Convert ``obj`` to an int (``'2'`` and ``'2.5'`` both give 2).

    When it cannot be converted, raise ValueError, or with ``quiet`` return ``obj``.
    """
    for convert in (int, lambda value: int(float(value))):
        try:
            return convert(obj)
        except (ValueError, TypeError):
            continue
    if quiet:
        return obj  # type: ignore[no-any-return]
    raise ValueError(f"Can not translate {obj!r} ({type(obj)}) to an integer")


def clamp(
    value: float,
    minimum: float,
    maximum: float,
    on_clamped: Callable[[], Any] | None = None,
) -> float:
    """Limit ``value`` to ``[minimum, maximum]``, calling ``on_clamped`` if it was outside."""
    if minimum > maximum:
        raise ValueError(f"Provided minimum '{minimum}' must be less than or equal to maximum")
    if value < minimum or value > maximum:
        if on_clamped is not None:
            on_clamped()
        return minimum if value < minimum else maximum
    return value
