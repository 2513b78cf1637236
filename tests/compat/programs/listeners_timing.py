"""Timing and logging listeners: durations in records, printed timings, log lines."""

import logging
import re
import sys

import taskflow.engines
from taskflow import task
from taskflow.listeners import logging as logging_listeners
from taskflow.listeners import timing
from taskflow.patterns import linear_flow as lf
from taskflow.utils import persistence_utils as p_utils


class T(task.Task):
    def execute(self):
        return f"{self.name}-res"


def make():
    return lf.Flow("f").add(T("t1", provides="x"), T("t2"))


def printer(message):
    print(re.sub(r"\d+\.\d+ seconds", "N seconds", message))


engine = taskflow.engines.load(make())
with timing.PrintingDurationListener(engine, printer=printer):
    engine.run()

_, fd = p_utils.temporary_flow_detail()
engine = taskflow.engines.load(make(), flow_detail=fd)
with timing.DurationListener(engine):
    engine.run()
for atom in sorted(fd, key=lambda d: d.name):
    print("duration meta", atom.name, isinstance(atom.meta.get("duration"), float))
print("flow duration meta", isinstance(fd.meta.get("duration"), float))

_, fd = p_utils.temporary_flow_detail()
engine = taskflow.engines.load(make(), flow_detail=fd)
with timing.EventTimeListener(engine):
    engine.run()
for atom in sorted(fd, key=lambda d: d.name):
    print("event meta", atom.name, sorted(k for k in atom.meta if k.endswith("-timestamp")))
print("flow event meta", sorted(k for k in fd.meta if k.endswith("-timestamp")))

handler = logging.StreamHandler(sys.stdout)
handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
log = logging.getLogger("compat-demo")
log.addHandler(handler)
log.setLevel(logging.DEBUG)
log.propagate = False

engine = taskflow.engines.load(make())
with logging_listeners.LoggingListener(engine, log=log, level=logging.INFO):
    engine.run()
engine = taskflow.engines.load(make())
with logging_listeners.DynamicLoggingListener(engine, log=log):
    engine.run()
