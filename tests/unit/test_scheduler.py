"""The scheduler's decisions: readiness and revert order by counters."""

import pytest

from tideflow import GraphFlow, LinearFlow, Task, UnorderedFlow
from tideflow._compiler import END, START, compile_flow
from tideflow._scheduler import Scheduler
from tideflow.errors import InternalError


class T(Task):
    def execute(self, **kwargs):
        return None


def drain_forward(plan, scheduler, ready, skip=()):
    """Complete nodes in readiness order; return atom names in the order they ran."""
    order = []
    queue = list(ready)
    while queue:
        node = queue.pop(0)
        if plan.names[node] in skip:
            continue
        if plan.kinds[node] not in (START, END):
            order.append(plan.names[node])
        queue.extend(scheduler.complete(node))
    return order


def test_forward_order_follows_links():
    a, b, c = T("a", provides="x"), T("b", requires=["x"]), T("c")
    plan = compile_flow(GraphFlow("g").add(b, c, a))
    scheduler = Scheduler(plan)
    order = drain_forward(plan, scheduler, scheduler.start([False] * plan.size))
    assert order.index("a") < order.index("b")
    assert sorted(order) == ["a", "b", "c"]


def test_done_nodes_are_not_ready_again():
    plan = compile_flow(LinearFlow("f").add(T("a"), T("b"), T("c")))
    done = [False] * plan.size
    done[plan.index["a"]] = True
    scheduler = Scheduler(plan)
    order = drain_forward(plan, scheduler, scheduler.start(done))
    assert order == ["b", "c"]


def test_revert_order_is_the_reverse_of_dependencies():
    inner = UnorderedFlow("u").add(T("b"), T("c"))
    plan = compile_flow(LinearFlow("f").add(T("a"), inner, T("d")))
    scheduler = Scheduler(plan)
    order = []
    queue = scheduler.start_revert()
    while queue:
        node = queue.pop(0)
        if plan.kinds[node] not in (START, END):
            order.append(plan.names[node])
        queue.extend(scheduler.reverted(node))
    assert order[0] == "d"
    assert set(order[1:3]) == {"b", "c"}
    assert order[3] == "a"


def test_each_edge_is_counted_once():
    plan = compile_flow(LinearFlow("f").add(*[T(f"t{i}") for i in range(1000)]))
    scheduler = Scheduler(plan)
    ready = scheduler.start([False] * plan.size)
    assert len(drain_forward(plan, scheduler, ready)) == 1000
    assert all(scheduler.is_done(n) for n in range(plan.size))


def test_completing_a_node_twice_is_an_internal_error_naming_it():
    plan = compile_flow(LinearFlow("f").add(T("a"), T("b")))
    scheduler = Scheduler(plan)
    scheduler.start([False] * plan.size)
    a = plan.index["a"]
    assert scheduler.complete(a) == [plan.index["b"]]
    with pytest.raises(InternalError, match="node 'a' completed twice"):
        scheduler.complete(a)


def test_reverting_a_node_twice_is_an_internal_error_naming_it():
    plan = compile_flow(LinearFlow("f").add(T("a"), T("b")))
    scheduler = Scheduler(plan)
    scheduler.start_revert()
    b = plan.index["b"]
    assert scheduler.reverted(b) == [plan.index["a"]]
    with pytest.raises(InternalError, match="node 'b' reverted twice"):
        scheduler.reverted(b)


@pytest.mark.parametrize(
    "flow",
    [
        LinearFlow("empty"),
        LinearFlow("f").add(T("a")),
        UnorderedFlow("u").add(T("a"), T("b")),
        LinearFlow("f").add(T("a"), UnorderedFlow("u").add(T("b"), T("c")), T("d")),
    ],
    ids=["empty", "one", "unordered", "nested"],
)
def test_a_reverse_pass_begins_at_the_root_end_only(flow):
    # every node but the root's end has a successor, so the end is the one node
    # revertible at once; a forward pass likewise begins at the root's start alone
    plan = compile_flow(flow)
    assert plan.succ[1] == []
    assert Scheduler(plan).start_revert() == [1]
    assert Scheduler(plan).start() == [0]
    assert Scheduler(plan).start([False] * plan.size) == [0]


def test_a_full_reverse_pass_reaches_every_node_once():
    plan = compile_flow(LinearFlow("f").add(T("a"), UnorderedFlow("u").add(T("b"), T("c")), T("d")))
    scheduler = Scheduler(plan)
    queue = scheduler.start_revert()
    seen = []
    while queue:
        node = queue.pop()
        seen.append(node)
        queue.extend(scheduler.reverted(node))
    assert sorted(seen) == list(range(plan.size))
    assert seen[-1] == 0  # the root's start, last


def _unordered_in_the_middle():
    plan = compile_flow(LinearFlow("f").add(T("a"), UnorderedFlow("u").add(T("b"), T("c")), T("d")))
    u = plan.flows[1]
    return plan, u, plan.index["b"], plan.index["c"]


def test_a_range_revert_waits_for_every_successor_inside_the_range():
    plan, u, b, c = _unordered_in_the_middle()
    scheduler = Scheduler(plan)
    assert scheduler.revert_range(u.start, u.stop) == [u.end]  # d is outside
    assert sorted(scheduler.reverted(u.end)) == [b, c]
    assert scheduler.reverted(b) == []  # u's start still waits for c
    assert scheduler.reverted(c) == [u.start]
    assert scheduler.reverted(u.start) == []  # a is outside the range: never reported


def test_a_range_reset_waits_for_every_predecessor_inside_the_range():
    plan, u, b, c = _unordered_in_the_middle()
    scheduler = Scheduler(plan)
    drain_forward(plan, scheduler, scheduler.start())
    assert scheduler.all_done()
    assert scheduler.reset_range(u.start, u.stop) == [u.start]  # a is still done
    assert sorted(scheduler.complete(u.start)) == [b, c]
    assert scheduler.complete(b) == []  # u's end still waits for c
    assert scheduler.complete(c) == [u.end]
