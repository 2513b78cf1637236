"""Stepping an engine with run_iter(), suspending it, and resetting it."""

import taskflow.engines
from taskflow import states, task
from taskflow.patterns import linear_flow as lf


class T(task.Task):
    def execute(self):
        print("  execute", self.name)
        return self.name


def make(name):
    return lf.Flow(name).add(T("a"), T("b"))


engine = taskflow.engines.load(make("it"))
engine.notifier.register("*", lambda s, details: print("  FLOW", details["old_state"], "->", s))
yielded = []
for state in engine.run_iter():
    yielded.append(state)
print("yields are str", all(isinstance(s, str) for s in yielded))
print("first", yielded[:2], "last", yielded[-1], "phases", sorted(set(yielded[2:-1])))
print("flow", engine.storage.get_flow_state())

# Suspend from the iterator, then resume with run().
engine = taskflow.engines.load(make("sus"))
it = engine.run_iter()
print("first", next(it), next(it))
rest = [it.send(True), *it]
print(
    "ends",
    rest[-1],
    "flow",
    engine.storage.get_flow_state(),
    engine.storage.get_flow_state() == states.SUSPENDED,
)
print("atoms", [str(engine.storage.get_atom_state(n)) for n in ("a", "b")])
engine.run()
print("after run", engine.storage.get_flow_state())

# reset() puts everything back to PENDING.
engine.reset()
print(
    "after reset",
    engine.storage.get_flow_state(),
    engine.storage.fetch_all(),
    [str(engine.storage.get_atom_state(n)) for n in ("a", "b")],
)
engine.run()
keys = {
    "active_for",
    "awaiting",
    "completed",
    "discarded_failures",
    "incomplete",
    "seconds_per_state",
}
print("statistics", keys <= set(engine.statistics), engine.statistics["completed"])
