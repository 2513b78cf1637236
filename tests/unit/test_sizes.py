"""Sizes users reach: deep nesting, many values, large graphs (issue 6, item 5).

Correctness at size, not timing: nothing here may recurse over the flow tree (20,000
levels is far past Python's recursion limit), and results must be right at 100,000.
Timings live in ``bench/``.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest

import tideflow
from tideflow import (
    AtomState,
    GraphFlow,
    LinearFlow,
    Task,
    UnorderedFlow,
)
from tideflow._compiler import compile_flow

DEPTH = 20_000
ENGINES = ("serial", "parallel")

# Every test here must work whatever the recursion limit; make sure that limit is
# far below the sizes used, so an accidental recursion fails loudly.
assert sys.getrecursionlimit() * 10 < DEPTH


class Add(Task):
    """Return the sum of its arguments plus one."""

    def execute(self, **kwargs: int) -> int:
        return sum(kwargs.values()) + 1


class Record(Task):
    """Record executes and reverts (thread-safe: the parallel engine runs it too)."""

    def __init__(self, name: str, log: list[tuple[str, str]], fail: bool = False, **kw: Any):
        super().__init__(name, **kw)
        self.log = log
        self.fail = fail
        self.lock = threading.Lock()

    def execute(self, **kwargs: Any) -> str:
        with self.lock:
            self.log.append(("execute", self.name))
        if self.fail:
            raise RuntimeError(f"{self.name} fails")
        return self.name

    def revert(self, **kwargs: Any) -> None:
        with self.lock:
            self.log.append(("revert", self.name))


def nest(depth: int, bottom: Task, level: Callable[[int], Task | None], *, task_first: bool = True):
    """``depth`` LinearFlows, each inside the next, ``bottom`` in the innermost.

    ``level(i)`` gives the task of level ``i`` (0 is the outermost), or None. Built
    from the bottom up, the way nested flows usually are.
    """
    flow = LinearFlow(f"f{depth - 1}").add(bottom)
    for i in range(depth - 2, -1, -1):
        task = level(i)
        outer = LinearFlow(f"f{i}")
        if task is None:
            outer.add(flow)
        elif task_first:
            outer.add(task, flow)
        else:
            outer.add(flow, task)
        flow = outer
    return flow


def innermost(flow: LinearFlow) -> LinearFlow:
    """The deepest flow of a chain built by :func:`nest`."""
    while True:
        subflows = [child for child in flow if isinstance(child, LinearFlow)]
        if not subflows:
            return flow
        flow = subflows[0]


@pytest.mark.parametrize("engine", ENGINES)
def test_20000_nested_flows_with_one_task_at_the_bottom(engine: str) -> None:
    flow = nest(DEPTH, Add("bottom", provides="out", requires=["seed"]), lambda i: None)
    assert flow.requires == {"seed"}
    assert flow.provides == {"out"}
    plan = compile_flow(flow)
    assert len(plan.flows) == DEPTH
    assert plan.size == 2 * DEPTH + 1
    assert tideflow.run(flow, store={"seed": 41}, engine=engine) == {"seed": 41, "out": 42}


@pytest.mark.parametrize("engine", ENGINES)
def test_values_pass_from_the_bottom_task_outward_through_20000_levels(engine: str) -> None:
    # level i's task runs after the flow nested in it and adds one to its value
    def level(i: int) -> Task:
        return Add(f"t{i}", provides=f"v{i}", requires=[f"v{i + 1}"])

    bottom = Add(f"t{DEPTH - 1}", provides=f"v{DEPTH - 1}", requires=["seed"])
    flow = nest(DEPTH, bottom, level, task_first=False)
    assert flow.requires == {"seed"}
    assert flow.provides == {f"v{i}" for i in range(DEPTH)}
    values = tideflow.run(flow, store={"seed": 0}, engine=engine)
    assert len(values) == DEPTH + 1
    # the bottom makes 1, and each level outward adds one
    assert all(values[f"v{i}"] == DEPTH - i for i in range(DEPTH))


@pytest.mark.parametrize("engine", ENGINES)
def test_a_failure_at_the_bottom_of_20000_levels_reverts_every_level(engine: str) -> None:
    log: list[tuple[str, str]] = []
    bottom = Record("bottom", log, fail=True)
    flow = nest(DEPTH, bottom, lambda i: Record(f"t{i}", log), task_first=True)
    engine_ = tideflow.load(flow, engine=engine)
    with pytest.raises(RuntimeError, match="bottom fails"):
        engine_.run()
    outer_first = [f"t{i}" for i in range(DEPTH - 1)]
    assert [name for what, name in log if what == "execute"] == [*outer_first, "bottom"]
    # the failed task first, then every level, innermost first
    assert [name for what, name in log if what == "revert"] == ["bottom", *outer_first[::-1]]
    states = {name: engine_.storage.get_atom_state(name) for name in outer_first}
    assert set(states.values()) == {AtomState.REVERTED}
    assert engine_.storage.get_flow_state() is tideflow.FlowState.REVERTED


def test_requires_and_provides_of_every_level_of_a_deep_nest() -> None:
    # level i requires r{i+1} (provided further in, after it) and provides r{i}:
    # nothing inside satisfies an outer level, so every level's name escapes
    def level(i: int) -> Task:
        return Add(f"t{i}", provides=f"r{i}", requires=[f"r{i + 1}"])

    flow = nest(DEPTH, Add("bottom", provides="deep", requires=["x"]), level)
    assert flow.requires == {"x"} | {f"r{i}" for i in range(1, DEPTH)}
    assert flow.provides == {"deep"} | {f"r{i}" for i in range(DEPTH - 1)}
    deepest = innermost(flow)
    assert deepest.requires == {"x"}
    assert deepest.provides == {"deep"}


def test_a_deep_nest_of_unordered_flows_has_no_recursion() -> None:
    depth = 3 * sys.getrecursionlimit()
    flow = UnorderedFlow("f0").add(Add("bottom", provides="v", requires=["seed"]))
    for i in range(1, depth):
        flow = UnorderedFlow(f"f{i}").add(flow, Add(f"t{i}", provides=f"v{i}"))
    assert flow.requires == {"seed"}
    assert len(flow.provides) == depth
    values = tideflow.run(flow, store={"seed": 1})
    assert values["v"] == 2
    assert len(values) == depth + 1


@pytest.mark.parametrize("engine", ENGINES)
def test_scope_is_right_at_the_bottom_of_20000_alternating_linear_and_unordered_levels(
    engine: str,
) -> None:
    # every level holds a task providing "x" (its level number) and the next level;
    # a linear level's subflow sees its task's x, an unordered level's does not
    class Level(Task):
        def execute(self) -> int:
            return int(self.name[1:])

    class Echo(Task):
        def execute(self, x: int) -> int:
            return x

    flow: tideflow.Flow = LinearFlow(f"f{DEPTH - 1}").add(Echo("bottom", provides="seen"))
    for i in range(DEPTH - 2, -1, -1):
        pattern = LinearFlow if i % 2 == 0 else UnorderedFlow
        flow = pattern(f"f{i}").add(Level(f"t{i}", provides="x"), flow)
    # the deepest level whose task the bottom sees: the last linear one above it
    deepest_linear = max(i for i in range(DEPTH - 1) if i % 2 == 0)
    assert flow.requires == set()
    values = tideflow.run(flow, engine=engine)
    assert values["seen"] == deepest_linear
    assert len(values["x"]) == DEPTH - 1  # every level's x, in plan order
    assert values["x"] == list(range(DEPTH - 1))


def test_every_level_reads_the_deepest_provider_through_20000_levels() -> None:
    # "x" comes from the top and from the bottom; each level's task, after its
    # subflow, reads the bottom's (the nearest); an unordered flow elsewhere makes
    # the compiler check each pair of providers for unordered siblings
    class Echo(Task):
        def execute(self, x: str) -> str:
            return x

    class Make(Task):
        def execute(self) -> str:
            return self.name

    flow = LinearFlow("bottom").add(Make("deep", provides="x"))
    for i in range(DEPTH):
        flow = LinearFlow(f"f{i}").add(flow, Echo(f"use{i}", provides=f"r{i}"))
    root = LinearFlow("root").add(Make("top", provides="x"), flow, UnorderedFlow("u"))
    plan = compile_flow(root)
    deep = plan.index["deep"]
    assert all(plan.args[plan.index[f"use{i}"]][0].provider == deep for i in range(DEPTH))
    values = tideflow.run(root)
    assert all(values[f"r{i}"] == "deep" for i in range(DEPTH))


def test_a_deep_nest_of_graph_flows_has_no_recursion() -> None:
    # built from the top down: each graph flow gets its task and its (still empty)
    # subflow; a graph flow links only what is known when it is added, so nothing
    # here is linked and every level reads the store
    depth = 3 * sys.getrecursionlimit()
    root = flow = GraphFlow("f0")
    for i in range(1, depth):
        sub = GraphFlow(f"f{i}")
        flow.add(Add(f"t{i}", provides=f"v{i}", requires=["seed"]), sub)
        flow = sub
    flow.add(Add("bottom", provides="v", requires=["seed"]))
    assert root.requires == {"seed"}
    assert len(root.provides) == depth
    values = tideflow.run(root, store={"seed": 1})
    assert len(values) == depth + 1
    assert set(values.values()) == {1, 2}  # the seed, and each level's seed + 1


def test_a_cycle_check_across_a_deep_nest() -> None:
    flow = nest(DEPTH, Add("bottom"), lambda i: None)
    deepest = innermost(flow)
    with pytest.raises(tideflow.AtomReusedError, match="cycle of flows"):
        deepest.add(flow)
    assert len(deepest) == 1
    # adding a fresh flow at the bottom is still fine, and cheap both ways round
    deepest.add(LinearFlow("new").add(Add("extra")))
    assert len(compile_flow(flow).flows) == DEPTH + 1


def test_fetch_all_with_100000_values_returns_every_value_store_first() -> None:
    n = 100_000
    names = tuple(f"v{i}" for i in range(n))

    class Many(Task):
        def execute(self) -> tuple[int, ...]:
            return tuple(range(n))

    # the task provides v0..v99999; the store gives every even one too, and 1,000 more
    store = {f"v{i}": -i for i in range(0, n, 2)}
    store.update({f"s{i}": f"store {i}" for i in range(1000)})
    engine = tideflow.load(LinearFlow("f").add(Many("many", provides=names)), store=store)
    engine.run()
    storage = engine.storage
    found = storage.fetch_all()
    assert len(found) == n + 1000
    for i in range(n):
        # a name with a store value and a result maps to both, the store's first
        expected = [-i, i] if i % 2 == 0 else i
        assert found[f"v{i}"] == expected
    assert all(found[f"s{i}"] == f"store {i}" for i in range(1000))
    # the store value wins a single fetch
    assert storage.fetch("v4") == -4
    assert storage.fetch("v5") == 5
    # store names first (in store order), then provided names
    assert list(found)[: len(store)] == list(store)
    # the fast path agrees with the general one (which builds each name's sources)
    assert storage.fetch_all(lambda values: values[0] if len(values) == 1 else values) == found


def _general(values: list[Any]) -> Any:
    """The default shape, given as a handler: fetch_all() then takes its general path."""
    return values[0] if len(values) == 1 else values


def test_fetch_all_fast_path_matches_the_general_path() -> None:
    class Pair(Task):
        def execute(self) -> tuple[int, int]:
            return (1, 2)

    flow = UnorderedFlow("u").add(
        Pair("pair", provides=("a", "b")),
        Pair("short", provides=("c", "d", "e")),  # "e" is past the end: no value
        Add("dup", provides="a"),
    )
    engine = tideflow.load(flow, store={"a": "stored", "t": 0})
    engine.storage.inject({"t": "transient", "only": 9}, transient=True)
    engine.run()
    found = engine.storage.fetch_all()
    # store names (recorded, then transient-only), then provided names; a transient
    # value wins over a recorded one; a name's store value comes before its results
    expected = {"a": ["stored", 1, 1], "t": "transient", "only": 9, "b": 2, "c": 1, "d": 2}
    assert found == expected
    assert list(found) == list(expected)
    assert engine.storage.fetch_all(_general) == expected
    assert list(engine.storage.fetch_all(_general)) == list(expected)


def test_fetch_all_after_a_failed_run_has_only_store_values_on_both_paths() -> None:
    class Boom(Task):
        def execute(self) -> None:
            raise RuntimeError("boom")

    flow = LinearFlow("f").add(Add("a", provides="x"), Boom("boom", provides="z"))
    engine = tideflow.load(flow, store={"s": 1})
    with pytest.raises(RuntimeError, match="boom"):
        engine.run()
    # reverted results are not values any more
    assert engine.storage.fetch_all() == {"s": 1}
    assert engine.storage.fetch_all(_general) == {"s": 1}


def test_run_returns_every_value_of_a_100000_task_linear_flow() -> None:
    n = 100_000

    class Same(Task):
        def execute(self) -> int:
            return 7

    flow = LinearFlow("f").add(*[Same(f"t{i}", provides=f"v{i}") for i in range(n)])
    values = tideflow.run(flow)
    assert len(values) == n
    assert set(values.values()) == {7}


def test_a_large_graph_flow_is_built_with_the_right_links() -> None:
    n = 20_000
    # task i requires the results of tasks i-1 and i//2 (distinct when i > 2)
    tasks = [Add("t0", provides="r0")]
    tasks += [
        Add(f"t{i}", provides=f"r{i}", requires=sorted({f"r{i - 1}", f"r{i // 2}"}))
        for i in range(1, n)
    ]
    flow = GraphFlow("g").add(*tasks)
    links = {(u.name, v.name) for u, v, _ in flow.iter_links()}
    expected = {(f"t{i - 1}", f"t{i}") for i in range(1, n)}
    expected |= {(f"t{i // 2}", f"t{i}") for i in range(1, n)}
    assert links == expected
    assert flow.requires == set()
    values = tideflow.run(flow)
    assert values["r0"] == 1
    assert values["r1"] == 2  # r0 + 1
    assert values["r3"] == values["r2"] + values["r1"] + 1


def test_a_graph_flow_built_in_reverse_order_compiles_and_runs() -> None:
    # consumers added before their providers: links point backwards in insertion order
    n = 20_000
    tasks = [Add(f"t{i}", provides=f"r{i}", requires=[f"r{i - 1}"] if i else []) for i in range(n)]
    flow = GraphFlow("g").add(*reversed(tasks))
    values = tideflow.run(flow)
    assert values[f"r{n - 1}"] == n


def test_linking_a_long_chain_backwards_refuses_the_closing_link() -> None:
    n = 20_000
    tasks = [Add(f"t{i}") for i in range(n)]
    flow = GraphFlow("g").add(*tasks)
    for i in range(n - 2, -1, -1):
        flow.link(tasks[i], tasks[i + 1])
    with pytest.raises(tideflow.CycleError, match="'t19999' -> 't0' would create a cycle"):
        flow.link(tasks[-1], tasks[0])
    assert len(list(flow.iter_links())) == n - 1
