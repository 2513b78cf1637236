"""Running a flow again after its revert failed retries the revert; it never re-executes."""

import pytest

import tideflow
from tideflow import LinearFlow, Task


class Flaky:
    """Shared switch: whether b's revert still raises."""

    broken = True


class A(Task):
    calls = 0

    def execute(self):
        A.calls += 1
        return "a"

    def revert(self, **kwargs):
        return "a undone"


class B(Task):
    def execute(self):
        return "b"

    def revert(self, **kwargs):
        if Flaky.broken:
            raise ValueError("revert broke")
        return "b undone"


class C(Task):
    def execute(self):
        raise OSError("boom")


def test_rerun_retries_the_failed_revert_then_finishes_reverting():
    Flaky.broken = True
    A.calls = 0
    engine = tideflow.load(LinearFlow("f").add(A("a"), B("b"), C("c")))
    with pytest.raises(ValueError, match="revert broke"):
        engine.run()
    assert str(engine.storage.get_flow_state()) == "FAILURE"
    assert str(engine.storage.get_atom_state("a")) == "SUCCESS"  # never reverted
    assert str(engine.storage.get_atom_state("b")) == "REVERT_FAILURE"

    # still broken: the retry fails the same way and nothing is executed again
    with pytest.raises(ValueError, match="revert broke"):
        engine.run()
    assert A.calls == 1

    Flaky.broken = False
    with pytest.raises(OSError, match="boom"):
        engine.run()
    assert A.calls == 1
    assert str(engine.storage.get_flow_state()) == "REVERTED"
    assert engine.storage.get_revert_result("b") == "b undone"
    assert engine.storage.get_revert_result("a") == "a undone"
    assert engine.storage.get_revert_failures() == {}
