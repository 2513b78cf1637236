"""A directory backend (TaskFlow's conf forms), and a suspended run resumed from it."""

import contextlib
import os
import shutil
import tempfile

import taskflow.engines
from taskflow import task
from taskflow.patterns import linear_flow as lf
from taskflow.persistence import backends, models

engine = None


class Step(task.Task):
    def execute(self):
        print("executing", self.name)
        return self.name.upper()


class Pause(task.Task):
    def execute(self):
        print("executing", self.name, "and suspending")
        engine.suspend()


def make_flow():
    return lf.Flow("resumable").add(
        Step("first"),
        Pause("pause"),
        lf.Flow("rest").add(Step("second"), Step("third")),
    )


def states(flow_detail):
    return sorted((d.name, str(d.state), d.results) for d in flow_detail)


where = tempfile.mkdtemp()
try:
    path = os.path.join(where, "store")
    # TaskFlow's directory conf: the path comes from conf['path']
    conf = {"connection": "dir", "path": path, "max_cache_size": 10}
    with backends.backend(conf) as backend:
        print(type(backend).__name__)
        book = models.LogBook("dir-book")
        flow_detail = models.FlowDetail("resumable", "d0d0d0d0-0000-4000-8000-000000000001")
        book.add(flow_detail)
        with contextlib.closing(backend.get_connection()) as conn:
            conn.save_logbook(book)
        engine = taskflow.engines.load(
            make_flow(), flow_detail=flow_detail, book=book, backend=backend
        )
        engine.run()
        print("after first run", engine.storage.get_flow_state(), states(flow_detail))

    # another backend object on the same directory (as another process would open it)
    file_conf = {"connection": "file://" + path, "path": path}
    with backends.backend(file_conf) as backend:
        print(type(backend).__name__)
        with contextlib.closing(backend.get_connection()) as conn:
            stored_book = conn.get_logbook(book.uuid)
            stored = stored_book.find(flow_detail.uuid)
            print("stored", stored_book.name, stored.name, stored.state, states(stored))
        engine = taskflow.engines.load(
            make_flow(), flow_detail=stored, book=stored_book, backend=backend
        )
        engine.run()
        print("after resume", engine.storage.get_flow_state(), states(stored))
        with contextlib.closing(backend.get_connection()) as conn:
            final = conn.get_flow_details(flow_detail.uuid)
            print("final", final.state, states(final))
            print(
                "books",
                [(b.name, [f.name for f in b]) for b in conn.get_logbooks()],
                "lazy",
                [len(b) for b in conn.get_logbooks(lazy=True)],
            )
finally:
    shutil.rmtree(where)
