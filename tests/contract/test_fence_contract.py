"""Runs fenced by a job claim, on every store: a newer claim takes the record over from
a live owner, the older owner can then write nothing, and a finished fenced run leaves a
tombstone that a stale claimant cannot get past (tideflow.persistence._owners)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import Any

import pytest

import tideflow
from tideflow.errors import NotFoundError, RunOwnedError
from tideflow.persistence import FlowDetail, LogBook, TaskDetail, claim_record
from tideflow.persistence._owners import (
    describe_owner,
    fence_of,
    may_take_over,
    new_owner,
    released,
    retire_owner,
)
from tideflow.states import AtomState, FlowState

JOB = "0f1e2d3c-job"


def _flow(*names: str) -> FlowDetail:
    flow_detail = FlowDetail("fenced")
    for name in names:
        flow_detail.add(TaskDetail(name))
    return flow_detail


def _book(flow_detail: FlowDetail) -> LogBook:
    book = LogBook("jobs")
    book.add(flow_detail)
    return book


def _dead_owner(fence: tuple[str, int] | None = None) -> str:
    """An owner token of a process of this host that has exited."""
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    host = new_owner().partition(":")[0]
    token = f"{host}:{int(child.stdout)}:77"
    return token if fence is None else f"{token}#{fence[1]}@{fence[0]}"


# -- the rule, store by store ----------------------------------------------------------


def test_a_higher_token_takes_over_a_live_owner_whose_writes_then_fail(
    backend: Any, conn: Any, reopen: Any
) -> None:
    flow_detail = _flow("a", "b")
    conn.save_logbook(_book(flow_detail))
    old = new_owner((JOB, 1))
    conn.claim_run(flow_detail.uuid, old)
    a = flow_detail.find_by_name("a")
    assert a is not None
    a.state, a.results = AtomState.SUCCESS, "by old"
    conn.save_round(flow_detail, [a], owner=old)

    new = new_owner((JOB, 2))
    reopen().claim_run(flow_detail.uuid, new)  # old is alive (this process): still taken

    b = flow_detail.find_by_name("b")
    assert b is not None
    b.state, b.results = AtomState.SUCCESS, "late"
    with pytest.raises(RunOwnedError, match=f"claim 2 of job {JOB}"):
        conn.save_round(flow_detail, [b], owner=old)
    with pytest.raises(RunOwnedError, match=f"claim 2 of job {JOB}"):
        conn.claim_run(flow_detail.uuid, old)  # and it cannot claim it back
    if not backend.shares_records:  # a memory store holds the very objects written
        got = {d.name: (d.state, d.results) for d in reopen().get_atoms_for_flow(flow_detail.uuid)}
        assert got == {"a": (AtomState.SUCCESS, "by old"), "b": (AtomState.PENDING, None)}


def test_a_lower_token_never_takes_over_even_from_a_dead_owner(conn: Any) -> None:
    flow_detail = _flow("a")
    conn.save_logbook(_book(flow_detail))
    conn.claim_run(flow_detail.uuid, _dead_owner((JOB, 5)))
    with pytest.raises(RunOwnedError, match=f"claim 5 of job {JOB}"):
        conn.claim_run(flow_detail.uuid, new_owner((JOB, 4)))
    conn.claim_run(flow_detail.uuid, new_owner((JOB, 5)))  # the same claim may (one holder)


def test_a_finished_fenced_run_leaves_a_tombstone(conn: Any, reopen: Any) -> None:
    flow_detail = _flow("a")
    conn.save_logbook(_book(flow_detail))
    owner = new_owner((JOB, 3))
    conn.claim_run(flow_detail.uuid, owner)
    conn.release_run(flow_detail.uuid, owner)

    with pytest.raises(RunOwnedError, match=f"the run of claim 3 of job {JOB} has ended"):
        reopen().claim_run(flow_detail.uuid, new_owner((JOB, 2)))
    with pytest.raises(RunOwnedError):  # a fence of another job is no claim of this one
        conn.claim_run(flow_detail.uuid, new_owner(("another-job", 9)))
    reopen().claim_run(flow_detail.uuid, new_owner((JOB, 4)))


def test_a_tombstone_lets_someone_resume_by_hand(conn: Any) -> None:
    flow_detail = _flow("a")
    conn.save_logbook(_book(flow_detail))
    owner = new_owner((JOB, 1))
    conn.claim_run(flow_detail.uuid, owner)
    conn.release_run(flow_detail.uuid, owner)
    by_hand = new_owner()
    conn.claim_run(flow_detail.uuid, by_hand)
    with pytest.raises(RunOwnedError):  # and while it runs, no claim may take it
        conn.claim_run(flow_detail.uuid, new_owner((JOB, 2)))
    conn.release_run(flow_detail.uuid, by_hand)
    conn.claim_run(flow_detail.uuid, new_owner((JOB, 2)))


def test_claiming_with_a_book_creates_the_record_under_the_claim(conn: Any, reopen: Any) -> None:
    flow_detail = _flow("a")
    owner = new_owner((JOB, 1))
    conn.claim_run(flow_detail.uuid, owner, _book(flow_detail))
    got = reopen().get_flow_details(flow_detail.uuid)
    assert [d.name for d in got] == ["a"]
    a = flow_detail.find_by_name("a")
    assert a is not None
    a.state, a.results = AtomState.SUCCESS, 1
    conn.save_round(flow_detail, [a], owner=owner)  # owned from the start

    # a stale claimant holding a fresh copy cannot reset what was recorded
    stale = _flow("a")
    stale.uuid = flow_detail.uuid
    with pytest.raises(RunOwnedError):
        reopen().claim_run(flow_detail.uuid, new_owner((JOB, 0)), _book(stale))
    got = reopen().get_flow_details(flow_detail.uuid)
    assert [(d.state, d.results) for d in got] == [(AtomState.SUCCESS, 1)]


def test_claiming_a_missing_record_without_a_book_is_not_found(conn: Any) -> None:
    with pytest.raises(NotFoundError, match="0badc0de"):
        conn.claim_run("0badc0de-0000-4000-8000-000000000000", new_owner((JOB, 1)))


def test_claim_record_reads_the_record_after_taking_it(backend: Any, conn: Any) -> None:
    flow_detail = _flow("a")
    old = new_owner((JOB, 1))
    conn.claim_run(flow_detail.uuid, old, _book(flow_detail))
    a = flow_detail.find_by_name("a")
    assert a is not None
    a.state, a.results = AtomState.SUCCESS, "kept"
    conn.save_round(flow_detail, [a], owner=old)

    record = claim_record(backend, flow_detail.uuid, (JOB, 2))
    assert [(d.state, d.results) for d in record] == [(AtomState.SUCCESS, "kept")]
    with pytest.raises(RunOwnedError):
        conn.save_round(flow_detail, [a], owner=old)
    with pytest.raises(RunOwnedError):
        claim_record(backend, flow_detail.uuid, (JOB, 1))


def test_claim_record_creates_a_new_record_from_its_book(backend: Any, reopen: Any) -> None:
    flow_detail = _flow("a", "b")
    record = claim_record(backend, flow_detail.uuid, (JOB, 1), book=_book(flow_detail))
    assert [d.name for d in record] == ["a", "b"]
    assert reopen().get_flow_details(flow_detail.uuid).state == FlowState.PENDING


# -- the engine under a fence ----------------------------------------------------------


def test_an_engine_overtaken_mid_run_stops_writing(backend: Any, reopen: Any) -> None:
    """A second claim takes the record over while the first engine's atom runs: the
    first engine's next write is refused, it stops, and nothing of it is recorded after
    the takeover; the second engine resumes from what the first had committed."""
    calls: list[str] = []
    takeover_done = threading.Event()

    def first(x: int) -> int:
        calls.append("first")
        return x + 1

    def second(y: int) -> int:
        calls.append("second")
        if not takeover_done.is_set():
            claim_record(backend, engine.storage.flow_uuid, (JOB, 2))
            takeover_done.set()
        return y * 10

    def third(z: int) -> int:
        calls.append("third")
        return z + 5

    flow = tideflow.LinearFlow("fenced").add(
        tideflow.FunctorTask(first, name="first", provides="y"),
        tideflow.FunctorTask(second, name="second", provides="z"),
        tideflow.FunctorTask(third, name="third", provides="w"),
    )
    engine = tideflow.load(flow, {"x": 1}, backend=backend, fence=(JOB, 1))
    with pytest.raises(RunOwnedError, match=f"claim 2 of job {JOB}"):
        engine.run()
    if backend.shares_records:
        # one process, and the store holds the engine's own objects: the run stops at
        # its next commit (a round's end), and there is no separate record to resume
        assert calls[:2] == ["first", "second"]
        return
    assert calls == ["first", "second"]  # durable: one atom per round, none after
    stored = {d.name: d.state for d in reopen().get_atoms_for_flow(engine.storage.flow_uuid)}
    assert stored["first"] == AtomState.SUCCESS
    assert stored["second"] != AtomState.SUCCESS  # its result came after the takeover
    assert stored["third"] == AtomState.PENDING

    record = reopen().get_flow_details(engine.storage.flow_uuid)
    again = tideflow.load(flow, {"x": 1}, backend=backend, flow_detail=record, fence=(JOB, 2))
    again.run()
    assert calls == ["first", "second", "second", "third"]  # first is not run again
    assert again.storage.fetch("w") == 25


def test_a_stale_engine_cannot_start_a_taken_run(backend: Any) -> None:
    flow = tideflow.LinearFlow("f").add(tideflow.FunctorTask(lambda: 1, name="one", provides="v"))
    engine = tideflow.load(flow, backend=backend, fence=(JOB, 1))
    engine.prepare()
    record = claim_record(backend, engine.storage.flow_uuid, (JOB, 3))
    tideflow.load(flow, backend=backend, flow_detail=record, fence=(JOB, 3)).run()
    with pytest.raises(RunOwnedError, match=f"claim 3 of job {JOB}"):
        engine.run()


# -- the rule itself -------------------------------------------------------------------


def test_may_take_over_pairs() -> None:
    live = new_owner()
    dead = _dead_owner()
    f1, f2 = new_owner((JOB, 1)), new_owner((JOB, 2))
    dead_f2 = _dead_owner((JOB, 2))
    tomb2 = released(f2)
    assert tomb2 == f"#2@{JOB}"
    other_job = new_owner(("other", 7))

    assert may_take_over(None, live)
    assert may_take_over(live, live)
    assert not may_take_over(live, new_owner())
    assert may_take_over(dead, live)
    assert may_take_over(f1, f2)  # higher token, live owner
    assert not may_take_over(f2, f1)
    assert not may_take_over(dead_f2, f1)  # lower token never, dead or not
    assert may_take_over(dead_f2, new_owner((JOB, 2)))
    assert not may_take_over(tomb2, f1)
    assert may_take_over(tomb2, new_owner((JOB, 2)))
    assert may_take_over(tomb2, live)  # by hand, after the job's run ended
    assert not may_take_over(tomb2, other_job)
    assert not may_take_over(live, f2)  # a fenced claim does not take an unfenced live run
    assert may_take_over(dead, f2)
    assert not may_take_over(other_job, f2)  # another job's live run
    assert released(live) is None
    for token in (live, dead, f1, f2, dead_f2, other_job):
        retire_owner(token)


def test_fence_tokens_read_back_and_read_well() -> None:
    owner = new_owner((JOB, 12))
    assert fence_of(owner) == (JOB, 12)
    assert fence_of(new_owner()) is None
    assert describe_owner(owner) == (
        f"process {os.getpid()} on host {owner.partition(':')[0]}, under claim 12 of job {JOB}"
    )
    assert describe_owner(f"#12@{JOB}") == f"no engine (the run of claim 12 of job {JOB} has ended)"


@pytest.mark.parametrize(
    ("fence", "error", "match"),
    [
        ("job", TypeError, r"\(key, token\) pair.*got 'job'"),
        ((JOB,), TypeError, r"\(key, token\) pair"),
        ((JOB, "1"), TypeError, r"fencing token \(int\)"),
        ((JOB, True), TypeError, r"fencing token \(int\)"),
        ((7, 1), TypeError, r"job's uuid \(str\)"),
        (("", 1), ValueError, "non-empty"),
        (("a#b", 1), ValueError, "without '#'"),
        ((JOB, -1), ValueError, "0 or more, got -1"),
    ],
)
def test_a_bad_fence_is_refused_at_load(fence: Any, error: type[Exception], match: str) -> None:
    flow = tideflow.LinearFlow("f").add(tideflow.FunctorTask(lambda: 1, name="one"))
    with pytest.raises(error, match=match):
        tideflow.load(flow, backend="memory://", fence=fence)


def test_a_fence_without_a_store_is_refused() -> None:
    flow = tideflow.LinearFlow("f").add(tideflow.FunctorTask(lambda: 1, name="one"))
    with pytest.raises(ValueError, match="give that store as backend="):
        tideflow.load(flow, fence=(JOB, 1))


def test_an_engine_adopts_a_claim_already_held(backend: Any, reopen: Any) -> None:
    flow = tideflow.LinearFlow("f").add(tideflow.FunctorTask(lambda: 7, name="one", provides="v"))
    record = FlowDetail("f")
    placeholder = new_owner((JOB, 4))
    conn = backend.get_connection()
    conn.claim_run(record.uuid, placeholder, _book(record))
    engine = tideflow.load(flow, backend=backend, flow_detail=record, fence=(JOB, 4))
    with pytest.raises(ValueError, match="fenced as this run is"):
        engine.storage.adopt_claim(new_owner((JOB, 5)))
    engine.storage.adopt_claim(placeholder)
    engine.run()
    assert engine.storage.fetch("v") == 7
    # the run ended under the adopted token: its tombstone holds the record now
    with pytest.raises(RunOwnedError, match="claim 4 of job"):
        conn.claim_run(record.uuid, new_owner((JOB, 3)))
    conn.claim_run(record.uuid, new_owner((JOB, 4)))


def test_an_adopted_claim_taken_over_before_the_run_writes_nothing(
    backend: Any, reopen: Any
) -> None:
    flow = tideflow.LinearFlow("f").add(tideflow.FunctorTask(lambda: 7, name="one", provides="v"))
    record = FlowDetail("f")
    placeholder = new_owner((JOB, 4))
    backend.get_connection().claim_run(record.uuid, placeholder, _book(record))
    engine = tideflow.load(flow, backend=backend, flow_detail=record, fence=(JOB, 4))
    engine.storage.adopt_claim(placeholder)
    claim_record(backend, record.uuid, (JOB, 5))
    with pytest.raises(RunOwnedError, match="claim 5 of job"):
        engine.run()
    if not backend.shares_records:
        assert reopen().get_flow_details(record.uuid).state == FlowState.PENDING


def test_a_run_is_released_by_its_last_round_where_the_store_can(
    backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stores whose rounds can release (``releases_in_round``) end a run in one write:
    its last round; the others get release_run after it. Either way the run is over."""
    conn = backend.get_connection()
    kind = type(conn)
    released_by_call: list[tuple[str, str]] = []
    real = kind.release_run

    def counted(self: Any, fd_uuid: str, owner: str) -> None:
        released_by_call.append((fd_uuid, owner))
        real(self, fd_uuid, owner)

    monkeypatch.setattr(kind, "release_run", counted)
    flow = tideflow.LinearFlow("f").add(tideflow.FunctorTask(lambda: 7, name="one", provides="v"))
    engine = tideflow.load(flow, backend=backend, fence=(JOB, 2))
    engine.run()
    uuid = engine.storage.flow_uuid
    assert len(released_by_call) == (0 if getattr(kind, "releases_in_round", False) else 1)
    with pytest.raises(RunOwnedError, match=f"the run of claim 2 of job {JOB} has ended"):
        conn.claim_run(uuid, new_owner((JOB, 1)))
    by_hand = new_owner()
    conn.claim_run(uuid, by_hand)  # a tombstone, not a live owner: resumable by hand
    conn.release_run(uuid, by_hand)


def test_a_round_that_releases_is_fenced_like_any_other(conn: Any) -> None:
    if not getattr(conn, "releases_in_round", False):
        with pytest.raises(TypeError):  # the keyword is an ability, not a given
            conn.save_round(_flow("a"), [], owner=new_owner(), release=True)
        return
    flow_detail = _flow("a")
    conn.save_logbook(_book(flow_detail))
    mine, theirs = new_owner((JOB, 5)), new_owner((JOB, 4))
    conn.claim_run(flow_detail.uuid, mine)
    atom = flow_detail.find(next(iter(flow_detail)).uuid)
    atom.state = AtomState.SUCCESS
    with pytest.raises(RunOwnedError):
        conn.save_round(flow_detail, [atom], owner=theirs, release=True)
    with pytest.raises(RunOwnedError):  # still mine: nothing was released
        conn.claim_run(flow_detail.uuid, new_owner())
    flow_detail.state = FlowState.SUCCESS
    conn.save_round(flow_detail, [atom], owner=mine, release=True)
    got = conn.get_flow_details(flow_detail.uuid)
    assert got.state == FlowState.SUCCESS
    assert next(iter(got)).state == AtomState.SUCCESS
    with pytest.raises(RunOwnedError, match="no longer run"):
        conn.save_round(flow_detail, [atom], owner=mine)  # released: mine no more
    with pytest.raises(RunOwnedError, match=f"the run of claim 5 of job {JOB} has ended"):
        conn.claim_run(flow_detail.uuid, new_owner((JOB, 4)))
    conn.claim_run(flow_detail.uuid, new_owner((JOB, 6)))
