"""Resuming: a suspended run is reloaded from its record and finishes without re-running."""

import contextlib

import taskflow.engines
from taskflow import task
from taskflow.patterns import linear_flow as lf
from taskflow.persistence import backends
from taskflow.utils import persistence_utils as p_utils

executed = []
ENGINE = None


class Step(task.Task):
    def execute(self):
        executed.append(self.name)
        if self.name == "b" and ENGINE is not None:
            ENGINE.suspend()
        return self.name


def make_flow(prefix, count=3):
    return lf.Flow(f"{prefix}-flow").add(*(Step(chr(ord("a") + i)) for i in range(count)))


backend = backends.fetch("memory://")
ENGINE = taskflow.engines.load_from_factory(
    make_flow, factory_args=["demo"], factory_kwargs={"count": 3}, backend=backend
)
ENGINE.notifier.register(
    "*", lambda state, details: print("FLOW", details["old_state"], "->", state)
)
ENGINE.run()
print("first run executed", executed, "flow", ENGINE.storage.get_flow_state())

with contextlib.closing(backend.get_connection()) as conn:
    (book,) = conn.get_logbooks()
    (fd,) = list(book)
print(
    "factory meta",
    fd.meta["factory"]["name"].endswith("make_flow"),
    fd.meta["factory"]["args"],
    fd.meta["factory"]["kwargs"],
)
print("recorded", fd.state, sorted((d.name, str(d.state)) for d in fd))

rebuilt = taskflow.engines.flow_from_detail(fd)
print("rebuilt", rebuilt.name, len(rebuilt))

executed.clear()
ENGINE = None
engine = taskflow.engines.load_from_detail(fd, backend=backend)
engine.notifier.register(
    "*", lambda state, details: print("FLOW", details["old_state"], "->", state)
)
engine.run()
print("resumed executed", executed, "flow", engine.storage.get_flow_state())
print("results", sorted(engine.storage.fetch_all().items()), engine.storage.get("a"))

try:
    taskflow.engines.load_from_factory(lambda: lf.Flow("x"))
except ValueError:
    print("lambda factory: ValueError")
_, fd2 = p_utils.temporary_flow_detail()
try:
    taskflow.engines.flow_from_detail(fd2)
except ValueError:
    print("no factory recorded: ValueError")
