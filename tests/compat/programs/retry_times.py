"""Times: a failing subflow is reverted and run again; the controller provides the attempt."""

from _common import show, states, watch

import taskflow.engines
from taskflow import retry, task
from taskflow.patterns import linear_flow as lf


class Step(task.Task):
    def __init__(self, name, fails=0, **kwargs):
        super().__init__(name, **kwargs)
        self.fails = fails
        self.runs = 0

    def execute(self, attempt=None):
        self.runs += 1
        print(f"  execute {self.name} run {self.runs} attempt={attempt}")
        if self.runs <= self.fails:
            raise OSError(f"{self.name} failed run {self.runs}")
        return f"{self.name}-{self.runs}"

    def revert(self, result, flow_failures, **kwargs):
        print(f"  revert {self.name} result={show(result)} failures={show(flow_failures)}")


# Succeeds on the third attempt: RETRYING, then everything PENDING, then again.
flow = lf.Flow("f", retry=retry.Times(3, name="r", provides="attempt")).add(
    Step("a"), Step("b", fails=2)
)
engine = taskflow.engines.load(flow)
watch(engine)
engine.run()
print("flow", engine.storage.get_flow_state(), "attempt", engine.storage.fetch("attempt"))
print("atoms", states(engine, ["r", "a", "b"]))
history = engine.storage.get_retry_history("r")
print("history", len(history), [(p, sorted(f)) for p, f in history])

# Out of attempts: the subflow and its controller are reverted; what ran before stays.
flow = lf.Flow("top").add(
    Step("pre"),
    lf.Flow("sub", retry=retry.Times(2, name="r2")).add(Step("c", fails=5)),
    Step("post"),
)
engine = taskflow.engines.load(flow, engine="parallel")
watch(engine)
try:
    engine.run()
except OSError as exc:
    print("raised", type(exc).__name__, exc)
print("flow", engine.storage.get_flow_state())
print("atoms", states(engine, ["pre", "r2", "c", "post"]))
print("history after revert", list(engine.storage.get_retry_history("r2")))
