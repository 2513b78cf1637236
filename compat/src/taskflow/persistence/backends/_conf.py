"""TaskFlow's store configuration keys, translated to tideflow's store options.

TaskFlow's backends take a free dict and ignore what they do not use; tideflow's
stores take typed keyword options and refuse unknown ones. Each backend class here
lists the TaskFlow keys it translates (``RENAMED``) and those it ignores, with the
reason (``IGNORED``): docs/taskflow-behaviour.md section 14 has the table. A key that
is neither TaskFlow's nor an option of the tideflow store is refused with a
``TypeError`` naming the closest known key: TaskFlow would ignore it, but it is
nearly always a misspelling that would have silently changed nothing.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, Final

from tideflow._options import closest

__all__ = ["URL_PARTS", "as_bool", "options_of", "translate"]

#: The parts of a URL TaskFlow copies into the configuration; the URL itself is used.
URL_PARTS: Final = {
    "username": "taken from the URL",
    "password": "taken from the URL",
    "hostname": "taken from the URL",
    "port": "taken from the URL",
}


def as_bool(value: Any) -> bool:
    """A flag in any of TaskFlow's spellings ('true', 'yes', '1', True)."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "t", "true", "on", "y", "yes")
    return bool(value)


def options_of(store_class: type) -> frozenset[str]:
    """The keyword-only options a tideflow store class takes."""
    parameters = inspect.signature(store_class).parameters.values()
    return frozenset(p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY)


def translate(
    conf: Mapping[str, Any],
    *,
    store: str,
    accepted: frozenset[str],
    renamed: Mapping[str, tuple[str, Callable[[Any], Any]]],
    ignored: Mapping[str, str],
) -> dict[str, Any]:
    """The tideflow options for a TaskFlow configuration (``'connection'`` excluded).

    ``renamed`` maps a TaskFlow key to a tideflow option and a conversion (TaskFlow
    configurations often carry numbers as text); keys in ``ignored`` are dropped; a key
    that is already a tideflow option passes as it is.
    """
    options: dict[str, Any] = {}
    for key, value in conf.items():
        if key == "connection" or key in ignored:
            continue
        if key in renamed:
            option, convert = renamed[key]
            if option in accepted:
                options[option] = convert(value)
            continue
        if key in accepted:
            options[key] = value
            continue
        known = sorted({*accepted, *renamed, *ignored} - {"scheme"})
        raise TypeError(
            f"unknown option {key!r} for the {store}: {closest(str(key), known)}"
            f"the options it understands are {known}"
        )
    return options
