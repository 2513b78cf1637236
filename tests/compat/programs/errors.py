"""Definition errors: when TaskFlow raises them and under which names."""

import taskflow.engines
from taskflow import exceptions as exc
from taskflow import task
from taskflow.patterns import graph_flow as gf
from taskflow.patterns import linear_flow as lf


class T(task.Task):
    def execute(self, **kwargs):
        return self.name


class Needs(task.Task):
    def execute(self, missing_value):
        return missing_value


def report(
    what,
    error,
    among=(
        "MissingDependencies",
        "AmbiguousDependency",
        "DependencyFailure",
        "Duplicate",
        "NotFound",
        "TaskFlowException",
    ),
):
    names = [n for n in among if isinstance(error, getattr(exc, n))]
    print(what, "->", names)


# Missing requirement: nothing fails until run() (validate), and nothing runs.
ran = []
flow = lf.Flow("missing").add(T("before"), Needs("needs"))
engine = taskflow.engines.load(flow)
engine.compile()
engine.prepare()
print("compile/prepare fine")
engine.atom_notifier.register("*", lambda state, details: ran.append(state))
try:
    engine.run()
except exc.MissingDependencies as error:
    report("missing at run", error)
print("notifications before failing", ran, "flow", engine.storage.get_flow_state())
engine.storage.inject({"missing_value": 42})
engine.run()
print("after inject", engine.storage.get_flow_state(), engine.storage.get("needs"))

# Duplicate names: accepted by add(), refused by compile().
flow = lf.Flow("dup").add(T("same"), T("same"))
print("dup len", len(flow))
engine = taskflow.engines.load(flow)
try:
    engine.compile()
except exc.Duplicate as error:
    # (tideflow's Duplicate is also a DependencyFailure: see test_compat_deviations.py)
    report("duplicate at compile", error, among=("Duplicate", "NotFound", "TaskFlowException"))

# A cycle made with link() is refused at link() time.
a, b = T("a"), T("b")
flow = gf.Flow("cyc").add(a, b)
flow.link(a, b)
try:
    flow.link(b, a)
except exc.DependencyFailure as error:
    report("cycle at link", error)
print("links after refusal", [(u.name, v.name) for u, v, _ in flow.iter_links()])

# A cycle through provides/requires is refused at add() time.
try:
    gf.Flow("cyc2").add(T("p", provides="x", requires=["y"]), T("q", provides="y", requires=["x"]))
except exc.DependencyFailure as error:
    report("data cycle at add", error)

# Two providers of what a third requires: refused at the add() bringing the consumer.
flow = gf.Flow("amb").add(T("one", provides="x"), T("two", provides="x"))
print("two providers fine, len", len(flow))
try:
    flow.add(T("consumer", requires=["x"]))
except exc.AmbiguousDependency as error:
    report("ambiguous at add", error)
print("len after refusal", len(flow))

# Unknown engine and unknown atom.
try:
    taskflow.engines.load(lf.Flow("e"), engine="bogus")
except exc.NotFound as error:
    report("bogus engine", error)
engine = taskflow.engines.load(lf.Flow("one").add(T("only")))
engine.run()
try:
    engine.storage.get_atom_state("nope")
except exc.NotFound as error:
    report("unknown atom", error)
print("empty flow", taskflow.engines.run(lf.Flow("empty")))
