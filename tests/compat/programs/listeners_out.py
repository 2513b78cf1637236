"""Listeners: PrintingListener's lines and CaptureListener's values."""

import contextlib

from _common import show

import taskflow.engines
from taskflow import task
from taskflow.listeners import capturing, printing
from taskflow.patterns import linear_flow as lf


class T(task.Task):
    def execute(self):
        return f"{self.name}-res"


class Boom(task.Task):
    def execute(self):
        raise OSError("boom")


def make():
    return lf.Flow("f").add(T("t1", provides="x"), T("t2"))


engine = taskflow.engines.load(make())
with printing.PrintingListener(engine):
    engine.run()

engine = taskflow.engines.load(make())
with printing.PrintingListener(engine, task_listen_for=["SUCCESS"], flow_listen_for=[]):
    engine.run()

engine = taskflow.engines.load(make())
with capturing.CaptureListener(engine) as capture:
    engine.run()
for kind, state, details in capture.values:
    print("CAPTURE", kind, state, show(details))

engine = taskflow.engines.load(make())
mine = []
with capturing.CaptureListener(engine, capture_flow=False, skip_tasks=["t1"], values=mine) as c2:
    engine.run()
print("own list", c2.values is mine, [(k, s, d["task_name"]) for k, s, d in mine])

engine = taskflow.engines.load(lf.Flow("bad").add(T("ok"), Boom("boom")))
with capturing.CaptureListener(engine) as capture, contextlib.suppress(OSError):
    engine.run()
for kind, state, details in capture.values:
    print("CAPTURE", kind, state, show(details))
