"""Random nested flows with retry controllers x tasks that fail their first k executions.

Trees of linear and unordered flows, any of which may have a controller (``Times(n)``
with or without ``revert_all``, ``AlwaysRevert``, ``AlwaysRevertAll``), run on the serial
engine and on the parallel engine on threads and on asyncio, where a random part of the
tasks are ``async def`` (``property_kinds.py``; ``defer_reverts`` drawn too). Each task
fails on its first k executions (k drawn per task). After the run:

- no atom is left RUNNING, REVERTING, RETRYING or FAILURE;
- every revert of an atom came after the reverts of everything that depends on it and
  ran since it did (dependents first, within each attempt);
- every task started only after its predecessors finished (in its attempt);
- a ``Times(n)`` controller never makes more than n attempts per life (a life ends
  when an enclosing decision reverts it), numbered 1, 2, ... in its events; the other
  controllers never retry;
- the final flow state is what the decisions imply: each failure's chain of decisions
  (innermost controller outwards, as logged) resolves to RETRY, REVERT_ALL or giving
  its flow up; any REVERT_ALL (or a failure no controller guards) reverts everything;
  otherwise any flow given up ends the run REVERTED; otherwise it is SUCCESS.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from property_kinds import KIND_PARAMS, is_parallel, load_options

import tideflow
from tideflow import AtomEvent, LinearFlow, Task, UnorderedFlow, retry

SETTINGS = settings(max_examples=200, deadline=None)
MAX_TASKS = 12


class Planned(Exception):
    """A task's planned failure."""


class Log:
    """Thread-safe ordered log of ``(seq, what, name, extra)``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counter = itertools.count()
        self.entries: list[tuple[int, str, str, Any]] = []

    def add(self, what: str, name: str, extra: Any = None) -> None:
        with self.lock:
            self.entries.append((next(self.counter), what, name, extra))

    def of(self, what: str, name: str) -> list[int]:
        return [seq for seq, w, n, _ in self.entries if w == what and n == name]


class Job(Task):
    def __init__(self, name: str, log: Log, fails: int, delay: float) -> None:
        super().__init__(name)
        self.log = log
        self.fails = fails
        self.delay = delay
        self.runs = 0

    def execute(self) -> str:
        self.log.add("exec-start", self.name)
        try:
            self.runs += 1
            if self.delay:
                time.sleep(self.delay)
            if self.runs <= self.fails:
                raise Planned(f"{self.name} #{self.runs}")
            return self.name
        finally:
            self.log.add("exec-end", self.name)

    def revert(self, **kwargs: Any) -> None:
        self.log.add("revert-start", self.name)
        self.log.add("revert-end", self.name)


class AsyncJob(Job):
    """Job whose execute and revert are coroutines, awaited on the engine's loop."""

    async def execute(self) -> str:  # type: ignore[override]
        self.log.add("exec-start", self.name)
        try:
            self.runs += 1
            await asyncio.sleep(self.delay)
            if self.runs <= self.fails:
                raise Planned(f"{self.name} #{self.runs}")
            return self.name
        finally:
            self.log.add("exec-end", self.name)

    async def revert(self, **kwargs: Any) -> None:  # type: ignore[override]
        self.log.add("revert-start", self.name)
        await asyncio.sleep(0)
        self.log.add("revert-end", self.name)


def logged(cls: type[retry.Retry], log: Log) -> type[retry.Retry]:
    class Logged(cls):  # type: ignore[misc,valid-type]
        def on_failure(self, *args: Any, **kwargs: Any) -> retry.Decision:
            decision = retry.Decision(super().on_failure(*args, **kwargs))
            log.add("decision", self.name, decision)
            return decision

    return Logged


CONTROLLERS = st.sampled_from(["none", "times", "times", "times", "revert", "revert", "revert_all"])


def trees():
    leaf = st.sampled_from([0, 0, 1, 2]).map(lambda k: ("task", k))
    return st.recursive(
        leaf,
        lambda children: st.tuples(
            st.sampled_from(["linear", "unordered"]),
            CONTROLLERS,
            st.integers(1, 3),
            st.sampled_from([False, False, True]),
            st.lists(children, min_size=1, max_size=3),
        ),
        max_leaves=MAX_TASKS,
    )


class Built:
    def __init__(self) -> None:
        self.tasks: list[str] = []
        self.pairs: list[tuple[str, str]] = []  # (before, after): after depends on before
        self.controllers: dict[str, tuple[str, int]] = {}  # name -> (kind, attempts)
        self.guard: dict[str, str | None] = {}  # atom -> controller asked first
        self.parent: dict[str, str | None] = {}  # controller -> enclosing controller


def build(tree, log, built, delays, guard, counter, asyncs=frozenset()):
    """Return (flow or task, task names inside); tasks named in ``asyncs`` are async def."""
    if tree[0] == "task":
        name = f"t{next(counter)}"
        built.tasks.append(name)
        built.guard[name] = guard
        job = AsyncJob if name in asyncs else Job
        return job(name, log, tree[1], delays.get(name, 0.0)), [name]
    pattern, kind, attempts, revert_all, children = tree
    flow_name = f"f{next(counter)}"
    controller = None
    inner_guard = guard
    if kind != "none":
        name = f"r{next(counter)}"
        if kind == "times":
            controller = logged(retry.Times, log)(attempts, name=name, revert_all=revert_all)
        elif kind == "revert":
            controller = logged(retry.AlwaysRevert, log)(name)
        else:
            controller = logged(retry.AlwaysRevertAll, log)(name)
        built.controllers[name] = (kind, attempts)
        built.guard[name] = guard
        built.parent[name] = guard
        inner_guard = name
    flow = (LinearFlow if pattern == "linear" else UnorderedFlow)(flow_name, retry=controller)
    names: list[str] = []
    previous: list[str] = []
    for child in children:
        item, child_names = build(child, log, built, delays, inner_guard, counter, asyncs)
        flow.add(item)
        if pattern == "linear":
            built.pairs.extend((p, c) for p in previous for c in child_names)
            previous = child_names
        names.extend(child_names)
    if controller is not None:
        built.pairs.extend((controller.name, c) for c in names)
        names = [controller.name, *names]
    return flow, names


def resolution(chain: list[retry.Decision], defer: bool) -> str:
    """What one failure's chain of decisions comes to: RETRY, WHOLE or GIVE_UP."""
    for decision in chain:
        if decision is retry.RETRY:
            return "RETRY"
        if decision is retry.REVERT_ALL:
            return "WHOLE"
    if not chain or defer:
        return "WHOLE"
    return "GIVE_UP"


@pytest.mark.parametrize("kind", KIND_PARAMS)
@SETTINGS
@given(tree=trees(), defer=st.sampled_from([False, False, True]), data=st.data())
def test_random_flows_with_retries(kind, tree, defer, data):
    log = Log()
    built = Built()
    counter = itertools.count()
    delays: dict[str, float] = {}
    names = st.sampled_from([f"t{i}" for i in range(40)])
    if is_parallel(kind):
        delays = data.draw(st.dictionaries(names, st.sampled_from([0.0005, 0.002])), label="delays")
    asyncs = data.draw(st.sets(names), label="async") if kind == "asyncio" else set()
    root, _ = build(tree, log, built, delays, None, counter, asyncs)
    if not isinstance(root, tideflow.Flow):
        root = LinearFlow("single").add(root)
    engine = tideflow.load(root, defer_reverts=defer, **load_options(kind))
    events: list[AtomEvent] = []
    engine.subscribe(lambda e: events.append(e) if isinstance(e, AtomEvent) else None)
    engine.atom_notifier.register(
        "FAILURE", lambda state, details: log.add("failure", details["task_name"])
    )
    raised: BaseException | None = None
    try:
        engine.run()
    except Exception as exc:
        raised = exc

    names = [*built.tasks, *built.controllers]
    states = {n: str(engine.storage.get_atom_state(n)) for n in names}
    assert set(states.values()) <= {"SUCCESS", "REVERTED", "PENDING"}, states

    check_order(log, built)
    check_controllers(events, built)
    check_final_state(engine, log, states, defer, raised)


def check_order(log: Log, built: Built) -> None:
    """Forward within an attempt; reverts of dependents first."""
    tasks = set(built.tasks)
    for before, after in built.pairs:
        if after not in tasks or before not in tasks:
            continue
        for start in log.of("exec-start", after):
            ended = [s for s in log.of("exec-end", before) if s < start]
            assert ended, f"{after} started before {before} ever finished"
        for undo in log.of("revert-start", before):
            last_done = max(s for s in log.of("exec-end", before) if s < undo)
            since = [s for s in log.of("exec-start", after) if last_done < s < undo]
            if since:  # `after` ran on top of this execution of `before`: undone first
                assert any(since[-1] < r < undo for r in log.of("revert-end", after)), (
                    f"{before} reverted before {after}"
                )


def check_controllers(events: list[AtomEvent], built: Built) -> None:
    """Times(n) makes at most n attempts per life, numbered 1, 2, ...; others never retry."""
    for name, (controller_kind, attempts) in built.controllers.items():
        life: list[int] = []
        for event in (e for e in events if e.atom_name == name):
            if event.state == "RUNNING":
                life.append(event.attempt)
            if event.state == "REVERTED":
                life = []  # reverted: a fresh history next time
            assert life == list(range(1, len(life) + 1)), (name, life)
            limit = attempts if controller_kind == "times" else 1
            assert len(life) <= limit, (name, life)


def check_final_state(
    engine: tideflow.Engine,
    log: Log,
    states: dict[str, str],
    defer: bool,
    raised: BaseException | None,
) -> None:
    """The final flow state is what the logged chains of decisions imply."""
    outcomes = []
    current: list[retry.Decision] | None = None
    for _, what, _name, extra in log.entries:
        if what == "failure":
            if current is not None:
                outcomes.append(resolution(current, defer))
            current = []
        elif what == "decision" and current is not None:
            current.append(extra)
    if current is not None:
        outcomes.append(resolution(current, defer))
    flow_state = str(engine.storage.get_flow_state())
    if "WHOLE" in outcomes:
        assert flow_state == "REVERTED"
        assert set(states.values()) <= {"REVERTED", "PENDING"}, states
    elif "GIVE_UP" in outcomes:
        assert flow_state == "REVERTED"
    else:
        assert flow_state == "SUCCESS"
        assert set(states.values()) == {"SUCCESS"}, states
    assert (raised is None) == (flow_state == "SUCCESS")
    if raised is not None:
        causes = list(raised) if isinstance(raised, tideflow.WrappedFailure) else [raised]
        assert all(isinstance(c, Planned) or c.check(Planned) for c in causes), causes
