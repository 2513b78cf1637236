"""A linear flow of two tasks: every flow and atom notification, and the run's values."""

from _common import states, watch

import taskflow.engines
from taskflow import task
from taskflow.patterns import linear_flow as lf


class Make(task.Task):
    default_provides = "x"

    def execute(self):
        print("  execute make")
        return 1


class Add(task.Task):
    def execute(self, x, y=10):
        print(f"  execute add x={x} y={y}")
        return x + y


flow = lf.Flow("lin").add(Make("make"), Add("add", provides="total"))
engine = taskflow.engines.load(flow)
watch(engine)
print("run ->", engine.run())
print("flow", engine.storage.get_flow_state())
print("atoms", states(engine, ["make", "add"]))
print("fetch total", engine.storage.fetch("total"))
print("fetch_all", sorted(engine.storage.fetch_all().items()))

print(
    "engines.run ->",
    sorted(
        taskflow.engines.run(
            lf.Flow("again").add(Make("m2"), Add("a2", provides="t2")), store={"y": 5}
        ).items()
    ),
)
