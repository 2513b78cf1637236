"""A failing linear flow: reverts run newest first, the original exception comes out."""

from _common import show, states, watch

import taskflow.engines
from taskflow import task
from taskflow.patterns import linear_flow as lf


class Step(task.Task):
    def execute(self):
        print(f"  execute {self.name}")
        return self.name

    def revert(self, result, flow_failures, **kwargs):
        print(
            f"  revert {self.name} result={show(result)} failures={show(flow_failures)}"
            f" extra={sorted(kwargs)}"
        )


class Boom(Step):
    def execute(self):
        print(f"  execute {self.name}")
        raise OSError("boom")


flow = lf.Flow("rev").add(Step("a"), Step("b"), Boom("c"))
engine = taskflow.engines.load(flow)
watch(engine)
for attempt in (1, 2):
    print("attempt", attempt)
    try:
        engine.run()
    except Exception as exc:
        print("raised", type(exc).__name__, exc)
    print("flow", engine.storage.get_flow_state())
    print("atoms", states(engine, ["a", "b", "c"]))
