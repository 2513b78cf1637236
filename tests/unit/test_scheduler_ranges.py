"""The scheduler's range operations: revert one flow's nodes, and make them runnable again."""

from tideflow import GraphFlow, LinearFlow, Task, UnorderedFlow
from tideflow._compiler import END, START, compile_flow
from tideflow._scheduler import Scheduler


class T(Task):
    def execute(self, **kwargs):
        return None


def names(plan, nodes):
    return [plan.names[n] for n in nodes if plan.kinds[n] not in (START, END)]


def run_all(plan, scheduler, ready):
    queue = list(ready)
    while queue:
        queue.extend(scheduler.complete(queue.pop(0)))


def drain_reverse(plan, scheduler, ready):
    """Revert in readiness order; return every node visited (bookkeeping nodes too)."""
    order = []
    queue = list(ready)
    while queue:
        node = queue.pop(0)
        order.append(node)
        queue.extend(scheduler.reverted(node))
    return order


def flow_range(plan, name):
    """The nodes a range operation works on for flow ``name``: after its start node."""
    info = next(f for f in plan.flows if f.name == name)
    return info.start + 1, info.stop


def sample():
    inner = LinearFlow("sub").add(T("b"), UnorderedFlow("u").add(T("c1"), T("c2")), T("d"))
    return compile_flow(LinearFlow("root").add(T("a"), inner, T("e")))


def test_revert_range_stays_inside_the_flow_and_keeps_dependency_order():
    plan = sample()
    scheduler = Scheduler(plan)
    run_all(plan, scheduler, scheduler.start())
    lo, hi = flow_range(plan, "sub")
    visited = drain_reverse(plan, scheduler, scheduler.revert_range(lo, hi))
    assert sorted(visited) == list(range(lo, hi))  # every node of the range, once
    order = names(plan, visited)
    assert order[0] == "d"
    assert set(order[1:3]) == {"c1", "c2"}
    assert order[3:] == ["b"]  # neither the flow's start, nor a or e, is ever reported


def test_revert_range_works_without_a_whole_pass_before_it_and_can_repeat():
    plan = sample()
    scheduler = Scheduler(plan)
    scheduler.start()
    lo, hi = flow_range(plan, "u")
    first = names(plan, drain_reverse(plan, scheduler, scheduler.revert_range(lo, hi)))
    again = names(plan, drain_reverse(plan, scheduler, scheduler.revert_range(lo, hi)))
    assert sorted(first) == sorted(again) == ["c1", "c2"]


def test_reset_range_makes_the_flow_ready_from_its_first_node_and_runs_it_again():
    plan = sample()
    scheduler = Scheduler(plan)
    queue = list(scheduler.start())
    while queue:  # everything up to d, which "fails": it never completes
        node = queue.pop(0)
        if plan.names[node] != "d":
            queue.extend(scheduler.complete(node))
    assert not scheduler.is_done(plan.index["e"])
    lo, hi = flow_range(plan, "sub")
    ready = scheduler.reset_range(lo, hi)
    assert names(plan, ready) == ["b"]
    assert not scheduler.is_done(plan.index["c1"])
    assert scheduler.is_done(plan.index["a"])  # outside the range: untouched
    order = []
    queue = list(ready)
    while queue:
        node = queue.pop(0)
        order.append(node)
        queue.extend(scheduler.complete(node))
    ran = names(plan, order)
    assert ran[0] == "b"
    assert set(ran[1:3]) == {"c1", "c2"}
    assert ran[3:] == ["d", "e"]  # e waited for the flow's end, as in a first pass
    assert scheduler.all_done()


def test_reset_range_before_the_flow_finished_leaves_successors_waiting():
    a, b, c = T("a", provides="x"), T("b", requires=["x"]), T("c")
    plan = compile_flow(LinearFlow("root").add(GraphFlow("g").add(b, a), c))
    scheduler = Scheduler(plan)
    queue = list(scheduler.start())
    done_nodes = []
    while queue:  # run up to a only: b has not run
        node = queue.pop(0)
        if plan.names[node] == "b":
            continue
        done_nodes.append(node)
        queue.extend(scheduler.complete(node))
    lo, hi = flow_range(plan, "g")
    assert names(plan, scheduler.reset_range(lo, hi)) == ["a"]
    assert not scheduler.is_done(plan.index["c"])
