"""REVERT, REVERT_ALL and revert_all=True: how much a controller that gives up undoes."""

from _common import states, watch

import taskflow.engines
from taskflow import retry, task
from taskflow.patterns import linear_flow as lf
from taskflow.patterns import unordered_flow as uf


class Step(task.Task):
    def __init__(self, name, fails=0):
        super().__init__(name)
        self.fails = fails

    def execute(self):
        print(f"  execute {self.name}")
        if self.fails:
            self.fails -= 1
            raise RuntimeError(f"{self.name} broke")
        return self.name

    def revert(self, **kwargs):
        print(f"  revert {self.name}")


def attempt(title, controller, **options):
    print("==", title)
    flow = lf.Flow("top").add(
        Step("before"),
        lf.Flow("guarded", retry=controller).add(Step("inside"), Step("breaks", fails=1)),
        Step("after"),
    )
    engine = taskflow.engines.load(flow, **options)
    watch(engine)
    try:
        engine.run()
    except RuntimeError as exc:
        print("raised", exc)
    print("flow", engine.storage.get_flow_state())
    print("atoms", states(engine, ["before", controller.name, "inside", "breaks", "after"]))


attempt("AlwaysRevert: the guarded flow only", retry.AlwaysRevert("keep"))
attempt("AlwaysRevertAll: everything", retry.AlwaysRevertAll("all"))
attempt("Times(1, revert_all=True)", retry.Times(1, name="once", revert_all=True))
attempt("Times(1) with defer_reverts", retry.Times(1, name="deferred"), defer_reverts=True)
attempt("Times(2) with never_resolve", retry.Times(2, name="unresolved"), never_resolve=True)

# REVERT keeps independent work: the sibling in an unordered flow still runs.
print("== REVERT beside an independent sibling")
flow = uf.Flow("u").add(
    lf.Flow("guarded", retry=retry.AlwaysRevert("giveup")).add(Step("fails", fails=1)),
    Step("sibling"),
)
engine = taskflow.engines.load(flow)
try:
    engine.run()
except RuntimeError as exc:
    print("raised", exc)
print("flow", engine.storage.get_flow_state())
print("atoms", states(engine, ["giveup", "fails", "sibling"]))
