"""Random flows x random failure points: ordering, reverting and results hold on every engine.

Graph flows: random DAGs whose edges come from data (each task requires the results of
some earlier tasks), added in a random topological order (compiled by the one-pass path)
or in any order (compiled by sorting the links). Nestings: random trees of linear and
unordered flows. On the parallel engine, atoms take varied short times, so failures are
seen while other atoms still run. Each test runs on the serial engine and on the
parallel engine on threads and on asyncio (``property_kinds.py``); on asyncio a random
part of the atoms are ``async def`` (awaiting their delay on the loop), the others run
on its threads. For each, with or without a planned failure at a random atom:

- every executed atom started only after all its predecessors finished;
- without failure, every atom ran once and the results equal a reference computation;
- with a failure, every executed atom is reverted exactly once, each only after all of
  its executed successors were reverted; atoms that never ran stay PENDING; nothing
  starts once the engine has seen the failure.
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
from tideflow import GraphFlow, LinearFlow, Task, UnorderedFlow

# 200 examples: enough that planted bugs this suite once missed (a graph node losing one
# of several predecessors; atoms started after a failure) are caught on every run; see
# docs/testing.md. 200 on each kind: a few seconds per kind and test.
SETTINGS = settings(max_examples=200, deadline=None)
MAX_ATOMS = 30


def delays(kind: str, n: int) -> st.SearchStrategy[list[float]]:
    """How long each atom's execute takes: on the parallel engine, atoms finish in
    varied orders, so failures are seen while other atoms still run."""
    if not is_parallel(kind):
        return st.just([0.0] * n)
    return st.lists(st.sampled_from([0.0, 0.0, 0.0005, 0.002]), min_size=n, max_size=n)


def asyncs(kind: str, n: int) -> st.SearchStrategy[list[bool]]:
    """Which atoms are ``async def``: some, on the asyncio kind; none elsewhere."""
    if kind != "asyncio":
        return st.just([False] * n)
    return st.lists(st.booleans(), min_size=n, max_size=n)


class Planned(Exception):
    """The failure a test plans."""


class Log:
    """A totally ordered, thread-safe event log: ``(what, atom index)`` with a sequence number."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counter = itertools.count()
        self.at: dict[tuple[str, int], int] = {}
        self.duplicates: list[tuple[str, int]] = []

    def mark(self, what: str, index: int) -> None:
        with self._lock:
            key = (what, index)
            if key in self.at:
                self.duplicates.append(key)
            self.at[key] = next(self._counter)

    def did(self, what: str) -> set[int]:
        return {i for w, i in self.at if w == what}


class Node(Task):
    """Task ``i``: provides ``v<i>`` = i * 7 + sum of what it requires (mod a prime)."""

    def __init__(
        self, index: int, log: Log, fail: bool, requires: list[str], delay: float = 0.0
    ) -> None:
        super().__init__(f"n{index}", provides=f"v{index}", requires=requires)
        self.index = index
        self.log = log
        self.fail = fail
        self.delay = delay

    def execute(self, **kwargs: Any) -> int:
        self.log.mark("exec-start", self.index)
        try:
            if self.delay:
                time.sleep(self.delay)
            if self.fail:
                raise Planned(f"planned failure of n{self.index}")
            return (self.index * 7 + sum(kwargs.values())) % 1_000_003
        finally:
            self.log.mark("exec-end", self.index)

    def revert(self, **kwargs: Any) -> None:
        self.log.mark("revert-start", self.index)
        self.log.mark("revert-end", self.index)


class AsyncNode(Node):
    """Node whose execute and revert are coroutines, awaited on the engine's loop."""

    async def execute(self, **kwargs: Any) -> int:  # type: ignore[override]
        self.log.mark("exec-start", self.index)
        try:
            await asyncio.sleep(self.delay)
            if self.fail:
                raise Planned(f"planned failure of n{self.index}")
            return (self.index * 7 + sum(kwargs.values())) % 1_000_003
        finally:
            self.log.mark("exec-end", self.index)

    async def revert(self, **kwargs: Any) -> None:  # type: ignore[override]
        self.log.mark("revert-start", self.index)
        await asyncio.sleep(0)
        self.log.mark("revert-end", self.index)


def node(index: int, log: Log, fail: bool, requires: list[str], delay: float, is_async: bool):
    return (AsyncNode if is_async else Node)(index, log, fail, requires, delay)


def closure(preds: list[list[int]]) -> list[set[int]]:
    """Every (transitive) predecessor of each atom; ``preds`` lists earlier atoms only."""
    out: list[set[int]] = []
    for direct in preds:
        found: set[int] = set()
        for p in direct:
            found.add(p)
            found |= out[p]
        out.append(found)
    return out


def run_and_check(flow, n, ancestors, kind, fail_at, log):
    """Run ``flow`` and check the properties; ``ancestors[i]`` must finish before ``i``."""
    engine = tideflow.load(flow, **load_options(kind))
    atom_events: list[tuple[str, str]] = []
    engine.atom_notifier.register(
        "*", lambda state, details: atom_events.append((state, details["task_name"]))
    )
    if fail_at is None:
        engine.run()
    else:
        with pytest.raises(Planned, match=f"^planned failure of n{fail_at}$"):
            engine.run()

    assert log.duplicates == []
    executed = log.did("exec-start")
    at = log.at
    for i in executed:
        for p in ancestors[i]:
            assert p in executed, f"n{i} ran without its predecessor n{p}"
            assert at["exec-end", p] < at["exec-start", i], f"n{i} started before n{p} ended"
    states = {i: str(engine.storage.get_atom_state(f"n{i}")) for i in range(n)}

    if fail_at is None:
        assert executed == set(range(n))
        assert log.did("revert-start") == set()
        assert set(states.values()) == {"SUCCESS"}
        assert engine.storage.get_flow_state() == "SUCCESS"
        return engine

    assert fail_at in executed
    reverted = log.did("revert-start")
    assert reverted == executed, "every executed atom is reverted, and only those"
    for i in executed:
        for p in ancestors[i]:
            # i depends on p: i is undone before p's revert begins
            assert at["revert-end", i] < at["revert-start", p], f"n{p} reverted before n{i}"
    for i in range(n):
        assert states[i] == ("REVERTED" if i in executed else "PENDING"), f"n{i}"
    assert engine.storage.get_flow_state() == "REVERTED"
    first_failure = atom_events.index(("FAILURE", f"n{fail_at}"))
    assert not [e for e in atom_events[first_failure:] if e[0] == "RUNNING"], (
        "an atom started after the engine saw the failure"
    )
    return engine


# -- random DAGs as graph flows ------------------------------------------------------


@st.composite
def topological_order(draw, preds: list[list[int]]) -> list[int]:
    """A random order in which every atom comes after its predecessors."""
    n = len(preds)
    waiting = [len(p) for p in preds]
    succs: list[list[int]] = [[] for _ in range(n)]
    for i, direct in enumerate(preds):
        for p in direct:
            succs[p].append(i)
    ready = [i for i in range(n) if not waiting[i]]
    order: list[int] = []
    while ready:
        i = ready.pop(draw(st.integers(0, len(ready) - 1)))
        order.append(i)
        for s in succs[i]:
            waiting[s] -= 1
            if not waiting[s]:
                ready.append(s)
    return order


@st.composite
def dags(draw):
    n = draw(st.integers(1, MAX_ATOMS))
    preds = [
        sorted(draw(st.sets(st.integers(0, i - 1), max_size=min(i, 4)))) if i else []
        for i in range(n)
    ]
    # Added in a topological order, a graph flow compiles by its one-pass path; in any
    # other order, by sorting its links. Both are drawn often.
    add_order = draw(topological_order(preds) | st.permutations(range(n)))
    fail_at = draw(st.none() | st.integers(0, n - 1))
    return n, preds, add_order, fail_at


def reference(preds: list[list[int]]) -> list[int]:
    values: list[int] = []
    for i, direct in enumerate(preds):
        values.append((i * 7 + sum(values[p] for p in direct)) % 1_000_003)
    return values


@pytest.mark.parametrize("kind", KIND_PARAMS)
@SETTINGS
@given(dag=dags(), chunked=st.booleans(), data=st.data())
def test_random_dag_in_a_graph_flow(kind, dag, chunked, data):
    n, preds, add_order, fail_at = dag
    log = Log()
    delay = data.draw(delays(kind, n), label="delays")
    is_async = data.draw(asyncs(kind, n), label="async")
    nodes = [
        node(i, log, i == fail_at, [f"v{p}" for p in preds[i]], delay[i], is_async[i])
        for i in range(n)
    ]
    graph = GraphFlow("g")
    if chunked:
        for i in add_order:
            graph.add(nodes[i])
    else:
        graph.add(*(nodes[i] for i in add_order))
    engine = run_and_check(graph, n, closure(preds), kind, fail_at, log)
    if fail_at is None:
        expected = reference(preds)
        assert engine.storage.fetch_all() == {f"v{i}": expected[i] for i in range(n)}


# -- random nestings of linear and unordered flows ------------------------------------


def trees():
    leaf = st.just("task")
    return st.recursive(
        leaf,
        lambda children: st.tuples(
            st.sampled_from(["linear", "unordered"]), st.lists(children, min_size=1, max_size=4)
        ),
        max_leaves=MAX_ATOMS,
    )


def build(tree, log, fail_at, counter, flow_ids, delay, is_async):
    """Build the flow for ``tree``; return (flow or task, its atom indexes, ordering pairs)."""
    if tree == "task":
        index = next(counter)
        return node(index, log, index == fail_at, [], delay[index], is_async[index]), [index], []
    pattern, children = tree
    flow_cls = LinearFlow if pattern == "linear" else UnorderedFlow
    flow = flow_cls(f"{pattern}-{next(flow_ids)}")
    atoms: list[int] = []
    pairs: list[tuple[int, int]] = []
    previous: list[int] = []
    for child in children:
        item, child_atoms, child_pairs = build(
            child, log, fail_at, counter, flow_ids, delay, is_async
        )
        flow.add(item)
        pairs.extend(child_pairs)
        if pattern == "linear":
            pairs.extend((p, c) for p in previous for c in child_atoms)
            previous = child_atoms
        atoms.extend(child_atoms)
    return flow, atoms, pairs


def count_leaves(tree) -> int:
    return 1 if tree == "task" else sum(count_leaves(c) for c in tree[1])


@pytest.mark.parametrize("kind", KIND_PARAMS)
@SETTINGS
@given(tree=trees(), data=st.data())
def test_random_nesting_of_linear_and_unordered_flows(kind, tree, data):
    n = count_leaves(tree)
    fail_at = data.draw(st.none() | st.integers(0, n - 1), label="fail_at")
    log = Log()
    delay = data.draw(delays(kind, n), label="delays")
    is_async = data.draw(asyncs(kind, n), label="async")
    root, atoms, pairs = build(
        tree, log, fail_at, itertools.count(), itertools.count(), delay, is_async
    )
    if not isinstance(root, tideflow.Flow):
        root = LinearFlow("single").add(root)
    assert sorted(atoms) == list(range(n))
    ancestors: list[set[int]] = [set() for _ in range(n)]
    for before, after in pairs:
        ancestors[after].add(before)
    engine = run_and_check(root, n, ancestors, kind, fail_at, log)
    if fail_at is None:
        assert engine.storage.fetch_all() == {f"v{i}": i * 7 for i in range(n)}
