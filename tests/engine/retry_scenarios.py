"""Retry scenarios written with TaskFlow's API; ``test_retries.py`` runs them on tideflow.

The same file runs under TaskFlow 6.5, which wrote ``retry_scenarios.expected``::

    bench/.venv-taskflow/bin/python tests/engine/retry_scenarios.py serial \\
        > tests/engine/retry_scenarios.expected

(TaskFlow printed the same for ``parallel``.) Under tideflow, TaskFlow's names are
tideflow's own objects (``taskflow.retry.Times is tideflow.Times``, ``linear_flow.Flow
is tideflow.LinearFlow``), so these are tideflow programs too. Each scenario prints
every flow and atom notification in a compact notation (``r.r RETRYING``, ``t.a
SUCCESS('a')``, ``F(message)`` for a Failure), what tasks and controllers were called
with and decided, how the run ended and the final atom states.
"""

from __future__ import annotations

import sys
from typing import Any

import taskflow.engines
from taskflow import retry, task
from taskflow.patterns import graph_flow as gf
from taskflow.patterns import linear_flow as lf
from taskflow.types import failure as tf_failure

SCENARIOS: dict[str, Any] = {}


def scenario(fn: Any) -> Any:
    SCENARIOS[fn.__name__] = fn
    return fn


def short(value: Any) -> str:
    if isinstance(value, tf_failure.Failure):
        return f"F({value.exception_str})"
    return repr(value)


def hist(history: Any) -> list[Any]:
    return [(p, {k: short(f) for k, f in o.items()}) for p, o in history]


def watch(engine: Any) -> None:
    def flow(state: str, details: dict[str, Any]) -> None:
        print(f"flow {state}")

    def atom(state: str, details: dict[str, Any]) -> None:
        kind = "r" if "retry_name" in details else "t"
        name = details.get("task_name") or details.get("retry_name")
        extra = f"({short(details['result'])})" if "result" in details else ""
        print(f"{kind}.{name} {state}{extra}")

    engine.notifier.register("*", flow)
    engine.atom_notifier.register("*", atom)


def run(engine: Any, names: list[str]) -> None:
    try:
        engine.run()
        print("-> ok")
    except Exception as exc:
        print(f"-> raised {type(exc).__name__}: {exc}")
    print("flow state", engine.storage.get_flow_state())
    print("states", {n: str(engine.storage.get_atom_state(n)) for n in names})


class T(task.Task):
    """Fails its first ``fail`` executions with OSError."""

    def __init__(self, name: str, fail: int = 0, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.fail = fail
        self.n = 0

    def execute(self, **kwargs: Any) -> str:
        self.n += 1
        print(f"exec {self.name} #{self.n} {sorted(kwargs.items())}")
        if self.n <= self.fail:
            raise OSError(f"{self.name} fails #{self.n}")
        return self.name

    def revert(self, result: Any, flow_failures: Any, **kwargs: Any) -> None:
        failures = {k: short(f) for k, f in flow_failures.items()}
        print(f"revert {self.name} {short(result)} {failures}")


def loud(cls: Any) -> Any:
    """``cls`` printing what each of its calls received and decided."""

    class Loud(cls):  # type: ignore[misc,valid-type]
        def execute(self, **kwargs: Any) -> Any:
            value = super().execute(**kwargs)
            print(f"{self.name}.execute {hist(kwargs['history'])} {sorted(kwargs)} -> {value!r}")
            return value

        def on_failure(self, **kwargs: Any) -> Any:
            decision = super().on_failure(**kwargs)
            print(f"{self.name}.on_failure {hist(kwargs['history'])} -> {decision}")
            return decision

        def revert(self, **kwargs: Any) -> None:
            print(f"{self.name}.revert {hist(kwargs['history'])} {sorted(kwargs)}")

    Loud.__name__ = cls.__name__
    return Loud


Times = loud(retry.Times)
ForEach = loud(retry.ForEach)
ParameterizedForEach = loud(retry.ParameterizedForEach)
AlwaysRevert = loud(retry.AlwaysRevert)
AlwaysRevertAll = loud(retry.AlwaysRevertAll)


class Pick(task.Task):
    """Succeeds only for v == 3."""

    def execute(self, v: Any) -> Any:
        print(f"exec {self.name} v={v!r}")
        if v != 3:
            raise ValueError(f"bad {v}")
        return v * 10

    def revert(self, v: Any, result: Any, flow_failures: Any) -> None:
        print(f"revert {self.name} v={v!r} {short(result)} {sorted(flow_failures)}")


class Custom(retry.Retry):
    """Retries KeyErrors twice; anything else reverts everything."""

    default_provides = "mode"

    def execute(self, history: Any) -> str:
        print(
            f"custom.execute len={len(history)} provided={list(history.provided_iter())} "
            f"outcomes={[(n, short(f)) for n, f in history.outcomes_iter()]} "
            f"failure={history.failure}"
        )
        return f"mode-{len(history)}"

    def on_failure(self, history: Any) -> Any:
        print(
            f"custom.on_failure len={len(history)} KeyError={history.caused_by(KeyError)} "
            f"LookupError={history.caused_by(LookupError)} "
            f"ValueError={history.caused_by(ValueError)} "
            f"first={history.caused_by(KeyError, index=0)} "
            f"last={[(n, short(f)) for n, f in history.outcomes_iter(index=-1)]} "
            f"entry0={history[0][0]}"
        )
        if history.caused_by(KeyError) and len(history) < 3:
            return retry.RETRY
        return retry.REVERT_ALL

    def revert(self, history: Any, **kwargs: Any) -> str:
        print(f"custom.revert len={len(history)} {sorted(kwargs)}")
        return "undone"


class Raises(task.Task):
    """Raises the next of ``errors`` on each execution, then succeeds."""

    def __init__(self, name: str, errors: list[Exception]) -> None:
        super().__init__(name)
        self.errors = errors

    def execute(self) -> str:
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def load(flow: Any, kind: str, **options: Any) -> Any:
    engine = taskflow.engines.load(flow, engine=kind, **options)
    watch(engine)
    return engine


@scenario
def times_retries(kind: str) -> None:
    flow = lf.Flow("f", retry=Times(3, name="r", provides="x")).add(T("a"), T("b", fail=2))
    engine = load(flow, kind)
    run(engine, ["r", "a", "b"])
    print("x", engine.storage.fetch("x"))


@scenario
def times_gives_up(kind: str) -> None:
    inner = lf.Flow("f", retry=Times(2, name="r")).add(T("a"), T("b", fail=9))
    engine = load(lf.Flow("top").add(T("pre"), inner, T("post")), kind)
    run(engine, ["pre", "r", "a", "b", "post"])


@scenario
def inner_gives_up_outer_retries(kind: str) -> None:
    inner = lf.Flow("inner", retry=Times(2, name="ri")).add(T("a"), T("b", fail=3))
    flow = lf.Flow("outer", retry=Times(2, name="ro")).add(T("x"), inner, T("y"))
    run(load(flow, kind), ["ro", "x", "ri", "a", "b", "y"])


@scenario
def inner_reverts_all(kind: str) -> None:
    inner = lf.Flow("inner", retry=Times(2, name="ri", revert_all=True)).add(T("a"), T("b", fail=3))
    outer = lf.Flow("outer", retry=Times(2, name="ro")).add(T("x"), inner, T("y"))
    engine = load(lf.Flow("top").add(T("p"), outer), kind)
    run(engine, ["p", "ro", "x", "ri", "a", "b", "y"])


@scenario
def for_each(kind: str) -> None:
    flow = lf.Flow("f", retry=ForEach([1, 2, 3, 4], name="r", provides="v")).add(Pick("c"))
    engine = load(flow, kind)
    run(engine, ["r", "c"])
    print("v", engine.storage.fetch("v"))


@scenario
def for_each_runs_out(kind: str) -> None:
    flow = lf.Flow("f", retry=ForEach([1, 2], name="r", provides="v")).add(Pick("c"))
    run(load(flow, kind), ["r", "c"])


@scenario
def for_each_repeats(kind: str) -> None:
    flow = lf.Flow("f", retry=ForEach([1, 2, 1, 3], name="r", provides="v")).add(Pick("c"))
    run(load(flow, kind), ["r", "c"])


@scenario
def parameterized_for_each(kind: str) -> None:
    controller = ParameterizedForEach(name="r", provides="v", rebind={"values": "vals"})
    flow = lf.Flow("f", retry=controller).add(Pick("c"))
    engine = taskflow.engines.load(flow, store={"vals": [5, 3, 7]}, engine=kind)
    watch(engine)
    run(engine, ["r", "c"])


@scenario
def always_revert_in_times(kind: str) -> None:
    inner = lf.Flow("i", retry=AlwaysRevert("ar")).add(T("b", fail=1))
    run(load(lf.Flow("o", retry=Times(2, name="ro")).add(T("x"), inner), kind), ["ro", "ar", "b"])


@scenario
def always_revert_all_in_times(kind: str) -> None:
    inner = lf.Flow("i", retry=AlwaysRevertAll("ar")).add(T("b", fail=1))
    run(load(lf.Flow("o", retry=Times(2, name="ro")).add(T("x"), inner), kind), ["ro", "ar", "b"])


@scenario
def always_revert_in_always_revert(kind: str) -> None:
    inner = lf.Flow("i", retry=AlwaysRevert("ri")).add(T("b", fail=1))
    outer = lf.Flow("o", retry=AlwaysRevert("ro")).add(T("x"), inner, T("y"))
    engine = load(lf.Flow("top").add(T("p"), outer, T("q")), kind)
    run(engine, ["p", "ro", "x", "ri", "b", "y", "q"])
    print("histories", hist(engine.storage.get_retry_history("ro")))


@scenario
def defer_reverts(kind: str) -> None:
    inner = lf.Flow("i", retry=Times(1, name="r")).add(T("b", fail=1))
    engine = load(lf.Flow("top").add(T("p"), inner, T("q")), kind, defer_reverts=True)
    run(engine, ["p", "r", "b", "q"])


@scenario
def defer_reverts_to_a_retrying_parent(kind: str) -> None:
    inner = lf.Flow("inner", retry=Times(1, name="ri")).add(T("b", fail=1))
    outer = lf.Flow("outer", retry=Times(2, name="ro")).add(T("x"), inner)
    engine = load(lf.Flow("top").add(T("p"), outer), kind, defer_reverts=True)
    run(engine, ["p", "ro", "x", "ri", "b"])


@scenario
def never_resolve(kind: str) -> None:
    inner = lf.Flow("i", retry=Times(3, name="r")).add(T("b", fail=1))
    engine = load(lf.Flow("top").add(T("p"), inner, T("q")), kind, never_resolve=True)
    run(engine, ["p", "r", "b", "q"])


@scenario
def custom_controller(kind: str) -> None:
    errors: list[Exception] = [KeyError("k1"), KeyError("k2"), ValueError("v")]
    engine = load(lf.Flow("f", retry=Custom("c")).add(Raises("k", errors)), kind)
    run(engine, ["c", "k"])
    print("history", hist(engine.storage.get_retry_history("c")))
    engine = load(lf.Flow("f", retry=Custom("c")).add(Raises("k", [KeyError("k1")])), kind)
    run(engine, ["c", "k"])
    print("history", hist(engine.storage.get_retry_history("c")), engine.storage.fetch("mode"))


@scenario
def controller_revert_fails(kind: str) -> None:
    class BadRevert(retry.Times):  # type: ignore[misc]
        def revert(self, history: Any, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("retry revert broke")

    inner = lf.Flow("f", retry=BadRevert(1, name="br")).add(T("b", fail=1))
    run(load(lf.Flow("top").add(T("p"), inner), kind), ["p", "br", "b"])


@scenario
def run_again_after_giving_up(kind: str) -> None:
    inner = lf.Flow("i", retry=Times(2, name="r")).add(T("b", fail=3))
    engine = load(lf.Flow("top").add(T("p"), inner), kind)
    run(engine, ["p", "r", "b"])
    print("again")
    run(engine, ["p", "r", "b"])


@scenario
def graph_flow(kind: str) -> None:
    flow = gf.Flow("g", retry=Times(2, name="r", provides="attempt")).add(
        T("g1", provides="a"), T("g2", requires=["a", "attempt"], fail=1)
    )
    run(load(flow, kind), ["r", "g1", "g2"])


def main(kind: str, names: list[str]) -> None:
    for name in names or list(SCENARIOS):
        print(f"== {name}")
        SCENARIOS[name](kind)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "serial", sys.argv[2:])
