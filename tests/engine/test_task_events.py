"""Task events: progress and custom TASK_EVENTS (notes §5)."""

from __future__ import annotations

import logging
import threading

import pytest

from tideflow import LinearFlow, Task


class Progress(Task):
    TASK_EVENTS = (*Task.TASK_EVENTS, "custom")

    def execute(self):
        self.update_progress(0.5)
        self.update_progress(1.7)
        self.notifier.notify("custom", {"k": "v"})
        self.notifier.notify("undeclared", {"k": "u"})
        return "ok"


class Log:
    def __init__(self):
        self._lock = threading.Lock()
        self.entries = []

    def listener(self, label):
        def callback(event, details):
            with self._lock:
                self.entries.append((label, event, dict(details)))

        return callback


@pytest.mark.local_only(
    "asserts the warning the task's own process logs (caplog sees this process only)"
)
def test_progress_and_custom_events_sequence(load, caplog):
    task = Progress("p")
    engine = load(LinearFlow("f").add(task))
    log = Log()
    engine.atom_notifier.register("*", log.listener("ATOM"))
    task.notifier.register("*", log.listener("TASK*"))
    task.notifier.register("custom", log.listener("TASK"))
    task.notifier.register("update_progress", log.listener("TASK"))
    with caplog.at_level(logging.WARNING):
        engine.run()
    sequence = [
        (label, event, details if not label.startswith("ATOM") else details.get("result"))
        for label, event, details in log.entries
    ]
    assert sequence == [
        ("ATOM", "RUNNING", None),
        ("TASK*", "update_progress", {"progress": 0.0}),
        ("TASK", "update_progress", {"progress": 0.0}),
        ("TASK*", "update_progress", {"progress": 0.5}),
        ("TASK", "update_progress", {"progress": 0.5}),
        ("TASK*", "update_progress", {"progress": 1.0}),  # 1.7 clamped
        ("TASK", "update_progress", {"progress": 1.0}),
        ("TASK*", "custom", {"k": "v"}),
        ("TASK", "custom", {"k": "v"}),
        ("TASK*", "undeclared", {"k": "u"}),
        ("ATOM", "SUCCESS", "ok"),
        ("TASK*", "update_progress", {"progress": 1.0}),
        ("TASK", "update_progress", {"progress": 1.0}),
    ]
    assert any("1.7" in record.getMessage() for record in caplog.records)
    assert engine.storage.get_task_progress("p") == 1.0


@pytest.mark.local_only(
    "task classes or functions defined inside the test: the standard pickle sends them by name",
    on="processes",
)
def test_progress_is_recorded(load):
    class Half(Task):
        def execute(self):
            self.update_progress(0.5)
            return 1

    class Boom(Task):
        def execute(self):
            raise OSError("x")

    engine = load(LinearFlow("f").add(Half("h")))
    engine.prepare()
    assert engine.storage.get_task_progress("h") == 0.0
    engine.run()
    assert engine.storage.get_task_progress("h") == 1.0

    # without anyone listening, the engine's marks are recorded too: 1.0 once reverted
    engine = load(LinearFlow("f").add(Half("h2"), Boom("b")))
    with pytest.raises(OSError, match=r"^x$"):
        engine.run()
    assert engine.storage.get_task_progress("h2") == 1.0
    assert engine.storage.get_task_progress("b") == 1.0


@pytest.mark.local_only("a task reads the engine's storage of this process while it runs")
def test_progress_recorded_mid_run(load):
    seen = {}
    holder = {}

    class Half(Task):
        def execute(self):
            self.update_progress(0.5)
            return 1

    class Look(Task):
        def execute(self):
            seen["h"] = holder["engine"].storage.get_task_progress("h")

    engine = load(LinearFlow("f").add(Half("h"), Look("look")))
    holder["engine"] = engine
    engine.run()
    assert seen["h"] == 1.0  # finished tasks report 1.0


@pytest.mark.local_only(
    "task classes or functions defined inside the test: the standard pickle sends them by name",
    on="processes",
)
def test_progress_around_revert(load):
    class P(Task):
        def execute(self):
            self.update_progress(0.5)
            return "ok"

        def revert(self, **kwargs):
            self.update_progress(0.25)

    class B(Task):
        def execute(self):
            raise OSError("x")

    p, b = P("p"), B("b")
    engine = load(LinearFlow("f").add(p, b))
    log = Log()
    engine.atom_notifier.register("*", log.listener("ATOM"))
    p.notifier.register("*", log.listener("p"))
    b.notifier.register("*", log.listener("b"))
    with pytest.raises(OSError, match=r"^x$"):
        engine.run()
    sequence = [
        (label, details["task_name"] if label == "ATOM" else details["progress"], event)
        for label, event, details in log.entries
    ]
    assert sequence == [
        ("ATOM", "p", "RUNNING"),
        ("p", 0.0, "update_progress"),
        ("p", 0.5, "update_progress"),
        ("ATOM", "p", "SUCCESS"),
        ("p", 1.0, "update_progress"),
        ("ATOM", "b", "RUNNING"),
        ("b", 0.0, "update_progress"),
        ("ATOM", "b", "FAILURE"),
        ("ATOM", "b", "REVERTING"),
        ("b", 0.0, "update_progress"),
        ("ATOM", "b", "REVERTED"),
        ("b", 1.0, "update_progress"),
        ("ATOM", "p", "REVERTING"),
        ("p", 0.0, "update_progress"),
        ("p", 0.25, "update_progress"),
        ("ATOM", "p", "REVERTED"),
        ("p", 1.0, "update_progress"),
    ]


def test_custom_event_reaches_named_atom_listeners_but_not_wildcard_ones(load):
    task = Progress("p")
    engine = load(LinearFlow("f").add(task))
    named, wildcard = [], []
    engine.atom_notifier.register("custom", lambda e, details: named.append((e, dict(details))))
    engine.atom_notifier.register("*", lambda e, details: wildcard.append(e))
    engine.run()
    assert len(named) == 1
    event, details = named[0]
    assert event == "custom"
    assert details["k"] == "v"
    assert details["task_name"] == "p"
    assert details["task_uuid"] == engine.storage.get_atom_uuid("p")
    assert wildcard == ["RUNNING", "SUCCESS"]


def test_registering_an_undeclared_event_is_refused():
    task = Progress("p")
    with pytest.raises(ValueError, match=r"event 'undeclared' is not one this notifier reports"):
        task.notifier.register("undeclared", lambda e, details: None)
    with pytest.raises(ValueError, match=r"event 'SUCCESS' is not one this notifier reports"):
        task.notifier.register("SUCCESS", lambda e, details: None)
    with pytest.raises(
        ValueError,
        match=(
            r"event 'custom' is not one this notifier reports; "
            r"register for one of \['update_progress'\]"
        ),
    ):
        Task.__new__(type("Plain", (Task,), {"execute": lambda self: 1})).notifier.register(
            "custom", lambda e, details: None
        )
    task.notifier.register("custom", lambda e, details: None)
    task.notifier.register("*", lambda e, details: None)


def test_notifying_an_undeclared_event_reaches_wildcard_listeners_only():
    task = Progress("p")
    got = []
    task.notifier.register("*", lambda e, details: got.append((e, details)))
    task.notifier.notify("undeclared", {"k": "u"})
    assert got == [("undeclared", {"k": "u"})]


def test_update_progress_takes_one_argument():
    task = Progress("p")
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'foo'"):
        task.update_progress(0.25, foo="bar")


def test_progress_is_clamped(caplog):
    task = Progress("p")
    got = []
    task.notifier.register("update_progress", lambda e, details: got.append(details["progress"]))
    with caplog.at_level(logging.WARNING):
        task.update_progress(1.7)
        task.update_progress(-3)
        task.update_progress(0.3)
    assert got == [1.0, 0.0, 0.3]
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2
