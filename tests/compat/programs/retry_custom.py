"""A custom Retry: decides from its History, provides a value, undoes in revert()."""

from _common import show, watch

import taskflow.engines
from taskflow import retry, task
from taskflow.patterns import linear_flow as lf


class Backend(retry.Retry):
    """Tries the primary, then the replica; a PermissionError means give up entirely."""

    default_provides = "backend"

    def execute(self, history):
        print(
            "  choose: len",
            len(history),
            "tried",
            list(history.provided_iter()),
            "failures",
            [(n, show(f)) for n, f in history.outcomes_iter()],
        )
        return ["primary", "replica"][min(len(history), 1)]

    def on_failure(self, history):
        print(
            "  on_failure: caused_by OSError",
            history.caused_by(OSError),
            "PermissionError",
            history.caused_by(PermissionError),
            "last",
            [(n, show(f)) for n, f in history.outcomes_iter(index=-1)],
        )
        if history.caused_by(PermissionError):
            return retry.REVERT_ALL
        return retry.RETRY if len(history) < 2 else retry.REVERT

    def revert(self, history, *args, **kwargs):
        print("  controller revert: attempts", len(history), "kwargs", sorted(kwargs))
        return "released"


class Write(task.Task):
    def __init__(self, name, errors):
        super().__init__(name)
        self.errors = list(errors)

    def execute(self, backend):
        print(f"  write to {backend}")
        if self.errors:
            raise self.errors.pop(0)
        return f"written to {backend}"


for title, errors in (
    ("replica works", [OSError("primary down")]),
    ("both fail", [OSError("primary down"), OSError("replica down")]),
    ("not allowed", [PermissionError("no")]),
):
    print("==", title)
    engine = taskflow.engines.load(lf.Flow("f", retry=Backend("pick")).add(Write("w", errors)))
    watch(engine)
    try:
        engine.run()
    except Exception as exc:
        print("raised", type(exc).__name__, exc)
    print("flow", engine.storage.get_flow_state(), "pick", engine.storage.get_atom_state("pick"))
    print(
        "decisions",
        [d.value for d in retry.Decision],
        retry.RETRY == "RETRY",
        retry.EXECUTE_REVERT_HISTORY,
    )
