"""Graph flows: order inferred from provides/requires and from explicit links."""

import taskflow.engines
from taskflow import task
from taskflow.patterns import graph_flow as gf
from taskflow.patterns import linear_flow as lf

order = []


class T(task.Task):
    def execute(self, **kwargs):
        order.append(self.name)
        return f"{self.name}({','.join(f'{k}={v}' for k, v in sorted(kwargs.items()))})"


# Added in reverse of the order they must run: data links put them right.
flow = gf.Flow("g").add(
    T("total", requires=["left", "right"], provides="sum"),
    T("right", requires=["base"], provides="right"),
    T("left", requires=["base"], provides="left"),
    T("base", provides="base"),
)
results = taskflow.engines.run(flow)
print("base first", order[0], "total last", order[-1], "count", len(order))
print("sum", results["sum"])
print(
    "links", sorted((u.name, v.name, sorted(m.get("reasons", ()))) for u, v, m in flow.iter_links())
)
print("requires", sorted(flow.requires), "provides", sorted(flow.provides))

# An explicit link orders two tasks that share no data.
order.clear()
a, b = T("a"), T("b")
flow = gf.Flow("manual").add(b, a)
flow.link(a, b)
taskflow.engines.run(flow)
print("manual", order, [(u.name, v.name, m) for u, v, m in flow.iter_links()])

# A graph flow nested in a linear flow sees what comes before it.
order.clear()
outer = lf.Flow("outer").add(
    T("first", provides="seed"),
    gf.Flow("inner").add(T("use", requires=["seed"], provides="used")),
)
print("nested", taskflow.engines.run(outer)["used"], order)

# A targeted flow runs only the target and what it needs.
order.clear()
tflow = gf.TargetedFlow("targeted")
x, y, z = T("x", provides="xv"), T("y", requires=["xv"], provides="yv"), T("z")
tflow.add(x, y, z)
tflow.set_target(y)
taskflow.engines.run(tflow)
print("targeted", sorted(order))
