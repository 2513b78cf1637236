"""How atoms get their arguments: store, provides, rebind, inject, defaults, scopes.

See the notes §3, §4 and §8.
"""

from __future__ import annotations

import pytest

import tideflow
from tideflow import GraphFlow, LinearFlow, Task, UnorderedFlow


class Capture(Task):
    """Keeps the arguments each execute got, keyed by task name, in ``seen``."""

    seen: dict[str, dict] = {}

    def execute(self, **kwargs):
        type(self).seen[self.name] = kwargs
        return kwargs


@pytest.fixture
def seen():
    Capture.seen = {}
    return Capture.seen


class Const(Task):
    def __init__(self, name, value, **options):
        super().__init__(name, **options)
        self.value = value

    def execute(self):
        return self.value


@pytest.mark.local_only(
    "task classes or functions defined inside the test: the standard pickle sends them by name",
    on="processes",
)
def test_store_values_fill_parameters(load):
    class Add(Task):
        def execute(self, x, y):
            return x + y

    engine = load(Add("add", provides="sum"), store={"x": 1, "y": 2})
    engine.run()
    assert engine.storage.fetch("sum") == 3


@pytest.mark.parametrize(
    ("provides", "result", "expected"),
    [
        ("x", (1, 2), {"x": (1, 2)}),
        (("x", "y"), (1, 2), {"x": 1, "y": 2}),
        (["x", "y"], [10, 20], {"x": 10, "y": 20}),
        ({"x", "y"}, {"x": 1, "y": 2, "z": 3}, {"x": 1, "y": 2}),
    ],
)
def test_provides_names_the_result(load, provides, result, expected):
    engine = load(LinearFlow("f").add(Const("r", result, provides=provides)))
    engine.run()
    for name, value in expected.items():
        assert engine.storage.fetch(name) == value
    assert engine.storage.fetch_all() == expected
    assert engine.storage.get("r") == result


def test_provided_items_reach_consumers(load, make, journal):
    flow = LinearFlow("f").add(
        Const("pair", (1, 2), provides=("x", "y")),
        Const("keyed", {"k1": "v1", "k2": "v2"}, provides={"k1", "k2"}),
        make("use", requires=["x", "y", "k1", "k2"]),
    )
    load(flow).run()
    assert journal.args_of("use") == {"x": 1, "y": 2, "k1": "v1", "k2": "v2"}


@pytest.mark.local_only(
    "task classes or functions defined inside the test: the standard pickle sends them by name",
    on="processes",
)
def test_default_provides_and_explicit_override(load):
    class DP(Task):
        default_provides = "dp"

        def execute(self):
            return "v"

    engine = load(LinearFlow("f").add(DP("one"), DP("two", provides="o")))
    engine.run()
    assert engine.storage.fetch_all() == {"dp": "v", "o": "v"}


@pytest.mark.local_only(
    "task classes or functions defined inside the test: the standard pickle sends them by name",
    on="processes",
)
def test_rebind_list_maps_required_parameters_in_order(load):
    class Two(Task):
        def execute(self, a, b):
            return (a, b)

    engine = load(Two("t", rebind=["x", "y"], provides="out"), store={"x": 1, "y": 2, "a": 9})
    engine.run()
    assert engine.storage.fetch("out") == (1, 2)


@pytest.mark.local_only(
    "task classes or functions defined inside the test: the standard pickle sends them by name",
    on="processes",
)
def test_rebind_dict_renames_one_parameter(load):
    class Two(Task):
        def execute(self, a, b):
            return (a, b)

    engine = load(Two("t", rebind={"b": "z"}, provides="out"), store={"a": 1, "b": 9, "z": 3})
    engine.run()
    assert engine.storage.fetch("out") == (1, 3)


@pytest.mark.local_only("the task writes what it was given into a dict of this process (seen)")
def test_requires_adds_names_passed_as_keywords(load, seen):
    engine = load(Capture("c", requires=["p", "q"]), store={"p": 1, "q": 2, "other": 3})
    engine.run()
    assert seen["c"] == {"p": 1, "q": 2}


@pytest.mark.local_only("the task writes what it was given into a dict of this process (seen)")
def test_requires_as_a_single_string(load, seen):
    load(Capture("c", requires="p"), store={"p": 1}).run()
    assert seen["c"] == {"p": 1}


@pytest.mark.local_only(
    "task classes or functions defined inside the test: the standard pickle sends them by name",
    on="processes",
)
def test_atom_inject_fills_parameters_and_beats_store_and_providers(load):
    class Show(Task):
        def execute(self, a, b=2, **kwargs):
            return (a, b, kwargs)

    flow = LinearFlow("f").add(
        Const("maker", "from-atom", provides="a"),
        Show("s", requires=["extra"], inject={"a": "inj"}, provides="out"),
    )
    engine = load(flow, store={"extra": "E", "a": "store"})
    engine.run()
    assert engine.storage.fetch("out") == ("inj", 2, {"extra": "E"})


@pytest.mark.local_only(
    "task classes or functions defined inside the test: the standard pickle sends them by name",
    on="processes",
)
def test_inject_alone_satisfies_a_requirement(load):
    class Need(Task):
        def execute(self, a):
            return a

    engine = load(LinearFlow("f").add(Need("n", inject={"a": 5}, provides="out")))
    engine.run()
    assert engine.storage.fetch("out") == 5


@pytest.mark.local_only(
    "task classes or functions defined inside the test: the standard pickle sends them by name",
    on="processes",
)
def test_optional_arguments(load):
    class Opt(Task):
        def execute(self, a, b=2):
            return (a, b)

    engine = load(Opt("default", provides="d"), store={"a": 1})
    engine.run()
    assert engine.storage.fetch("d") == (1, 2)

    engine = load(Opt("from-store", provides="s"), store={"a": 1, "b": 7})
    engine.run()
    assert engine.storage.fetch("s") == (1, 7)

    flow = LinearFlow("f").add(Const("bee", 5, provides="b"), Opt("from-atom", provides="p"))
    engine = load(flow, store={"a": 1})
    engine.run()
    assert engine.storage.fetch("p") == (1, 5)


def test_rebinding_an_optional_parameter_makes_it_required(load, states):
    class Opt(Task):
        def execute(self, a, b=2):
            return (a, b)

    engine = load(Opt("o", rebind={"b": "y"}), store={"a": 1})
    with pytest.raises(
        tideflow.MissingRequirementError, match=r"atom 'o' \(in flow 'o'\) requires 'y'"
    ) as raised:
        engine.run()
    assert raised.value.missing == ("y",)
    assert states(engine, ["o"]) == {"o": "PENDING"}


def test_nearest_preceding_provider_wins_in_a_linear_flow(load, make, journal):
    flow = LinearFlow("f").add(
        Const("p1", "first", provides="x"),
        make("u1", requires=["x"]),
        Const("p2", "second", provides="x"),
        make("u2", requires=["x"]),
    )
    engine = load(flow)
    engine.run()
    assert journal.args_of("u1") == {"x": "first"}
    assert journal.args_of("u2") == {"x": "second"}
    assert engine.storage.fetch_all() == {"x": ["first", "second"]}
    assert engine.storage.fetch("x", many_handler=lambda values: values) == ["first", "second"]


def test_nearest_provider_in_an_enclosing_flow(load, make, journal):
    flow = LinearFlow("outer").add(
        Const("far", "far", provides="x"),
        LinearFlow("mid").add(
            Const("near", "near", provides="x"),
            LinearFlow("inner").add(make("use", requires=["x"])),
        ),
    )
    load(flow).run()
    assert journal.args_of("use") == {"x": "near"}


def test_store_value_beats_a_provider(load, make, journal):
    flow = LinearFlow("f").add(Const("a", "atom", provides="x"), make("c", requires=["x"]))
    engine = load(flow, store={"x": "store"})
    engine.run()
    assert journal.args_of("c") == {"x": "store"}
    assert engine.storage.fetch("x") == "store"
    assert engine.storage.fetch_all() == {"x": ["store", "atom"]}


def test_unordered_siblings_do_not_see_each_other(load, make, journal, states):
    flow = UnorderedFlow("u").add(make("a", provides="x"), make("b", requires=["x"]))
    engine = load(flow)
    with pytest.raises(
        tideflow.MissingRequirementError, match=r"atom 'b' \(in flow 'u'\) requires 'x'"
    ) as raised:
        engine.run()
    assert journal.executed() == []
    assert raised.value.missing == ("x",)
    assert raised.value.atom == "b"
    assert states(engine, "ab") == {"a": "PENDING", "b": "PENDING"}
    assert engine.storage.get_flow_state() == "PENDING"


def test_unordered_sibling_requirement_met_by_the_store(load, make, journal):
    flow = UnorderedFlow("u").add(make("a", provides="x"), make("b", requires=["x"]))
    load(flow, store={"x": "s"}).run()
    assert journal.args_of("b") == {"x": "s"}


def test_unordered_providers_then_a_consumer_get_the_last_one(load, make, journal):
    # TaskFlow: lf[uf(a provides x, b provides x), c requires x] -> c gets b's value
    flow = LinearFlow("f").add(
        UnorderedFlow("u").add(Const("a", "a", provides="x"), Const("b", "b", provides="x")),
        make("c", requires=["x"]),
    )
    load(flow).run()
    assert journal.args_of("c") == {"x": "b"}


def test_graph_flow_infers_edges_whatever_the_add_order(load, make, journal):
    graph = GraphFlow("g")
    graph.add(make("last", requires=["y"]))
    graph.add(make("middle", requires=["x"], compute=lambda x: x * 10, provides="y"))
    graph.add(make("first", value=4, provides="x"))
    load(graph).run()
    assert journal.executed() == ["first", "middle", "last"]
    assert journal.args_of("last") == {"y": 40}


def test_graph_flow_manual_link_orders_without_data(load, make, journal):
    a, b = make("a"), make("b")
    graph = GraphFlow("g").add(b, a)
    graph.link(a, b)
    load(graph).run()
    assert journal.executed() == ["a", "b"]


def test_nested_flows_see_outer_values(load, make, journal):
    flow = LinearFlow("outer").add(
        Const("o1", "p-val", provides="p"),
        UnorderedFlow("u").add(
            LinearFlow("inner").add(make("i1", requires=["p", "q"])),
            GraphFlow("g").add(make("g1", requires=["p"])),
        ),
    )
    load(flow, store={"q": "q-val"}).run()
    assert journal.args_of("i1") == {"p": "p-val", "q": "q-val"}
    assert journal.args_of("g1") == {"p": "p-val"}


def test_a_subflow_result_is_seen_after_the_subflow(load, make, journal):
    flow = LinearFlow("outer").add(
        LinearFlow("inner").add(Const("deep", "deep-val", provides="d")),
        make("after", requires=["d"]),
    )
    load(flow).run()
    assert journal.args_of("after") == {"d": "deep-val"}


@pytest.mark.local_only("the reverts write what they were given into a dict of this process")
def test_revert_gets_result_flow_failures_and_its_own_arguments(load):
    got = {}

    class A1(Task):
        def execute(self, a, b=2):
            return "A-res"

        def revert(self, *args, **kwargs):
            got["a1"] = (args, kwargs)
            return "A-revert-ret"

    class B1(Task):
        def execute(self, a):
            return "B-res"

        def revert(self, a, result, flow_failures):
            got["b1"] = {"a": a, "result": result, "flow_failures": flow_failures}

    class C1(Task):
        def execute(self):
            return "C-res"

        def revert(self, result, **kwargs):
            got["c1"] = {"result": result, **kwargs}

    class D1(Task):
        def execute(self):
            return "D-res"

        def revert(self, extra, **kwargs):
            got["d1"] = {"extra": extra, **kwargs}

    class Boom(Task):
        def execute(self, a):
            raise RuntimeError("kaboom")

        def revert(self, **kwargs):
            got["boom"] = kwargs

    flow = LinearFlow("f").add(A1("a1"), B1("b1"), C1("c1"), D1("d1"), Boom("boom"))
    engine = load(flow, store={"a": "A-val", "extra": "EX"})
    with pytest.raises(RuntimeError, match="kaboom"):
        engine.run()

    failure = engine.storage.get_failures()["boom"]
    assert isinstance(failure, tideflow.Failure)
    assert set(got["boom"]) == {"result", "flow_failures"}
    assert got["boom"]["result"] is failure
    assert got["d1"]["extra"] == "EX"
    assert set(got["d1"]) == {"extra", "result", "flow_failures"}
    assert got["c1"]["result"] == "C-res"
    assert set(got["c1"]) == {"result", "flow_failures"}
    assert got["b1"]["a"] == "A-val"
    assert got["b1"]["result"] == "B-res"
    assert list(got["b1"]["flow_failures"]) == ["boom"]
    assert got["b1"]["flow_failures"]["boom"] is failure
    args, kwargs = got["a1"]
    assert args == ()
    assert set(kwargs) == {"result", "flow_failures"}  # execute's a/b are not passed
    assert kwargs["result"] == "A-res"
    storage = engine.storage
    assert storage.get_revert_result("a1") == "A-revert-ret"
    assert storage.get_revert_result("b1") is None
    assert storage.get_failures() == {"boom": failure}
    assert storage.get_revert_failures() == {}


def test_revert_requirement_is_validated_before_running(load, states):
    class D1(Task):
        def execute(self):
            return 1

        def revert(self, extra, **kwargs):
            pass

    engine = load(LinearFlow("f").add(D1("d1")))
    with pytest.raises(
        tideflow.MissingRequirementError, match=r"atom 'd1' \(in flow 'f'\) requires 'extra'"
    ) as raised:
        engine.run()
    assert raised.value.missing == ("extra",)
    assert states(engine, ["d1"]) == {"d1": "PENDING"}


@pytest.mark.local_only(
    "task classes or functions defined inside the test: the standard pickle sends them by name",
    on="processes",
)
def test_run_returns_every_named_value_store_included(engine_kind):
    class One(Task):
        def execute(self):
            return 1

    class Anon(Task):
        def execute(self):
            return "not named"

    flow = LinearFlow("f").add(One("one", provides="x"), Anon("anon"))
    result = tideflow.run(flow, store={"s1": "store-val", "b": 7}, engine=engine_kind)
    assert result == {"s1": "store-val", "b": 7, "x": 1}
    assert list(result) == ["s1", "b", "x"]
    assert tideflow.run(LinearFlow("empty"), engine=engine_kind) == {}


def test_graph_flow_links_subflows_by_what_they_provide(load, make, journal):
    graph = GraphFlow("g").add(
        LinearFlow("consumers").add(make("use", requires=["x"]), make("use2", requires=["y"])),
        LinearFlow("producers").add(
            Const("px", "x-val", provides="x"), Const("py", "y-val", provides="y")
        ),
    )
    load(graph).run()
    assert journal.args_of("use") == {"x": "x-val"}
    assert journal.args_of("use2") == {"y": "y-val"}


def test_targeted_flow_runs_the_target_and_what_it_needs(load, make, journal, states):
    a = make("a", provides="x")
    b = make("b", requires=["x"], provides="y")
    c = make("c", requires=["x"])
    d = make("d")
    flow = tideflow.TargetedFlow("t").add(a, b, c, d)
    flow.set_target(b)
    engine = load(flow)
    engine.run()
    assert journal.executed() == ["a", "b"]
    flow.reset_target()
    engine = load(flow)
    engine.run()
    assert sorted(journal.executed()[2:]) == ["a", "b", "c", "d"]


def test_a_single_task_can_be_run(engine_kind):
    assert tideflow.run(Const("only", 5, provides="five"), engine=engine_kind) == {"five": 5}


@pytest.mark.parametrize(
    ("provides", "result", "found", "missing"),
    [
        (("x", "y"), (1,), {"x": 1}, "y"),
        ({"x", "y"}, {"x": 1}, {"x": 1}, "y"),
        (("x", "y"), 5, {}, "x"),
    ],
)
def test_short_results_fail_only_when_fetched(load, provides, result, found, missing):
    engine = load(LinearFlow("f").add(Const("r", result, provides=provides)))
    engine.run()  # the task itself succeeds
    assert engine.storage.get_atom_state("r") == "SUCCESS"
    assert engine.storage.fetch_all() == found
    with pytest.raises(tideflow.NotFoundError, match=f"no value named '{missing}' in flow 'f'"):
        engine.storage.fetch(missing)


def test_consumer_of_a_missing_item_fails_and_everything_is_reverted(load, make, journal, caplog):
    # TaskFlow ends FAILURE here with the producer never reverted; tideflow turns the
    # missing argument into the consumer's Failure and reverts what ran (issue 6).
    flow = LinearFlow("f").add(
        make("first"), Const("short", (1,), provides=("x", "y")), make("need", requires=["y"])
    )
    engine = load(flow)
    with pytest.raises(tideflow.NotFoundError, match=r"'need' needs 'y'.*index 1 of the result"):
        engine.run()
    # 'need' never executed, so its revert is not called; 'first' ran and is undone
    assert journal.executed() == ["first"]
    assert journal.reverted() == ["first"]
    assert engine.storage.get_flow_state() == "REVERTED"
    states = [engine.storage.get_atom_state(n) for n in ("first", "short", "need")]
    assert states == ["REVERTED", "REVERTED", "REVERTED"]
    failure = engine.storage.get_execute_failures()["need"]
    assert failure.check(tideflow.NotFoundError)
    assert "index 1 of its result" in caplog.text
    assert "'short'" in caplog.text


def test_two_unordered_providers_before_a_consumer_are_accepted_with_a_warning(
    load, make, journal, caplog
):
    # as in TaskFlow: the consumer gets the value of the provider added last
    flow = LinearFlow("f").add(
        tideflow.UnorderedFlow("both").add(
            make("first", value=1, provides="x"), make("second", value=2, provides="x")
        ),
        make("use", requires=["x"]),
    )
    engine = load(flow)
    engine.run()
    assert journal.args_of("use") == {"x": 2}
    warned = [r.getMessage() for r in caplog.records if r.name == "tideflow.compiler"]
    assert len(warned) == 1
    assert "unordered flow 'both'" in warned[0]
    assert "'first' and 'second'" in warned[0]


def test_providers_ordered_by_a_linear_flow_are_not_warned_about(load, make, caplog):
    flow = LinearFlow("f").add(
        make("first", value=1, provides="x"),
        tideflow.UnorderedFlow("u").add(make("second", value=2, provides="x")),
        make("use", requires=["x"]),
    )
    load(flow).run()
    assert not [r for r in caplog.records if r.name == "tideflow.compiler"]
