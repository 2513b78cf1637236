"""The state tables: what is allowed, what is a no-op, what is an engine bug."""

import pytest

from tideflow import states
from tideflow.errors import InvalidStateError
from tideflow.states import AtomState, FlowState, check_atom_transition, check_flow_transition


def test_states_are_their_names_as_strings():
    assert states.SUCCESS == "SUCCESS"
    assert f"{FlowState.RUNNING}" == "RUNNING"
    assert {AtomState.PENDING: 1}["PENDING"] == 1


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (FlowState.PENDING, FlowState.RUNNING),
        (FlowState.RUNNING, FlowState.SUCCESS),
        (FlowState.RUNNING, FlowState.REVERTED),
        (FlowState.REVERTED, FlowState.PENDING),
        (FlowState.SUSPENDING, FlowState.SUSPENDED),
        (FlowState.SUSPENDED, FlowState.RUNNING),
    ],
)
def test_allowed_flow_transitions(old, new):
    assert check_flow_transition(old, new) is True


def test_same_state_is_a_no_op():
    assert check_flow_transition(FlowState.RUNNING, FlowState.RUNNING) is False
    assert check_atom_transition(AtomState.SUCCESS, AtomState.SUCCESS) is False


def test_illegal_transitions_raise_naming_both_states():
    with pytest.raises(InvalidStateError, match="PENDING to SUCCESS"):
        check_flow_transition(FlowState.PENDING, FlowState.SUCCESS)
    with pytest.raises(InvalidStateError, match="task cannot go from PENDING to REVERTING"):
        check_atom_transition(AtomState.PENDING, AtomState.REVERTING)


def test_retrying_is_only_for_retries():
    assert check_atom_transition(AtomState.SUCCESS, AtomState.RETRYING, retry=True)
    with pytest.raises(InvalidStateError):
        check_atom_transition(AtomState.SUCCESS, AtomState.RETRYING)


def test_the_engine_refuses_an_illegal_atom_transition_with_the_tables_error():
    import tideflow
    from tideflow import LinearFlow, Task

    class T(Task):
        def execute(self):
            return 1

    engine = tideflow.load(LinearFlow("f").add(T("a")))
    engine.prepare()
    detail = engine.storage.details[engine.compilation.index["a"]]
    with pytest.raises(InvalidStateError, match="atom 'a' cannot go from PENDING to REVERTED"):
        engine._atom_state(detail, AtomState.REVERTED)
