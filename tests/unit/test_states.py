"""The state tables: what is allowed, what is a no-op, what is an engine bug.

Every (old, new) pair of flow states and of atom states (task and retry) is checked
against the tables written out below. They are written by hand, not read from
``tideflow.states``: TaskFlow 6.5's documented transitions (its ``check_*_transition``
results, recorded in ``docs/taskflow-behaviour.md``, "taskflow.states"), plus the
additions tideflow makes on purpose, each with its reason. A change to the module's
tables that is not also made here fails.
"""

from __future__ import annotations

import itertools

import pytest

import tideflow
from tideflow import LinearFlow, Task, states
from tideflow.errors import InvalidStateError
from tideflow.states import AtomState, FlowState, check_atom_transition, check_flow_transition

F = FlowState
A = AtomState

# -- the expected tables ---------------------------------------------------------------

#: TaskFlow 6.5's flow transitions that return True.
TASKFLOW_FLOW = {
    F.PENDING: {F.RUNNING},
    F.RUNNING: {F.SUCCESS, F.FAILURE, F.REVERTED, F.SUSPENDING, F.RESUMING},
    F.SUCCESS: {F.PENDING, F.RUNNING},
    F.FAILURE: {F.RUNNING},
    F.REVERTED: {F.PENDING},
    F.SUSPENDING: {F.SUCCESS, F.FAILURE, F.REVERTED, F.SUSPENDED, F.RESUMING},
    F.SUSPENDED: {F.RUNNING},
    F.RESUMING: {F.SUSPENDED},
}
#: tideflow's flow table: TaskFlow's, with these differences.
FLOW_ADDED = {
    (F.FAILURE, F.PENDING),  # reset() after a failed revert
    (F.SUSPENDED, F.PENDING),  # reset() of a suspended run
}
FLOW_DROPPED = {
    # a suspending run stops as SUSPENDED; a record left SUSPENDING resumes through
    # SUSPENDED, never straight to RESUMING (commit f87e149 dropped unused transitions)
    (F.SUSPENDING, F.RESUMING),
}

#: TaskFlow 6.5's task transitions that return True.
TASKFLOW_TASK = {
    A.PENDING: {A.RUNNING, A.IGNORE},
    A.RUNNING: {A.SUCCESS, A.FAILURE},
    A.SUCCESS: {A.REVERTING},
    A.FAILURE: {A.REVERTING},
    A.REVERTING: {A.REVERTED, A.REVERT_FAILURE},
    A.REVERTED: {A.PENDING},
    A.IGNORE: {A.PENDING},
}
#: tideflow's task table: TaskFlow's plus these.
TASK_ADDED = {
    (A.RUNNING, A.PENDING),  # resuming: an atom caught running runs again (and reset())
    (A.RUNNING, A.REVERTING),  # resuming while reverting: an atom caught running is undone
    (A.REVERT_FAILURE, A.REVERTING),  # running a FAILURE flow again retries the revert
    # reset() from every settled state
    (A.SUCCESS, A.PENDING),
    (A.FAILURE, A.PENDING),
    (A.REVERTING, A.PENDING),
    (A.REVERT_FAILURE, A.PENDING),
}
#: A retry controller adds these to the task table (TaskFlow's retry table).
RETRY_ADDED = {
    (A.SUCCESS, A.RETRYING),
    (A.RETRYING, A.RUNNING),
    # tideflow: a revert of everything reaches a controller waiting out its back-off;
    # reset() of a run suspended during that wait
    (A.RETRYING, A.REVERTING),
    (A.RETRYING, A.PENDING),
}


def _pairs(table: dict) -> set:
    return {(old, new) for old, targets in table.items() for new in targets}


EXPECTED_FLOW = (_pairs(TASKFLOW_FLOW) - FLOW_DROPPED) | FLOW_ADDED
EXPECTED_TASK = _pairs(TASKFLOW_TASK) | TASK_ADDED
EXPECTED_RETRY = EXPECTED_TASK | RETRY_ADDED

FLOW_PAIRS = list(itertools.product(FlowState, FlowState))
ATOM_PAIRS = list(itertools.product(AtomState, AtomState))


def _ids(pair: tuple) -> str:
    return f"{pair[0]}->{pair[1]}"


def test_the_expected_tables_hold_no_same_state_pair():
    # a same-state pair in an expected table would hide the no-op rule below
    for table in (EXPECTED_FLOW, EXPECTED_TASK, EXPECTED_RETRY):
        assert all(old != new for old, new in table)


# -- every pair against the tables ----------------------------------------------------


@pytest.mark.parametrize("pair", FLOW_PAIRS, ids=_ids)
def test_every_flow_state_pair(pair):
    old, new = pair
    if old == new:
        assert check_flow_transition(old, new) is False
    elif pair in EXPECTED_FLOW:
        assert check_flow_transition(old, new) is True
    else:
        with pytest.raises(InvalidStateError, match=f"^flow cannot go from {old} to {new}: "):
            check_flow_transition(old, new)


@pytest.mark.parametrize("pair", ATOM_PAIRS, ids=_ids)
def test_every_task_state_pair(pair):
    old, new = pair
    if old == new:
        assert check_atom_transition(old, new) is False
    elif pair in EXPECTED_TASK:
        assert check_atom_transition(old, new) is True
    else:
        with pytest.raises(InvalidStateError, match=f"^task cannot go from {old} to {new}: "):
            check_atom_transition(old, new)


@pytest.mark.parametrize("pair", ATOM_PAIRS, ids=_ids)
def test_every_retry_state_pair(pair):
    old, new = pair
    if old == new:
        assert check_atom_transition(old, new, retry=True) is False
    elif pair in EXPECTED_RETRY:
        assert check_atom_transition(old, new, retry=True) is True
    else:
        with pytest.raises(InvalidStateError, match=f"^retry cannot go from {old} to {new}: "):
            check_atom_transition(old, new, retry=True)


def test_the_module_tables_are_the_expected_ones():
    # the same facts as the pair tests, compared whole so a failure shows the difference
    assert set(states.FLOW_TRANSITIONS) == EXPECTED_FLOW
    assert set(states.TASK_TRANSITIONS) == EXPECTED_TASK
    assert set(states.RETRY_TRANSITIONS) == EXPECTED_RETRY


@pytest.mark.parametrize(
    ("old", "new"),
    [(A.SUCCESS, A.RUNNING), (A.PENDING, A.SUCCESS)],
)
def test_the_transitions_the_issue_names_are_refused(old, new, engine):
    # issue 6 item 7: these two slipped through a planted bug, in the table or the engine
    for retry in (False, True):
        with pytest.raises(InvalidStateError, match=f"cannot go from {old} to {new}"):
            check_atom_transition(old, new, retry=retry)
    detail = engine.storage.details[engine.compilation.index["a"]]
    detail.state = old
    with pytest.raises(InvalidStateError, match=f"atom 'a' cannot go from {old} to {new}"):
        engine._atom_state(detail, new)


# -- the engine checks every atom and flow change against the same tables --------------


class T(Task):
    def execute(self):
        return 1


@pytest.fixture
def engine():
    engine = tideflow.load(LinearFlow("f").add(T("a")))
    engine.prepare()
    return engine


@pytest.mark.parametrize("pair", ATOM_PAIRS, ids=_ids)
def test_the_engine_makes_only_allowed_atom_transitions(engine, pair):
    old, new = pair
    detail = engine.storage.details[engine.compilation.index["a"]]
    detail.state = old
    seen = []
    engine.atom_notifier.register("*", lambda state, details: seen.append((details, state)))
    if old == new:
        engine._atom_state(detail, new)
        assert detail.state is old
        assert seen == []
    elif pair in EXPECTED_TASK:
        engine._atom_state(detail, new)
        assert detail.state is new
        assert [(d["old_state"], s) for d, s in seen] == [(old, new)]
    else:
        with pytest.raises(
            InvalidStateError, match=f"^atom 'a' cannot go from {old} to {new}: this is an engine"
        ):
            engine._atom_state(detail, new)
        assert detail.state is old, "a refused transition leaves the state as it was"
        assert seen == []


@pytest.mark.parametrize("pair", FLOW_PAIRS, ids=_ids)
def test_the_engine_makes_only_allowed_flow_transitions(engine, pair):
    old, new = pair
    engine.storage.set_flow_state(old)
    seen = []
    engine.notifier.register("*", lambda state, details: seen.append((details["old_state"], state)))
    if old == new:
        engine._flow_state(new)
        assert seen == []
    elif pair in EXPECTED_FLOW:
        engine._flow_state(new)
        assert seen == [(old, new)]
    else:
        with pytest.raises(InvalidStateError, match=f"^flow cannot go from {old} to {new}: "):
            engine._flow_state(new)
        assert seen == []
    assert engine.storage.get_flow_state() is (old if pair not in EXPECTED_FLOW else new)


# -- the rest of the module -----------------------------------------------------------


def test_states_are_their_names_as_strings():
    assert states.SUCCESS == "SUCCESS"
    assert f"{FlowState.RUNNING}" == "RUNNING"
    assert {AtomState.PENDING: 1}["PENDING"] == 1
