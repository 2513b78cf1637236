"""Unordered flows: siblings are independent; two failures arrive as a WrappedFailure."""

import taskflow.engines
from taskflow import exceptions as exc
from taskflow import task
from taskflow.patterns import linear_flow as lf
from taskflow.patterns import unordered_flow as uf

events = []


class Rec(task.Task):
    def execute(self):
        events.append(("execute", self.name))
        return self.name

    def revert(self, result, **kwargs):
        events.append(("revert", self.name))


class Fail(Rec):
    def __init__(self, name, error):
        super().__init__(name)
        self.error = error

    def execute(self):
        events.append(("execute", self.name))
        raise self.error


# Success: every sibling runs once, the one after the unordered part runs last.
flow = lf.Flow("outer").add(uf.Flow("par").add(Rec("u1"), Rec("u2"), Rec("u3")), Rec("after"))
taskflow.engines.run(flow)
print("executed", sorted(n for _, n in events[:3]), "then", events[3])

# Two failures at once: a WrappedFailure carrying both; everything that ran is reverted.
for kind in ("serial", "parallel"):
    events.clear()
    flow = uf.Flow("two").add(
        Fail("c1", OSError("boom-c1")), Fail("d2", ValueError("bad-d2")), Rec("a3")
    )
    engine = taskflow.engines.load(flow, engine=kind)
    try:
        engine.run()
    except exc.WrappedFailure as wrapped:
        print(kind, "WrappedFailure", len(wrapped), sorted(str(f) for f in wrapped))
        print("  is TaskFlowException", isinstance(wrapped, exc.TaskFlowException))
        print(
            "  check", wrapped.check(ValueError), wrapped.check("OSError"), wrapped.check(KeyError)
        )
        print("  str starts", str(wrapped).startswith("WrappedFailure: [Failure: "))
    print("  executed", sorted(n for e, n in events if e == "execute"))
    print("  reverted", sorted(n for e, n in events if e == "revert"))
    print("  flow", engine.storage.get_flow_state())


# Siblings do not satisfy each other: a store value does.
class NeedsX(task.Task):
    def execute(self, x):
        return x


class GivesX(task.Task):
    default_provides = "x"

    def execute(self):
        return "from-sibling"


try:
    taskflow.engines.run(uf.Flow("sib").add(GivesX("g"), NeedsX("n")))
except exc.MissingDependencies as missing:
    print("siblings: MissingDependencies", isinstance(missing, exc.DependencyFailure))
print(
    "with store",
    taskflow.engines.run(uf.Flow("sib2").add(NeedsX("n2", provides="y")), store={"x": 5}),
)
