"""Persistence: memory backend, log books, flow records, and what a run leaves in them."""

import contextlib

import taskflow.engines
from taskflow import exceptions, task
from taskflow.patterns import linear_flow as lf
from taskflow.persistence import backends, models
from taskflow.utils import persistence_utils as p_utils


class T(task.Task):
    def execute(self):
        return 1


def make(name):
    return lf.Flow(name).add(T("a", provides="x"), T("b"))


backend = backends.fetch("memory://")
with contextlib.closing(backend.get_connection()) as conn:
    conn.upgrade()
    print("books at start", len(list(conn.get_logbooks())))

book = p_utils.temporary_log_book(backend)
print("temporary book", book.name, len(book))
book2, fd = p_utils.temporary_flow_detail(backend, meta={"k": "v"})
print("temporary flow detail", book2.name, fd.name, fd.meta, len(book2), book2.find(fd.uuid) is fd)

mine = models.LogBook("mine")
created = p_utils.create_flow_detail(make("made"), book=mine, backend=backend)
print("created", created.name, len(mine), mine.find(created.uuid) is created)

# load() with a backend and a book puts the run's record in that book.
book = models.LogBook("runs")
engine = taskflow.engines.load(make("flow-one"), backend=backend, book=book)
engine.run()
with contextlib.closing(backend.get_connection()) as conn:
    saved = conn.get_logbook(book.uuid)
    print("saved book", saved.name, [f.name for f in saved])
    flow_detail = next(iter(saved))
    print("flow record state", flow_detail.state)
    for atom in sorted(flow_detail, key=lambda d: d.name):
        print(
            "atom record",
            atom.name,
            type(atom).__name__,
            atom.state,
            atom.intention,
            atom.results,
            isinstance(atom, models.TaskDetail),
        )

# load() with a backend and no book makes a 'tmp' book for the run.
before = {b.uuid for b in backend.get_connection().get_logbooks()}
taskflow.engines.load(make("flow-two"), backend=backend)
with contextlib.closing(backend.get_connection()) as conn:
    new = [b for b in conn.get_logbooks() if b.uuid not in before]
    print("books made by load", [(b.name, [f.name for f in b]) for b in new])

# A given flow detail is the one the run writes to.
_, fd = p_utils.temporary_flow_detail(backend)
engine = taskflow.engines.load(make("flow-three"), flow_detail=fd, backend=backend)
engine.run()
print("given flow detail", fd.state, sorted((d.name, str(d.state)) for d in fd))

# The backend() context manager and dict configurations.
with backends.backend({"connection": "memory"}) as be:
    print("context backend", type(be).__name__)
try:
    backends.fetch("bogus://")
except exceptions.NotFound:
    print("bogus backend: NotFound")
