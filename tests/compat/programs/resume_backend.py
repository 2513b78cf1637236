"""load_from_factory / load_from_detail with a backend given as TaskFlow's conf dict."""

import contextlib
import os
import shutil
import tempfile

import taskflow.engines
from taskflow import states, task
from taskflow.patterns import linear_flow as lf
from taskflow.persistence import backends

engine = None


class Step(task.Task):
    def execute(self, value):
        print("executing", self.name, value)
        return value + 1


class Pause(task.Task):
    def execute(self, value):
        print("executing", self.name, "and suspending")
        engine.suspend()
        return value


def make_flow(count, prefix="s"):
    flow = lf.Flow("counting")
    for i in range(count):
        flow.add(Step(f"{prefix}{i}", rebind={"value": f"v{i}"}, provides=f"v{i + 1}"))
        if i == 1:
            flow.add(Pause("pause", rebind={"value": "v2"}, provides="paused"))
    return flow


def show(flow_detail):
    print(" ", flow_detail.name, flow_detail.state, sorted(flow_detail.meta))
    # TaskFlow also records store= values as an atom '_TaskFlow_INJECTOR'; tideflow keeps
    # them on the flow record (a documented difference, asserted in test_compat_persistence)
    for detail in sorted(flow_detail, key=lambda d: d.name):
        if detail.name != "_TaskFlow_INJECTOR":
            print("   ", detail.name, detail.state, detail.version, detail.results)


where = tempfile.mkdtemp()
try:
    conf = {"connection": "sqlite:///" + os.path.join(where, "resume.db")}
    with backends.backend(conf):
        pass  # TaskFlow's SQL backend needs its tables made first (tideflow's makes them)
    engine = taskflow.engines.load_from_factory(
        make_flow, factory_args=[3], factory_kwargs={"prefix": "s"}, store={"v0": 10}, backend=conf
    )
    print("factory", engine.storage.flow_meta["factory"])
    engine.run()
    flow_uuid = engine.storage.flow_uuid
    print("suspended:", engine.storage.get_flow_state())

    # find unfinished runs in the store, as a new process would, and finish them
    with backends.backend(conf) as backend:
        with contextlib.closing(backend.get_connection()) as conn:
            for book in conn.get_logbooks():
                print("book", book.name, len(book))
                for flow_detail in book:
                    show(flow_detail)
                    if flow_detail.state not in (states.SUCCESS, states.FAILURE, states.REVERTED):
                        engine = taskflow.engines.load_from_detail(flow_detail, backend=backend)
                        engine.run()
                        print(
                            "resumed:", engine.storage.get_flow_state(), engine.storage.fetch("v3")
                        )
        with contextlib.closing(backend.get_connection()) as conn:
            show(conn.get_flow_details(flow_uuid))
        # a finished run, loaded again, has nothing left to do
        with contextlib.closing(backend.get_connection()) as conn:
            done = conn.get_flow_details(flow_uuid)
        engine = taskflow.engines.load_from_detail(done, backend=backend)
        engine.run()
        print("again:", engine.storage.get_flow_state())
finally:
    shutil.rmtree(where)
