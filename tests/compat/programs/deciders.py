"""Graph-flow deciders: a "no" IGNOREs the target and, by depth, what follows it."""

import taskflow.engines
from taskflow import deciders, task
from taskflow.patterns import graph_flow as gf
from taskflow.patterns import linear_flow as lf

ran = []


class T(task.Task):
    def execute(self, **kwargs):
        ran.append(self.name)
        return f"{self.name}-res"


def no(history):
    print("  decider saw", sorted(history.items()))
    return False


def yes(history):
    return True


# Default depth: the target and everything after it are IGNOREd; the flow succeeds.
a, b, c, d = T("a", provides="x"), T("b", provides="y"), T("c"), T("d")
flow = gf.Flow("g").add(a, b, c, d)
flow.link(a, b, decider=no)
flow.link(b, c)
engine = taskflow.engines.load(flow)
engine.atom_notifier.register(
    "IGNORE", lambda state, details: print("  IGNORE", details["task_name"], details["old_state"])
)
engine.run()
print("flow", engine.storage.get_flow_state(), "ran", sorted(ran))
print("states", {n: str(engine.storage.get_atom_state(n)) for n in "abcd"})

# A decider that says yes lets the target run.
ran.clear()
p, q = T("p"), T("q")
flow = gf.Flow("yes").add(p, q)
flow.link(p, q, decider=yes)
taskflow.engines.run(flow)
print("yes ran", ran)

# Depths, with the decided link pointing at a subflow inside an outer linear flow.
for depth in (None, "FLOW", "NEIGHBORS", "ATOM", "atom", deciders.Depth.FLOW):
    ran.clear()
    first = T("first")
    sub = lf.Flow("sub").add(T("s1"), T("s2"))
    graph = gf.Flow("graph").add(first, sub)
    graph.link(first, sub, decider=lambda history: False, decider_depth=depth)
    outer = lf.Flow("outer").add(graph, T("after"))
    engine = taskflow.engines.load(outer)
    engine.run()
    print(
        "depth",
        getattr(depth, "value", depth),
        {n: str(engine.storage.get_atom_state(n)) for n in ("s1", "s2", "after")},
    )

# Errors in the link itself.
x, y = T("x"), T("y")
flow = gf.Flow("bad").add(x, y)
for kwargs in ({"decider": no, "decider_depth": "bogus"}, {"decider_depth": "ATOM"}):
    try:
        flow.link(x, y, **kwargs)
    except ValueError:
        print("bad link", sorted(kwargs), "ValueError")

# A later failure elsewhere reverts what ran; ignored atoms stay ignored.
ran.clear()


class Boom(task.Task):
    def execute(self):
        raise RuntimeError("late")


m, n, late = T("m"), T("n"), Boom("late")
flow = gf.Flow("fail").add(m, n, late)
flow.link(m, n, decider=no)
flow.link(m, late)
engine = taskflow.engines.load(flow)
try:
    engine.run()
except RuntimeError as error:
    print("raised", error)
print("after failure", {k: str(engine.storage.get_atom_state(k)) for k in ("m", "n", "late")})
print("widest", deciders.pick_widest([deciders.Depth.ATOM, deciders.Depth.FLOW]).value)
print("translate", deciders.Depth.translate("neighbors").value)
