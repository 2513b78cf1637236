"""Task events: update_progress and custom events on a task's own notifier."""

from _common import show

import taskflow.engines
from taskflow import task
from taskflow.patterns import linear_flow as lf
from taskflow.types import notifier


class Reporter(task.Task):
    TASK_EVENTS = (*task.Task.TASK_EVENTS, "custom")

    def execute(self):
        self.update_progress(0.5)
        self.update_progress(1.7)
        self.notifier.notify("custom", {"k": "v"})
        return "ok"


def on_any(event, details):
    print("TASK ANY", event, show(details))


def on_progress(event, details):
    print("TASK", event, show(details))


def on_custom(event, details):
    print("TASK", event, show(details))


r = Reporter("p")
print("events", r.TASK_EVENTS, task.EVENT_UPDATE_PROGRESS)
r.notifier.register(notifier.Notifier.ANY, on_any)
r.notifier.register(task.EVENT_UPDATE_PROGRESS, on_progress)
r.notifier.register("custom", on_custom)
try:
    r.notifier.register("undeclared", on_custom)
except ValueError:
    print("undeclared event: ValueError")
engine = taskflow.engines.load(lf.Flow("prog").add(r))
engine.atom_notifier.register("*", lambda state, details: print("ATOM", state))
engine.run()
print("progress", engine.storage.get_task_progress("p"))
