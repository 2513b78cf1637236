"""Nested controllers: the inner one gives up, the outer one decides (here: retry)."""

from _common import show, states, watch

import taskflow.engines
from taskflow import retry, task
from taskflow.patterns import graph_flow as gf
from taskflow.patterns import linear_flow as lf

runs = {}


class Step(task.Task):
    def __init__(self, name, fails=0, **kwargs):
        super().__init__(name, **kwargs)
        self.fails = fails

    def execute(self, **kwargs):
        runs[self.name] = runs.get(self.name, 0) + 1
        print(f"  execute {self.name} #{runs[self.name]} {sorted(kwargs.items())}")
        if runs[self.name] <= self.fails:
            raise ValueError(f"{self.name} #{runs[self.name]}")
        return self.name


class Outer(retry.Times):
    def on_failure(self, history, *args, **kwargs):
        decision = super().on_failure(history, *args, **kwargs)
        print(
            "  outer asked:",
            [(p, {k: show(v) for k, v in f.items()}) for p, f in history],
            decision,
        )
        return decision


inner = gf.Flow("inner", retry=retry.Times(2, name="ri", provides="inner_try")).add(
    Step("a", provides="x"), Step("b", requires=["x", "inner_try"], fails=3)
)
flow = lf.Flow("outer", retry=Outer(3, name="ro", provides="outer_try")).add(
    Step("first", requires=["outer_try"]), inner, Step("last")
)
engine = taskflow.engines.load(flow)
watch(engine)
engine.run()
print("flow", engine.storage.get_flow_state())
print("atoms", states(engine, ["ro", "first", "ri", "a", "b", "last"]))
print("runs", sorted(runs.items()))
for name in ("ro", "ri"):
    h = engine.storage.get_retry_history(name)
    print(name, "history", [(p, sorted(f)) for p, f in h])
