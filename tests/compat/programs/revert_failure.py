"""A revert that raises: that atom REVERT_FAILURE, the flow FAILURE, run() raises it."""

from _common import states, watch

import taskflow.engines
from taskflow import states as st
from taskflow import task
from taskflow.patterns import linear_flow as lf


class Fine(task.Task):
    def execute(self):
        return 1

    def revert(self, *args, **kwargs):
        print(f"  revert {self.name}")


class BadRevert(Fine):
    def revert(self, *args, **kwargs):
        print(f"  revert {self.name} (raising)")
        raise ValueError("revert-boom")


class Boom(Fine):
    def execute(self):
        raise OSError("exec-boom")


flow = lf.Flow("rf").add(Fine("a"), BadRevert("b"), Boom("c"))
engine = taskflow.engines.load(flow)
watch(engine)
try:
    engine.run()
except Exception as exc:
    print("raised", type(exc).__name__, repr(exc))
print("flow", engine.storage.get_flow_state(), engine.storage.get_flow_state() == st.FAILURE)
print("atoms", states(engine, ["a", "b", "c"]))
