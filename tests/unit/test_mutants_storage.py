"""Storage's finer points that mutation testing found unchecked (see docs/testing.md).

What a result the store cannot keep is called, retry histories read back, the reasons
given for a value that is missing, and the rule for resuming a record with a changed
flow (which records count as progressed, and the message listing every difference).
"""

from __future__ import annotations

from typing import Any

import pytest

import tideflow
from tideflow import FlowChangedError, LinearFlow, Task, UnorderedFlow, retry
from tideflow._compiler import compile_flow
from tideflow._storage import Storage
from tideflow.persistence import FlowDetail, TaskDetail
from tideflow.persistence._owners import owner_is_stale
from tideflow.persistence.codec import JsonCodec
from tideflow.states import AtomState, FlowState


class T(Task):
    def execute(self, **kwargs: Any) -> Any:
        return kwargs


class CodecStore:
    """A store that copies records and checks values with a JSON codec."""

    shares_records = False
    codec = JsonCodec()


# -- a value the store cannot keep -----------------------------------------------------------


@pytest.mark.parametrize(("reverted", "what"), [(False, "result"), (True, "revert result")])
def test_an_unstorable_value_is_named_as_a_result_or_a_revert_result(reverted, what):
    storage = Storage(FlowDetail("f"), CodecStore())
    detail = TaskDetail("a")
    error = storage.unstorable(detail, object(), reverted)
    assert isinstance(error, tideflow.UnstorableValueError)
    assert f"the {what} of atom 'a'" in str(error)
    assert error.atom == "a"
    assert storage.unstorable(detail, {"fine": [1, 2]}, reverted) is None


# -- retry histories --------------------------------------------------------------------------


class Flaky(Task):
    def __init__(self, name: str, fails: int) -> None:
        super().__init__(name)
        self.fails = fails
        self.runs = 0

    def execute(self) -> int:
        self.runs += 1
        if self.runs <= self.fails:
            raise OSError(f"{self.name} fails #{self.runs}")
        return self.runs


def test_retry_histories_read_back_every_attempt():
    engine = tideflow.load(LinearFlow("f", retry=retry.Times(3, name="r")).add(Flaky("a", 1)))
    engine.run()
    histories = engine.storage.get_retry_histories()
    assert list(histories) == ["r"]
    history = histories["r"]
    assert [p for p, _ in history] == [1, 2]
    assert [sorted(f) for _, f in history] == [["a"], []]
    assert history.failure is None
    assert [p for p, _ in engine.storage.get_retry_history("r")] == [1, 2]


def test_a_controllers_own_failure_is_in_its_history():
    engine = tideflow.load(LinearFlow("f", retry=retry.ForEach([], name="r")).add(T("a")))
    with pytest.raises(tideflow.NotFoundError, match="no values left"):
        engine.run()
    for history in (
        engine.storage.get_retry_history("r"),
        engine.storage.get_retry_histories()["r"],
    ):
        assert history.failure is not None
        assert history.failure.check(tideflow.NotFoundError)


def test_the_history_of_a_task_is_refused_by_name():
    engine = tideflow.load(LinearFlow("f").add(T("a")))
    engine.prepare()
    with pytest.raises(
        tideflow.NotFoundError, match=r"^atom 'a' is not a retry controller: it has no history$"
    ):
        engine.storage.get_retry_history("a")


# -- why a value is missing -------------------------------------------------------------------


def test_every_provider_that_has_not_produced_a_value_is_named():
    flow = LinearFlow("f").add(
        UnorderedFlow("u").add(T("first", provides="x"), T("second", provides="x"))
    )
    engine = tideflow.load(flow)
    with pytest.raises(
        tideflow.NotFoundError,
        match=r"^no value named 'x' in flow 'f': 'first' has not produced it yet \(it is "
        r"PENDING\); 'second' has not produced it yet \(it is PENDING\)$",
    ):
        engine.storage.fetch("x")


def test_a_flow_that_does_not_compile_has_no_known_providers():
    a = T("a", provides="v")
    engine = tideflow.load(LinearFlow("f").add(a, LinearFlow("s").add(a)))  # a used twice
    with pytest.raises(
        tideflow.NotFoundError,
        match=r"^no value named 'v' in flow 'f': nothing provides it \(no atom of the flow",
    ):
        engine.storage.fetch("v")


# -- resuming a record with a changed flow ------------------------------------------------------


def _record(flow_state: FlowState, atoms: dict[str, tuple[AtomState, Any]]) -> FlowDetail:
    record = FlowDetail("f")
    record.state = flow_state
    for name, (state, version) in atoms.items():
        detail = TaskDetail(name)
        detail.state = state
        detail.version = version
        record.add(detail)
    return record


def _task(name: str, version: tuple[int, ...] = (1, 0)) -> T:
    task = T(name)
    task.version = version
    return task


@pytest.mark.parametrize(
    ("flow_state", "atom_state"),
    [
        (FlowState.PENDING, AtomState.SUCCESS),  # the flow record says PENDING, an atom ran
        (FlowState.SUSPENDED, AtomState.PENDING),  # no atom ran, the flow record moved on
    ],
)
def test_a_record_with_any_progress_refuses_a_changed_flow(flow_state, atom_state):
    record = _record(flow_state, {"a": (atom_state, (1, 0))})
    plan = compile_flow(LinearFlow("f").add(_task("a"), _task("b")))
    with pytest.raises(FlowChangedError, match=r"atom 'b' was added"):
        Storage(record).ensure_plan(plan)


def test_a_record_without_progress_adopts_a_changed_flow():
    record = _record(FlowState.PENDING, {"a": (AtomState.PENDING, (1, 0))})
    storage = Storage(record)
    storage.ensure_plan(compile_flow(LinearFlow("f").add(_task("a"), _task("b"))))
    assert sorted(d.name for d in record) == ["a", "b"]


def test_every_difference_is_listed_in_the_message():
    # z is new (listed first), y was removed, a changed major version (recorded as a
    # string, as TaskFlow records it), m changed minor version only (compatible)
    record = _record(
        FlowState.SUSPENDED,
        {
            "a": (AtomState.SUCCESS, "12.0"),
            "m": (AtomState.SUCCESS, "12.0"),
            "y": (AtomState.SUCCESS, (1, 0)),
        },
    )
    plan = compile_flow(LinearFlow("f").add(_task("z"), _task("a", (13, 0)), _task("m", (12, 1))))
    with pytest.raises(FlowChangedError) as raised:
        Storage(record).ensure_plan(plan)
    assert str(raised.value) == (
        f"flow record 'f' ({record.uuid}) was recorded for another version of the flow, "
        "and its run has made progress (SUSPENDED): atom 'z' was added; atom 'y' was "
        "removed; atom 'a' changed version 12.0 -> 13.0 (another major version). Resume "
        "it with the flow it was recorded for, or run the new flow in a new flow record "
        "(load it without flow_detail=)."
    )


@pytest.mark.parametrize(
    ("recorded", "now", "refused"),
    [
        ("12.0", (12, 1), False),
        ("12.0", (13, 0), True),
        ("1.0", (10, 0), True),
        ((2, 0), (2, 5), False),
        ((2, 0), (3, 0), True),
    ],
)
def test_only_a_change_of_major_version_is_refused(recorded, now, refused):
    record = _record(FlowState.SUCCESS, {"a": (AtomState.SUCCESS, recorded)})
    plan = compile_flow(LinearFlow("f").add(_task("a", now)))
    storage = Storage(record)
    if refused:
        with pytest.raises(FlowChangedError, match=r"another major version"):
            storage.ensure_plan(plan)
    else:
        storage.ensure_plan(plan)
        assert record.find_by_name("a").version == now  # a minor change is adopted


# -- fetch_all, and a short result's error ------------------------------------------------------


class Returns(Task):
    def __init__(self, name: str, value: Any, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.value = value

    def execute(self) -> Any:
        return self.value


def test_fetch_all_before_preparing_counts_the_results_of_a_loaded_record():
    def flow() -> LinearFlow:
        return LinearFlow("f").add(Returns("a", 1, provides="x"))

    first = tideflow.load(flow(), store={"s": 0})
    first.run()
    again = tideflow.load(flow(), flow_detail=first.storage.flow_detail)
    assert again.storage.fetch_all() == {"s": 0, "x": 1}


def test_fetch_all_of_a_flow_that_does_not_compile_has_the_store_values():
    a = T("a", provides="v")
    engine = tideflow.load(LinearFlow("f").add(a, LinearFlow("s").add(a)), store={"s": 1})
    assert engine.storage.fetch_all() == {"s": 1}
    assert engine.storage.fetch_all(many_handler=list) == {"s": [1]}


def test_fetch_all_with_a_handler_goes_past_a_name_without_value():
    # a's result is short: p has a value, q none; r comes after q
    flow = LinearFlow("f").add(
        Returns("a", (1,), provides=("p", "q")), Returns("b", 3, provides="r")
    )
    engine = tideflow.load(flow)
    engine.run()
    assert engine.storage.fetch_all(many_handler=list) == {"p": [1], "r": [3]}
    assert engine.storage.fetch_all() == {"p": 1, "r": 3}


def test_the_error_for_a_short_result_keeps_the_index_error_as_its_cause():
    flow = LinearFlow("f").add(
        Returns("short", (1,), provides=("x", "y")), T("need", requires=["y"])
    )
    engine = tideflow.load(flow)
    with pytest.raises(tideflow.NotFoundError, match="'need' needs 'y'") as raised:
        engine.run()
    assert isinstance(raised.value.cause, IndexError)
    assert raised.value.__cause__ is raised.value.cause


def _no(history: Any) -> bool:
    return False


def test_fetch_all_goes_past_a_provider_that_did_not_run_to_a_later_one():
    gate, skipped = T("gate"), Returns("skipped", 1, provides="x")
    g = tideflow.GraphFlow("g").add(gate, skipped)
    g.link(gate, skipped, decider=_no, decider_depth="ATOM")
    engine = tideflow.load(LinearFlow("f").add(g, Returns("later", 2, provides="x")))
    engine.run()
    assert engine.storage.get_atom_state("skipped") == "IGNORE"
    assert engine.storage.fetch_all() == {"x": 2}


def test_fetch_all_goes_past_a_short_result_to_a_later_provider():
    flow = LinearFlow("f").add(
        Returns("short", (1,), provides=("p", "x")), Returns("later", 3, provides="x")
    )
    engine = tideflow.load(flow)
    engine.run()
    assert engine.storage.fetch_all() == {"p": 1, "x": 3}


# -- owning the run: claim() and release() ----------------------------------------------------


class ClaimingStore:
    """A store that takes claims, noting each call; ``fail`` names calls that raise."""

    shares_records = False

    def __init__(self, *, known: bool = True, fail: tuple[str, ...] = ()) -> None:
        self.known = known
        self.fail = fail
        self.calls: list[tuple[Any, ...]] = []

    def get_connection(self) -> ClaimingStore:
        return self

    def close(self) -> None:
        pass

    def save_logbook(self, book: Any) -> None:
        self.calls.append(("save_logbook", [d.name for d in book]))
        self.known = True

    def claim_run(self, uuid: str, owner: str, *book: Any) -> None:
        if book:  # a fenced run creates a missing record under its claim
            self.calls.append(("claim_run", uuid, owner, [d.name for d in book[0]]))
            self.known = True
            return
        self.calls.append(("claim_run", uuid, owner))
        if not self.known:
            raise tideflow.NotFoundError(f"no flow record {uuid}")
        if "claim_run" in self.fail:
            raise tideflow.StoreError("claimed by another engine")

    def release_run(self, uuid: str, owner: str) -> None:
        self.calls.append(("release_run", uuid, owner))
        if "release_run" in self.fail:
            raise RuntimeError("store down")


def test_a_claim_is_released_with_the_same_owner_which_is_then_over():
    store = ClaimingStore()
    storage = Storage(FlowDetail("f"), store)
    storage.claim()
    (_, uuid, owner), *_ = store.calls
    assert uuid == storage.flow_uuid
    assert not owner_is_stale(owner)  # a live run of this process
    storage.release()
    assert store.calls == [("claim_run", uuid, owner), ("release_run", uuid, owner)]
    assert owner_is_stale(owner)
    storage.release()  # once only
    assert len(store.calls) == 2


def test_a_record_the_store_has_not_seen_is_saved_before_it_is_claimed():
    store = ClaimingStore(known=False)
    storage = Storage(FlowDetail("f"), store)
    storage.claim()
    uuid, owner = store.calls[0][1:]
    assert store.calls == [
        ("claim_run", uuid, owner),
        ("save_logbook", ["f"]),
        ("claim_run", uuid, owner),
    ]


def test_a_refused_claim_ends_its_owner():
    store = ClaimingStore(fail=("claim_run",))
    storage = Storage(FlowDetail("f"), store)
    with pytest.raises(tideflow.StoreError, match="claimed by another engine"):
        storage.claim()
    owner = store.calls[0][2]
    assert owner_is_stale(owner)
    storage.release()  # nothing to release
    assert [c[0] for c in store.calls] == ["claim_run"]


def test_a_release_the_store_refuses_is_logged_and_the_owner_is_over(caplog):
    store = ClaimingStore(fail=("release_run",))
    storage = Storage(FlowDetail("f"), store)
    storage.claim()
    owner = store.calls[0][2]
    storage.release()
    assert owner_is_stale(owner)
    assert [r.getMessage() for r in caplog.records if r.name == "tideflow.storage"] == [
        f"could not release flow record {storage.flow_uuid} (RuntimeError: store down); the "
        "next engine takes it over once this process has exited"
    ]


class CountingStore:
    """A store that copies records and counts flow record writes."""

    shares_records = False

    def __init__(self) -> None:
        self.flow_writes = 0

    def get_connection(self) -> CountingStore:
        return self

    def close(self) -> None:
        pass

    def update_flow_details(self, flow_detail: Any) -> None:
        self.flow_writes += 1

    def update_atom_details(self, atom_detail: Any) -> None:
        pass


def test_commits_with_nothing_changed_write_nothing_however_many():
    store = CountingStore()
    storage = Storage(FlowDetail("f"), store)
    storage.update_flow_metadata({"note": 1})
    storage.commit()
    assert store.flow_writes == 1
    for _ in range(3):
        storage.commit()
    assert store.flow_writes == 1


class RoundStore(CountingStore):
    """A store that writes a round at once (``save_round``), or fails to write."""

    def __init__(self, *, fail: bool = False) -> None:
        super().__init__()
        self.fail = fail
        self.rounds: list[dict[str, Any]] = []

    def save_round(self, flow_detail: Any, atoms: list[Any], **kwargs: Any) -> None:
        if self.fail:
            raise OSError("disk full")
        self.rounds.append({"atoms": [a.name for a in atoms], **kwargs})

    def save_logbook(self, book: Any) -> None:
        pass

    def claim_run(self, uuid: str, owner: str) -> None:
        self.owner = owner

    def release_run(self, uuid: str, owner: str) -> None:
        pass


def test_a_round_is_saved_with_the_claims_owner_and_whether_the_flow_record_changed():
    store = RoundStore()
    _, storage = _prepared_on(store)
    storage.claim()
    storage.commit()
    storage.set_atom_state("a", AtomState.SUCCESS)
    storage.commit()
    assert store.rounds[-1] == {"atoms": ["a"], "owner": store.owner, "flow_changed": False}
    storage.update_flow_metadata({"note": 1})
    storage.commit()
    assert store.rounds[-1] == {"atoms": [], "owner": store.owner, "flow_changed": True}


def test_a_store_that_cannot_write_raises_a_store_error_naming_the_flow_and_the_cause():
    store = RoundStore(fail=True)
    _, storage = _prepared_on(store)
    with pytest.raises(tideflow.StoreError) as raised:
        storage.commit()
    assert str(raised.value).startswith(
        f"the store {store!r} could not record flow 'f' (OSError: disk full); what it "
        "recorded before is kept, and the run can be resumed from it"
    )
    assert isinstance(raised.value.cause, OSError)
    assert raised.value.__cause__ is raised.value.cause


def _prepared_on(store: Any) -> tuple[tideflow.Engine, Storage]:
    engine = tideflow.load(LinearFlow("f").add(T("a")), backend=store)
    engine.prepare()
    return engine, engine.storage


# -- a fenced run on a store that shares the engine's records ------------------------------


def test_a_fenced_run_on_a_memory_store_stops_at_its_commit_once_taken_over():
    from tideflow.errors import RunOwnedError
    from tideflow.persistence import MemoryBackend, claim_record

    backend = MemoryBackend()
    ran = []

    class Step(Task):
        def execute(self):
            ran.append(self.name)
            if self.name == "b":  # a newer claim of the job takes the record over here
                claim_record(backend, engine.storage.flow_uuid, ("job-1", 2))

    engine = tideflow.load(
        LinearFlow("f").add(Step("a"), Step("b"), Step("c")), backend=backend, fence=("job-1", 1)
    )
    with pytest.raises(RunOwnedError, match="claim 2 of job job-1") as caught:
        engine.run()
    assert "no longer run by this engine" in str(caught.value)
    assert ran[:2] == ["a", "b"]
    # the same run unfenced never checks: it is the only owner
    ran.clear()
    tideflow.load(LinearFlow("g").add(Step("a")), backend=MemoryBackend()).run()
    assert ran == ["a"]


def test_the_execute_result_of_a_failed_atom_is_its_failure():
    class Provide(Task):
        default_provides = "v"

        def execute(self):
            return 1

    class Boom(Task):
        def execute(self, v):
            raise RuntimeError("boom")

    engine = tideflow.load(LinearFlow("f").add(Provide("p"), Boom("b")))
    with pytest.raises(RuntimeError, match="boom"):
        engine.run()
    result = engine.storage.get_execute_result("b")
    assert isinstance(result, tideflow.Failure)
    assert result.check(RuntimeError)


JOB_FENCE = ("0f1e2d3c-job", 4)


def test_a_fenced_run_creates_a_missing_record_under_its_claim_in_one_call():
    store = ClaimingStore(known=False)
    storage = Storage(FlowDetail("f"), store)
    storage.fence = JOB_FENCE
    storage.claim()
    uuid, owner = store.calls[0][1:]
    assert uuid == storage.flow_uuid
    assert owner.endswith("#4@0f1e2d3c-job")  # fenced with the job's token
    # never saved unowned first: a stale claimant could write to it in between
    assert store.calls == [("claim_run", uuid, owner), ("claim_run", uuid, owner, ["f"])]
    storage.release()
    assert store.calls[-1] == ("release_run", uuid, owner)


class _NoClaims:
    """A connection of a store that cannot take claims."""

    shares_records = False

    def get_connection(self) -> _NoClaims:
        return self

    def close(self) -> None:
        pass


def test_a_fenced_run_on_a_store_that_cannot_claim_is_refused_saying_why():
    storage = Storage(FlowDetail("f"), _NoClaims())
    storage.fence = JOB_FENCE
    with pytest.raises(
        tideflow.StoreError,
        match=r"^_NoClaims cannot fence runs \(it has no claim_run\(\)\): a run under a job "
        r"claim needs a store that can \(every store of tideflow's can\)$",
    ):
        storage.claim()


def test_an_unfenced_run_on_a_store_that_cannot_claim_runs_unclaimed():
    storage = Storage(FlowDetail("f"), _NoClaims())
    storage.claim()  # nothing to claim with, nothing refused
    storage.release()


def test_an_adopted_claim_is_run_under_without_claiming_again():
    store = ClaimingStore()
    storage = Storage(FlowDetail("f"), store)
    storage.fence = JOB_FENCE
    held = "host:1:2#4@0f1e2d3c-job"
    storage.adopt_claim(held)
    storage.claim()
    assert store.calls == []  # the conductor's claim stands: no second transaction
    storage.release()
    assert store.calls == [("release_run", storage.flow_uuid, held)]
    storage.claim()  # the adoption was for one run: the next claims as usual
    assert [c[0] for c in store.calls] == ["release_run", "claim_run"]


def test_an_adopted_claim_must_carry_the_runs_fence():
    storage = Storage(FlowDetail("f"), ClaimingStore())
    storage.fence = JOB_FENCE
    with pytest.raises(ValueError, match=r"fenced as this run is \(\('0f1e2d3c-job', 4\)\)"):
        storage.adopt_claim("host:1:2#3@0f1e2d3c-job")


def test_a_private_store_is_never_claimed():
    store = ClaimingStore()
    storage = Storage(FlowDetail("f"), store)
    storage.private = True  # the engine's own memory store: no other engine reaches it
    storage.claim()
    storage.release()
    assert store.calls == []
