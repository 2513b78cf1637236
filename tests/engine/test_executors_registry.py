"""The executor registry: names and aliases, objects, third-party factories, pool teardown."""

from __future__ import annotations

import concurrent.futures as cf
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import tideflow
from tideflow import LinearFlow, Task, UnorderedFlow, executors
from tideflow.executors.threads import ThreadDispatcher


@pytest.fixture(autouse=True)
def _registry_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test may register executors: the registry is put back afterwards."""
    monkeypatch.setattr(executors, "_FACTORIES", dict(executors._FACTORIES))
    monkeypatch.setattr(executors, "_ALIASES", dict(executors._ALIASES))


class Add(Task):
    def execute(self, x: int) -> int:
        return x + 1


def _flow() -> tideflow.Flow:
    return LinearFlow("f").add(Add("a", provides="y"))


@pytest.mark.parametrize(
    ("given", "name"),
    [
        ("threads", "threads"),
        ("thread", "threads"),
        ("threaded", "threads"),
        (" Threads ", "threads"),
        ("processes", "processes"),
        ("process", "processes"),
        ("asyncio", "asyncio"),
        ("async", "asyncio"),
        (None, "threads"),
    ],
)
def test_names_and_aliases(given: str | None, name: str) -> None:
    assert executors.resolve_executor(given) == (name, None)


def test_objects_are_routed_by_kind() -> None:
    with cf.ThreadPoolExecutor(1) as threads:
        assert executors.resolve_executor(threads) == ("threads", threads)

    class OnlySubmit:
        def submit(self, fn: Any, *args: Any) -> cf.Future[Any]:
            future: cf.Future[Any] = cf.Future()
            future.set_result(fn(*args))
            return future

    plain = OnlySubmit()
    assert executors.resolve_executor(plain) == ("threads", plain)
    # a distributed.Client is told by its type's module (Dask is not imported for that)
    client_type = type("Client", (), {"__module__": "distributed.client", "submit": print})
    client = client_type()
    assert executors.resolve_executor(client) == ("dask", client)


def test_a_process_pool_goes_to_the_processes_executor() -> None:
    pool = cf.ProcessPoolExecutor(1)
    try:
        assert executors.resolve_executor(pool) == ("processes", pool)
    finally:
        pool.shutdown()


def test_an_unknown_name_lists_the_choices() -> None:
    with pytest.raises(ValueError, match=r"did you mean 'asyncio'\?") as caught:
        tideflow.load(_flow(), engine="parallel", executor="asyncoi")
    message = str(caught.value)
    for name in ("'asyncio'", "'processes'", "'threads'", "'thread'", "'async'"):
        assert name in message
    with pytest.raises(ValueError, match=r"'nothing-like-it' is not an executor name; choose"):
        executors.resolve_executor("nothing-like-it")
    assert "dask" not in executors.executor_names()  # chosen by passing a Client


def test_an_object_of_the_wrong_kind_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"executor= takes an object with submit\(\).*got 42"):
        tideflow.load(_flow(), engine="parallel", executor=42)  # type: ignore[arg-type]


def test_dask_by_name_asks_for_the_client() -> None:
    with pytest.raises(ValueError, match=r"pass the distributed.Client"):
        tideflow.load(_flow(), engine="parallel", executor="dask")


class CountingDispatcher(ThreadDispatcher):
    """A thread dispatcher that counts the calls it starts."""

    made: list[CountingDispatcher] = []

    def __init__(self, executor: Any, max_workers: int | None, sink: Any) -> None:
        super().__init__(executor, max_workers)
        self.sink = sink
        self.started = 0
        self.closed = False
        CountingDispatcher.made.append(self)

    def start(self, work: executors.Work) -> None:
        self.started += 1
        super().start(work)

    def close(self) -> None:
        self.closed = True
        super().close()


def counting_factory(executor: Any, *, max_workers: int | None, sink: Any) -> CountingDispatcher:
    return CountingDispatcher(executor, max_workers, sink)


def test_a_registered_factory_runs_the_atoms() -> None:
    CountingDispatcher.made.clear()
    executors.register_executor("counting", counting_factory, aliases=("count",))
    flow = UnorderedFlow("u").add(*(Add(f"a{i}", provides=f"y{i}") for i in range(5)))
    values = tideflow.run(flow, store={"x": 1}, engine="parallel", executor="count", max_workers=2)
    assert [values[f"y{i}"] for i in range(5)] == [2] * 5
    (made,) = CountingDispatcher.made
    assert made.started == 5
    assert made.closed
    assert callable(made.sink)  # the engine's receiver of task events
    assert "counting" in executors.executor_names()
    assert "count" in executors.executor_names()


def test_a_factory_path_is_imported_on_first_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "lazy_executor_mod.py").write_text(
        textwrap.dedent(
            """
            from tideflow.executors.threads import ThreadDispatcher
            calls = []

            def factory(executor, *, max_workers, sink):
                calls.append(max_workers)
                return ThreadDispatcher(executor, max_workers)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    executors.register_executor("lazy", "lazy_executor_mod:factory")
    assert "lazy_executor_mod" not in sys.modules
    engine = tideflow.load(
        _flow(), store={"x": 1}, engine="parallel", executor="lazy", max_workers=3
    )
    assert "lazy_executor_mod" in sys.modules
    engine.run()
    assert sys.modules["lazy_executor_mod"].calls == [3]
    # not monkeypatch.delitem: its undo would put the module back, and a second run of
    # this test in the same process (mutmut runs the suite twice in one) would find it
    del sys.modules["lazy_executor_mod"]


def test_an_entry_point_adds_an_executor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ep_executor_mod.py").write_text(
        "from tideflow.executors.threads import make_dispatcher\n"
    )
    info = tmp_path / "ep_executor_dist-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-executor-dist\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[tideflow.executors]\nfrom-plugin = ep_executor_mod:make_dispatcher\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(executors, "_entry_points_read", False)
    assert executors.resolve_executor("from-plugin") == ("from-plugin", None)
    values = tideflow.run(_flow(), store={"x": 4}, engine="parallel", executor="from-plugin")
    assert values["y"] == 5
    monkeypatch.delitem(sys.modules, "ep_executor_mod", raising=False)


def test_a_missing_module_is_named_not_a_traceback() -> None:
    executors.register_executor("ghost", "tideflow_no_such_module:make_dispatcher")
    with pytest.raises(ValueError, match=r"the ghost executor is not available") as caught:
        tideflow.load(_flow(), engine="parallel", executor="ghost")
    assert "tideflow_no_such_module" in str(caught.value)
    assert caught.value.__cause__ is None


def test_a_factory_path_naming_nothing_callable_is_refused() -> None:
    executors.register_executor("hollow", "tideflow.executors:_ENTRY_POINT_GROUP")
    with pytest.raises(ValueError, match=r"names no dispatcher factory"):
        tideflow.load(_flow(), engine="parallel", executor="hollow")


def test_register_executor_checks_its_arguments() -> None:
    with pytest.raises(TypeError, match=r"takes a name"):
        executors.register_executor("", counting_factory)
    with pytest.raises(TypeError, match=r"dispatcher factory or its 'module:attr' path"):
        executors.register_executor("bad", "no_colon_here")


def test_a_pool_the_engine_makes_is_shut_down_without_waiting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waits: list[bool] = []
    original = cf.ThreadPoolExecutor.shutdown

    def shutdown(self: cf.ThreadPoolExecutor, wait: bool = True, **kw: Any) -> None:
        waits.append(wait)
        original(self, wait=wait, **kw)

    monkeypatch.setattr(cf.ThreadPoolExecutor, "shutdown", shutdown)
    tideflow.run(_flow(), store={"x": 1}, engine="parallel")
    tideflow.run(_flow(), store={"x": 1}, engine="parallel", executor="asyncio")
    assert waits == [False, False]


def test_the_serial_engine_refuses_an_executor() -> None:
    with pytest.raises(ValueError, match=r"executor='asyncio' would be ignored"):
        tideflow.load(_flow(), executor="asyncio")
