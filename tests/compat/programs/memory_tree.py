"""The memory backend's tree: pformat(), ls(), ls_r(), reading values by path."""

import taskflow.engines
from taskflow import exceptions, retry, task
from taskflow.patterns import linear_flow as lf
from taskflow.persistence import backends, models


class Echo(task.Task):
    def execute(self, x):
        return x * 2


class Give(task.Task):
    def execute(self):
        return 2


class Boom(task.Task):
    def execute(self):
        raise ValueError("boom")

    def revert(self, **kwargs):
        print("reverting", self.name)


def show(tree, path):
    value = tree[path]
    if isinstance(value, dict) and "atom" in value:
        atom = value["atom"]
        print(
            " ",
            value["type"],
            atom["name"],
            atom["state"],
            atom["intention"],
            atom["version"],
            atom["results"],
            atom["meta"],
            sorted(atom),
        )
    elif isinstance(value, dict):
        print(" ", sorted(value), value.get("name"), value.get("state"), value.get("meta"))
    else:
        print(" ", value)


# A run without a backend keeps its records in a memory backend of its own.
flow = lf.Flow("root").add(
    Give("give", provides="x"), Echo("double", provides="y"), Echo("again", rebind={"x": "y"})
)
engine = taskflow.engines.load(flow)
engine.compile()
engine.prepare()
backend = engine.storage.backend
print(type(backend).__name__)
tree = backend.memory
print(tree.pformat())
print("root", tree.root_path, tree.ls("/"))
print("books", tree.ls("/books"))
print("flows", len(tree.ls("/flow_details")))
engine.run()
flow_uuid = engine.storage.flow_uuid
print("after run")
for path in tree.ls_r("/", absolute=True):
    print(path.count("/"), path.split("/")[1])
    show(tree, path)
print("relative", [p.count("/") for p in tree.ls_r("/flow_details")])
print("children", len(tree.ls("/flow_details/" + flow_uuid)))
print("get missing", tree.get("/nothing/here", "default"))
try:
    tree["/nothing"]
except exceptions.NotFound:
    print("missing path: NotFound")
try:
    tree.ls("relative")
except ValueError:
    print("relative path: ValueError")
print("join", tree.join("/a", "b"), tree.split("/a/b"), tree.normpath("/a//b/../c"))

# A memory backend given to load(): its book, flow and atoms, with a retry that reverts.
backend = backends.fetch({"connection": "memory://", "deep_copy": False})
book = models.LogBook("book")
flow = lf.Flow("with-retry", retry=retry.Times(2, name="r")).add(
    Give("g", provides="x"), Echo("e", provides="y"), Boom("b")
)
engine = taskflow.engines.load(flow, backend=backend, book=book)
try:
    engine.run()
except ValueError as error:
    print("run failed:", error)
tree = backend.memory
print(tree.pformat().count("link to"), "links")
print(
    "books",
    len(tree.ls("/books")),
    "flows",
    len(tree.ls("/flow_details")),
    "atoms",
    len(tree.ls("/atom_details")),
)
book_value = tree["/books/" + book.uuid]
print(sorted(book_value), book_value["name"], sorted(book_value["created_at"]))
# (the order of a retry's record among its atoms' records differs: shown by name)
for path in sorted(
    tree.ls_r("/atom_details", absolute=True), key=lambda p: tree[p]["atom"]["name"]
):
    show(tree, path)
