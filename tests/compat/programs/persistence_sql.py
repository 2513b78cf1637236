"""A SQLite backend by TaskFlow's configuration dict: the Connection API and a run in it."""

import contextlib
import os
import shutil
import tempfile

import taskflow.engines
from taskflow import exceptions, states, task
from taskflow.patterns import linear_flow as lf
from taskflow.persistence import backends, models
from taskflow.utils import persistence_utils as p_utils


class Add(task.Task):
    def execute(self, a, b):
        return a + b


class Give(task.Task):
    def execute(self):
        return 1


class Fail(task.Task):
    def execute(self, total):
        raise OSError(f"disk full at {total}")

    def revert(self, total, **kwargs):
        print("revert fail, total was", total)


def names(items):
    return sorted(item.name for item in items)


def lines(text):
    """A pformat() without its timestamps (they differ run to run)."""
    return "\n".join(line for line in text.splitlines() if "_at = " not in line)


where = tempfile.mkdtemp()
try:
    conf = {
        "connection": "sqlite:///" + os.path.join(where, "runs.db"),
        # TaskFlow's pool settings: meaningless for a SQLite file, accepted
        "pool_size": 5,
        "max_overflow": 2,
        "idle_timeout": 30,
    }
    with backends.backend(conf) as backend:
        print(type(backend).__name__)
        with contextlib.closing(backend.get_connection()) as conn:
            conn.validate()
            conn.upgrade()
            print("books", list(conn.get_logbooks()))

            book = models.LogBook("book-1")
            book.meta["owner"] = "me"
            flow_detail = models.FlowDetail("fd-1", "c0c0c0c0-0000-4000-8000-000000000001")
            flow_detail.state = states.RUNNING
            flow_detail.meta["k"] = [1, 2]
            atom = models.TaskDetail("t-1", "a0a0a0a0-0000-4000-8000-000000000001")
            atom.state = states.SUCCESS
            atom.meta["progress"] = 1.0
            atom.results = {"answer": 42}
            atom.version = "1.2"
            flow_detail.add(atom)
            book.add(flow_detail)
            conn.save_logbook(book)

            again = conn.get_logbook(book.uuid)
            print("book", again.name, again.uuid == book.uuid, again.meta, len(again))
            print(lines(again.pformat()))
            fd = again.find(flow_detail.uuid)
            print("flow", fd.name, fd.state, fd.meta, names(fd))
            ad = conn.get_atom_details(atom.uuid)
            print(
                "atom", type(ad).__name__, ad.name, ad.state, ad.results, ad.version, ad.intention
            )
            print("atoms of flow", names(conn.get_atoms_for_flow(flow_detail.uuid)))
            print("flows of book", names(conn.get_flows_for_book(book.uuid)))
            lazy = conn.get_logbook(book.uuid, lazy=True)
            print("lazy flows", len(lazy))
            lazy_fd = conn.get_flow_details(flow_detail.uuid, lazy=True)
            print("lazy atoms", len(lazy_fd))

            # update a flow record and an atom record in place
            flow_detail.state = states.SUCCESS
            atom.results = "changed"
            conn.update_flow_details(flow_detail)
            conn.update_atom_details(atom)
            print(
                "updated",
                conn.get_flow_details(flow_detail.uuid).state,
                conn.get_atom_details(atom.uuid).results,
            )

            for missing in (conn.get_logbook, conn.get_flow_details, conn.get_atom_details):
                try:
                    missing("ffffffff-0000-4000-8000-00000000ffff")
                except exceptions.NotFound:
                    print(missing.__name__, "of a missing uuid: NotFound")

        # runs, with the backend given as its configuration dict
        flow = lf.Flow("sum").add(Add("add", provides="total"))
        run_book = p_utils.temporary_log_book(backend)
        engine = taskflow.engines.load(flow, store={"a": 1, "b": 2}, backend=conf, book=run_book)
        engine.run()
        print("sum", engine.storage.fetch("total"), engine.storage.get_flow_state())
        failing = lf.Flow("failing").add(
            Give("a", provides="a"),
            Give("b", provides="b"),
            Add("add", provides="total"),
            Fail("fail"),
        )
        engine = taskflow.engines.load(failing, backend=backend)
        try:
            engine.run()
        except OSError as error:
            print("run failed:", error)
        with contextlib.closing(backend.get_connection()) as conn:
            stored = conn.get_flow_details(engine.storage.flow_uuid)
            print("stored", stored.name, stored.state)
            for detail in sorted(stored, key=lambda d: d.name):
                failure = detail.failure
                print(
                    " ",
                    detail.name,
                    detail.state,
                    detail.intention,
                    detail.results,
                    failure.exception_str if failure else None,
                    failure.check(OSError) if failure else None,
                )
            print("books now", sorted(b.name for b in conn.get_logbooks()))
            conn.destroy_logbook(book.uuid)
            print("after destroy", sorted(b.name for b in conn.get_logbooks()))
            try:
                conn.get_logbook(book.uuid)
            except exceptions.NotFound:
                print("destroyed book: NotFound")
            conn.clear_all()
            print("after clear_all", list(conn.get_logbooks()))
finally:
    shutil.rmtree(where)
