"""What engine behaviour tests share: engine kinds, a recording task, a notification log.

A module of its own (not conftest.py) so tests import it by a name no other test
directory uses: every directory's conftest is a module named ``conftest``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

import tideflow

ENGINE_KINDS = ("serial", "parallel")

_UNSET: Any = object()


class Journal:
    """A thread-safe log of what tasks did: ``("execute" | "revert", name, details)``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.entries: list[tuple[str, str, dict[str, Any]]] = []

    def add(self, what: str, name: str, details: Mapping[str, Any]) -> None:
        """Record one call."""
        with self._lock:
            self.entries.append((what, name, dict(details)))

    def calls(self) -> list[tuple[str, str]]:
        """``(what, name)`` for every call, in order."""
        return [(what, name) for what, name, _ in self.entries]

    def executed(self) -> list[str]:
        """Names of the atoms whose execute ran, in order."""
        return [name for what, name, _ in self.entries if what == "execute"]

    def reverted(self) -> list[str]:
        """Names of the atoms whose revert ran, in order."""
        return [name for what, name, _ in self.entries if what == "revert"]

    def args_of(self, name: str, what: str = "execute") -> dict[str, Any]:
        """The keyword arguments the (only) ``what`` call of ``name`` received."""
        found = [details for w, n, details in self.entries if w == what and n == name]
        assert len(found) == 1, f"{name} {what} was called {len(found)} times"
        return found[0]

    def position(self, what: str, name: str) -> int:
        """Where in the log the ``what`` call of ``name`` is."""
        return self.calls().index((what, name))


class Recorder(tideflow.Task):
    """A task that records its execute/revert calls in a Journal.

    ``value`` is what execute returns (default: its name, or ``compute(**kwargs)`` when
    given); ``fail`` is an exception execute raises; ``revert_fail`` one revert raises;
    ``revert_value`` what revert returns; ``on_execute``/``on_revert`` are called with the
    task at the start of execute/revert. Requirements are declared with ``requires=``
    (execute takes ``**kwargs``).
    """

    def __init__(
        self,
        name: str,
        journal: Journal,
        *,
        value: Any = _UNSET,
        compute: Callable[..., Any] | None = None,
        fail: BaseException | None = None,
        revert_fail: BaseException | None = None,
        revert_value: Any = None,
        on_execute: Callable[[Recorder], None] | None = None,
        on_revert: Callable[[Recorder], None] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(name, **options)
        self.journal = journal
        self.value = value
        self.compute = compute
        self.fail = fail
        self.revert_fail = revert_fail
        self.revert_value = revert_value
        self.on_execute = on_execute
        self.on_revert = on_revert

    def execute(self, **kwargs: Any) -> Any:
        self.journal.add("execute", self.name, kwargs)
        if self.on_execute is not None:
            self.on_execute(self)
        if self.fail is not None:
            raise self.fail
        if self.compute is not None:
            return self.compute(**kwargs)
        return self.name if self.value is _UNSET else self.value

    def revert(self, result: Any, flow_failures: Mapping[str, Any], **kwargs: Any) -> Any:
        self.journal.add(
            "revert", self.name, {"result": result, "flow_failures": flow_failures, **kwargs}
        )
        if self.on_revert is not None:
            self.on_revert(self)
        if self.revert_fail is not None:
            raise self.revert_fail
        return self.revert_value


class Notifications:
    """Records every flow and atom notification of an engine, with its details."""

    def __init__(self, engine: tideflow.Engine) -> None:
        self._lock = threading.Lock()
        self.events: list[tuple[str, str, dict[str, Any]]] = []
        engine.notifier.register("*", self._on_flow)
        engine.atom_notifier.register("*", self._on_atom)

    def _on_flow(self, state: str, details: Mapping[str, Any]) -> None:
        with self._lock:
            self.events.append(("flow", state, dict(details)))

    def _on_atom(self, state: str, details: Mapping[str, Any]) -> None:
        with self._lock:
            self.events.append(("atom", state, dict(details)))

    def compact(self) -> list[tuple[str, str, str]]:
        """``(flow name or atom name, old state, new state)`` for each event, in order."""
        out = []
        for kind, state, details in self.events:
            who = "FLOW" if kind == "flow" else details["task_name"]
            out.append((who, str(details["old_state"]), str(state)))
        return out

    def for_atom(self, name: str) -> list[tuple[str, str]]:
        """``(old, new)`` transitions of one atom."""
        return [(old, new) for who, old, new in self.compact() if who == name]

    def flow_states(self) -> list[tuple[str, str]]:
        """``(old, new)`` transitions of the flow."""
        return [(old, new) for who, old, new in self.compact() if who == "FLOW"]

    def clear(self) -> None:
        """Forget what was recorded."""
        with self._lock:
            self.events.clear()
