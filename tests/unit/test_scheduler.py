"""The scheduler's decisions: readiness and revert order by counters."""

from tideflow import GraphFlow, LinearFlow, Task, UnorderedFlow
from tideflow._compiler import END, START, compile_flow
from tideflow._scheduler import Scheduler


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
