"""A graph node with several predecessors runs after every one of them.

A graph flow whose nodes were added in a topological order (each after what it
requires) compiles by a one-pass path; any other order by sorting its links. A node
with several parents must keep every parent in both. Each example makes one parent
*late* (behind a head task), so a node that lost that parent would run before it on
either engine, and receive ``None`` for its value; every parent is made the late one in
turn, every order of adding the parents is tried, in one ``add()`` call and in
separate calls.
"""

from __future__ import annotations

import itertools

import pytest

from tideflow import GraphFlow
from tideflow._compiler import compile_flow


def parents_example(make, k, late, parent_order, *, one_call, child_first=False):
    """Parents p0..p{k-1} (p<late> after a head h), and ``child`` requiring all of them.

    Returns the flow and the values ``child`` must receive.
    """
    head = make("h", provides="hv", value=100)
    parents = [
        make(f"p{i}", provides=f"v{i}", requires=["hv"], compute=lambda hv, i=i: hv + i)
        if i == late
        else make(f"p{i}", provides=f"v{i}", value=i)
        for i in range(k)
    ]
    child = make("child", requires=[f"v{i}" for i in range(k)], compute=lambda **kw: kw)
    nodes = [head, *(parents[i] for i in parent_order), child]
    if child_first:
        nodes = [child, *nodes[:-1]]
    graph = GraphFlow("g")
    if one_call:
        graph.add(*nodes)
    else:
        for node in nodes:
            graph.add(node)
    expected = {f"v{i}": (100 + i if i == late else i) for i in range(k)}
    return graph, expected


CASES = [
    (k, late, order)
    for k in (2, 3, 4)
    for late in range(k)
    for order in itertools.permutations(range(k))
    if k < 4 or order in {(0, 1, 2, 3), (3, 2, 1, 0), (1, 3, 0, 2)}
]


def _id(case):
    k, late, order = case
    return f"{k}parents-late{late}-order{''.join(map(str, order))}"


@pytest.mark.parametrize("case", CASES, ids=_id)
@pytest.mark.parametrize("one_call", [True, False], ids=["one-add", "separate-adds"])
def test_every_parent_is_kept_in_the_plan(case, one_call, make):
    k, late, order = case
    graph, _ = parents_example(make, k, late, order, one_call=one_call)
    plan = compile_flow(graph)
    child = plan.index["child"]
    parents = {plan.index[f"p{i}"] for i in range(k)}
    assert set(plan.pred[child]) == parents
    assert plan.pred[plan.index[f"p{late}"]] == [plan.index["h"]]


@pytest.mark.parametrize("case", CASES, ids=_id)
@pytest.mark.parametrize("one_call", [True, False], ids=["one-add", "separate-adds"])
def test_the_node_runs_after_every_parent(case, one_call, load, make, journal):
    k, late, order = case
    graph, expected = parents_example(make, k, late, order, one_call=one_call)
    engine = load(graph)
    engine.run()
    assert journal.args_of("child") == expected
    executed = journal.executed()
    assert executed[-1] == "child"
    assert sorted(executed) == sorted(["h", "child", *(f"p{i}" for i in range(k))])
    assert executed.index("h") < executed.index(f"p{late}")


@pytest.mark.parametrize("late", [0, 1, 2])
def test_added_child_first_runs_after_every_parent(late, load, make, journal):
    # not topological: the same guarantee through the general path
    graph, expected = parents_example(make, 3, late, (2, 0, 1), one_call=False, child_first=True)
    engine = load(graph)
    engine.run()
    assert journal.args_of("child") == expected
    assert journal.executed()[-1] == "child"


@pytest.mark.parametrize("late", ["b", "c"])
@pytest.mark.parametrize("one_call", [True, False], ids=["one-add", "separate-adds"])
def test_diamond(late, one_call, load, make, journal):
    # a -> b, a -> c, (b, c) -> d; the late side has an extra step before it
    a = make("a", provides="x", value=1)
    step = make("step", requires=["x"], provides="s", compute=lambda x: x + 10)
    b = make("b", requires=["s" if late == "b" else "x"], provides="bv", compute=lambda **kw: 2)
    c = make("c", requires=["s" if late == "c" else "x"], provides="cv", compute=lambda **kw: 3)
    d = make("d", requires=["bv", "cv"], compute=lambda bv, cv: bv * cv)
    nodes = [a, step, b, c, d]
    graph = GraphFlow("diamond")
    if one_call:
        graph.add(*nodes)
    else:
        for node in nodes:
            graph.add(node)
    engine = load(graph)
    engine.run()
    assert journal.args_of("d") == {"bv": 2, "cv": 3}
    assert journal.executed()[-1] == "d"
    assert engine.storage.get("d") == 6


@pytest.mark.parametrize("late", [0, 1, 2])
def test_manual_links_to_one_node_are_all_kept(late, load, make, journal):
    # links given with link(), no data between the tasks
    head = make("h")
    parents = [make(f"p{i}") for i in range(3)]
    child = make("child")
    graph = GraphFlow("g").add(head, *parents, child)
    graph.link(head, parents[late])
    for parent in parents:
        graph.link(parent, child)
    plan = compile_flow(graph)
    assert set(plan.pred[plan.index["child"]]) == {plan.index[f"p{i}"] for i in range(3)}
    engine = load(graph)
    engine.run()
    executed = journal.executed()
    assert executed[-1] == "child"
    assert executed.index("h") < executed.index(f"p{late}")


@pytest.mark.parametrize("k", [2, 3, 4])
@pytest.mark.parametrize("order", ["topological", "reversed", "mixed"])
def test_fan_out_and_in_in_any_order(k, order, load, make, journal):
    # src -> c0..c{k-1} -> sink: each consumer keeps src, the sink keeps every consumer
    src = make("src", provides="x", value=10)
    consumers = [
        make(f"c{i}", requires=["x"], provides=f"y{i}", compute=lambda x, i=i: x + i)
        for i in range(k)
    ]
    sink = make("sink", requires=[f"y{i}" for i in range(k)], compute=lambda **kw: kw)
    nodes = [src, *consumers, sink]
    if order == "reversed":
        nodes.reverse()
    elif order == "mixed":
        nodes = [consumers[-1], sink, src, *consumers[:-1]]
    graph = GraphFlow("g").add(*nodes)
    plan = compile_flow(graph)
    for i in range(k):
        assert plan.pred[plan.index[f"c{i}"]] == [plan.index["src"]]
    assert set(plan.pred[plan.index["sink"]]) == {plan.index[f"c{i}"] for i in range(k)}
    engine = load(graph)
    engine.run()
    assert journal.args_of("sink") == {f"y{i}": 10 + i for i in range(k)}
    assert journal.executed()[0] == "src"
    assert journal.executed()[-1] == "sink"
