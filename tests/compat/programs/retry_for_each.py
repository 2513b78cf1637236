"""ForEach and ParameterizedForEach: each attempt provides the next value to try."""

from _common import show, states, watch

import taskflow.engines
from taskflow import retry, task
from taskflow.patterns import linear_flow as lf


class Connect(task.Task):
    def execute(self, host):
        print(f"  connect {host}")
        if host != "c":
            raise ConnectionError(f"{host} is down")
        return f"connected to {host}"

    def revert(self, host, result, **kwargs):
        print(f"  revert connect {host}: {show(result)}")


flow = lf.Flow("f", retry=retry.ForEach(["a", "b", "c", "d"], name="hosts", provides="host"))
flow.add(Connect("connect"))
engine = taskflow.engines.load(flow)
watch(engine)
engine.run()
print("flow", engine.storage.get_flow_state(), engine.storage.fetch_all())

# The values come from the store (rebind); a value listed twice is tried twice.
flow = lf.Flow(
    "p", retry=retry.ParameterizedForEach(name="each", provides="host", rebind=["hosts"])
)
flow.add(Connect("connect2"))
engine = taskflow.engines.load(flow, store={"hosts": ["x", "x", "y"]})
watch(engine)
try:
    engine.run()
except ConnectionError as exc:
    print("raised", type(exc).__name__, exc)
print("flow", engine.storage.get_flow_state())
print("atoms", states(engine, ["each", "connect2"]))
