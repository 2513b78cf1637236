"""States read as TaskFlow's plain strings wherever a program prints them."""

import logging
import sys

import taskflow.engines
from taskflow import states, task
from taskflow.listeners import capturing
from taskflow.patterns import linear_flow as lf


class T(task.Task):
    def execute(self):
        return self.name


class Boom(task.Task):
    def execute(self):
        raise RuntimeError("boom")


logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(levelname)s %(message)s")
log = logging.getLogger("program")

seen = []
engine = taskflow.engines.load(lf.Flow("f").add(T("a"), T("b")))
engine.notifier.register("*", lambda state, details: seen.append(("flow", state)))
engine.atom_notifier.register(
    "*", lambda state, details: seen.append((details["task_name"], state, details["old_state"]))
)
print("phases", list(engine.run_iter()))
print("atoms", [engine.storage.get_atom_state(n) for n in ("a", "b")])
print("by name", {n: engine.storage.get_atom_state(n) for n in ("a", "b")})
print("flow", (engine.storage.get_flow_state(),))
print("pairs", sorted(engine.storage.get_atoms_states(["a", "b"]).items()))
print("notified", seen)
state = engine.storage.get_atom_state("a")
log.info("atom a is %r (%s), flow %r", state, state, engine.storage.get_flow_state())
print(f"formatted {state} {state!r} {state!s:>9}|{state:<9}|")
print("same as constants", state == states.SUCCESS, [state] == [states.SUCCESS])

engine = taskflow.engines.load(lf.Flow("g").add(T("c"), Boom("d")))
with capturing.CaptureListener(engine) as capture:
    try:
        engine.run()
    except RuntimeError as error:
        print("raised", repr(error))
print("captured", [(kind, state) for kind, state, _ in capture.values])
print("after revert", [engine.storage.get_atom_state(n) for n in ("c", "d")])
