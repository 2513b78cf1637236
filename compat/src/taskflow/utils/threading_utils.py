"""TaskFlow's ``threading_utils``: daemon threads and a bundle that starts and stops them."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

__all__ = [
    "ThreadBundle",
    "daemon_thread",
    "get_ident",
    "get_optimal_thread_count",
    "is_alive",
    "no_op",
]

Hook = Callable[[threading.Thread], Any] | None


def is_alive(thread: threading.Thread) -> bool:
    """Say whether ``thread`` is running."""
    return thread.is_alive()


def get_ident() -> int:
    """The identifier of the calling thread."""
    return threading.get_ident()


def get_optimal_thread_count(default: int = 2) -> int:
    """A good number of worker threads: one more than the CPUs, or ``default`` if unknown."""
    cpus = os.cpu_count()
    return cpus + 1 if cpus else default


def daemon_thread(target: Callable[..., Any], *args: Any, **kwargs: Any) -> threading.Thread:
    """An unstarted daemon thread that will call ``target(*args, **kwargs)``."""
    return threading.Thread(target=target, args=args, kwargs=kwargs, daemon=True)


def no_op(*args: Any, **kwargs: Any) -> None:
    """Do nothing (a default hook)."""


class _Bound:
    """One thread factory of a bundle, with its hooks and its current thread."""

    __slots__ = ("after_join", "after_start", "before_join", "before_start", "factory", "thread")

    def __init__(
        self,
        factory: Callable[[], threading.Thread],
        before_start: Hook,
        after_start: Hook,
        before_join: Hook,
        after_join: Hook,
    ) -> None:
        self.factory = factory
        self.before_start = before_start
        self.after_start = after_start
        self.before_join = before_join
        self.after_join = after_join
        self.thread: threading.Thread | None = None


def _call(hook: Hook, thread: threading.Thread) -> None:
    if hook is not None:
        hook(thread)


class ThreadBundle:
    """Threads made by bound factories, started and joined together (in bind order)."""

    def __init__(self) -> None:
        self._bound: list[_Bound] = []
        self._lock = threading.Lock()

    def bind(
        self,
        thread_factory: Callable[[], threading.Thread],
        before_start: Hook = None,
        after_start: Hook = None,
        before_join: Hook = None,
        after_join: Hook = None,
    ) -> None:
        """Add a factory whose thread ``start()`` creates and starts; hooks get the thread."""
        if not callable(thread_factory):
            raise ValueError("Provided thread factory must be callable")
        with self._lock:
            self._bound.append(
                _Bound(thread_factory, before_start, after_start, before_join, after_join)
            )

    def start(self) -> int:
        """Start a thread for each factory not yet started; return how many started."""
        started = 0
        with self._lock:
            for bound in self._bound:
                if bound.thread is not None:  # started, and not yet joined by stop()
                    continue
                thread = bound.factory()
                bound.thread = thread
                _call(bound.before_start, thread)
                thread.start()
                _call(bound.after_start, thread)
                started += 1
        return started

    def stop(self) -> int:
        """Join every started thread (latest bound first); return how many were joined."""
        stopped = 0
        with self._lock:
            for bound in reversed(self._bound):
                thread = bound.thread
                if thread is None:
                    continue
                _call(bound.before_join, thread)
                thread.join()
                _call(bound.after_join, thread)
                bound.thread = None
                stopped += 1
        return stopped

    def __len__(self) -> int:
        return len(self._bound)
