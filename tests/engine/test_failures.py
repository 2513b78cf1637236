"""Failures: what run() raises, and Failure as data (notes §1f, §7)."""

from __future__ import annotations

import pickle

import pytest

import tideflow
from tideflow import Failure, LinearFlow, UnorderedFlow, WrappedFailure


class DiskGone(OSError):
    pass


def boom():
    raise OSError("disk gone")


def captured(fn):
    try:
        fn()
    except Exception:
        return Failure()
    raise AssertionError("fn did not raise")


# -- what run() raises ----------------------------------------------------------------


@pytest.mark.local_only(
    "asserts run() raises the very exception object the task raised (a worker sends back a copy)"
)
def test_one_failure_reraises_the_original_exception(load, make):
    error = DiskGone("gone")
    engine = load(LinearFlow("f").add(make("a"), make("b", fail=error)))
    with pytest.raises(DiskGone, match=r"^gone$") as raised:
        engine.run()
    assert raised.value is error
    failure = engine.storage.get_failures()["b"]
    assert failure.exception is error
    assert failure.check(OSError) is OSError
    assert "in execute" in failure.traceback_str


def test_two_concurrent_failures_raise_a_wrapped_failure(load, make, journal, states):
    flow = UnorderedFlow("u").add(
        make("c1", fail=OSError("boom-c1")),
        make("d2", fail=ValueError("bad-d2")),
        make("a3"),
    )
    engine = load(flow)
    with pytest.raises(
        WrappedFailure, match=r"(?=.*Failure: OSError: boom-c1)(?=.*Failure: ValueError: bad-d2)"
    ) as raised:
        engine.run()
    wrapped = raised.value
    assert not isinstance(wrapped, tideflow.TideflowError)
    assert len(wrapped) == 2
    failures = list(wrapped)
    assert all(isinstance(f, Failure) for f in failures)
    assert sorted(str(f) for f in failures) == [
        "Failure: OSError: boom-c1",
        "Failure: ValueError: bad-d2",
    ]
    assert str(wrapped) == f"WrappedFailure: [{failures[0]}, {failures[1]}]"
    assert wrapped.check(ValueError) is ValueError
    assert wrapped.check("OSError") == "OSError"
    assert wrapped.check(KeyError) is None
    assert sorted(journal.reverted()) == ["a3", "c1", "d2"]
    assert engine.storage.get_flow_state() == "REVERTED"
    assert states(engine, ["c1", "d2", "a3"]) == dict.fromkeys(["c1", "d2", "a3"], "REVERTED")
    assert set(engine.storage.get_failures()) == {"c1", "d2"}


def test_base_exceptions_are_not_captured(load, make, states):
    # an interrupt propagates instead of being turned into a revert
    engine = load(LinearFlow("f").add(make("a", fail=KeyboardInterrupt("interrupted in a"))))
    with pytest.raises(KeyboardInterrupt, match="interrupted in a"):
        engine.run()
    # the run is left as a crash leaves it: still RUNNING, so it is resumed like one
    assert engine.storage.get_flow_state() == "RUNNING"
    assert engine.storage.flow_meta["stopped_by"] == {
        "type": "KeyboardInterrupt",
        "message": "interrupted in a",
    }


# -- Failure as data ------------------------------------------------------------------


def test_failure_describes_the_exception():
    failure = captured(boom)
    assert str(failure) == "Failure: OSError: disk gone"
    assert failure.exception_str == "disk gone"
    assert isinstance(failure.exception, OSError)
    assert failure.exception_args == ("disk gone",)
    assert list(failure) == ["OSError", "Exception"]
    assert failure.exc_info[0] is OSError
    assert failure.exc_info[1] is failure.exception
    assert "boom" in failure.traceback_str
    assert 'raise OSError("disk gone")' in failure.traceback_str
    assert not failure.traceback_str.startswith("Traceback")
    assert failure.causes == ()
    assert failure.pformat() == "Failure: OSError: disk gone"
    assert failure.pformat(traceback=True).startswith(
        "Failure: OSError: disk gone\nTraceback (most recent call last):\n"
    )


def test_failure_type_names_of_a_user_exception():
    class MyErr(ValueError):
        pass

    def raise_it():
        raise MyErr("m")

    failure = captured(raise_it)
    qualified = f"{MyErr.__module__}.{MyErr.__qualname__}"
    assert list(failure) == [qualified, "ValueError", "Exception"]
    assert str(failure) == f"Failure: {qualified}: m"
    assert failure.check(MyErr) is MyErr
    assert failure.check("MyErr") is None
    assert failure.check(qualified) == qualified


def test_failure_check():
    failure = captured(boom)
    assert failure.check(OSError) is OSError
    assert failure.check(IOError) is OSError
    assert failure.check("OSError") == "OSError"
    assert failure.check(Exception) is Exception
    assert failure.check(KeyError) is None
    assert failure.check(KeyError, "builtins.OSError") is None
    assert failure.check(KeyError, OSError) is OSError


def test_exception_str_of_odd_exceptions():
    assert Failure.from_exception(KeyError("k")).exception_str == "'k'"
    assert str(Failure.from_exception(KeyError())) == "Failure: KeyError: "


def test_reraise_raises_the_original_object():
    failure = captured(boom)
    with pytest.raises(OSError, match=r"^disk gone$") as raised:
        failure.reraise()
    assert raised.value is failure.exception


def test_to_dict_from_dict_round_trip():
    failure = captured(boom)
    data = failure.to_dict()
    assert set(data) == {
        "causes",
        "exc_args",
        "exc_type_names",
        "exception_str",
        "traceback_str",
        "version",
    }
    assert list(data["exc_type_names"]) == ["OSError", "Exception"]
    assert data["exception_str"] == "disk gone"
    assert tuple(data["exc_args"]) == ("disk gone",)
    assert data["causes"] == []
    assert data["version"] == 1
    assert tuple(failure.to_dict(include_args=False)["exc_args"]) == ()

    again = Failure.from_dict(data)
    assert str(again) == str(failure)
    assert again.exception is None
    assert again.exc_info is None
    assert again.traceback_str == failure.traceback_str
    assert again.matches(failure)
    assert failure.matches(again)
    assert again.check(OSError) is OSError
    assert list(again) == ["OSError", "Exception"]
    with pytest.raises(
        WrappedFailure, match=r"^WrappedFailure: \[Failure: OSError: disk gone\]$"
    ) as raised:
        again.reraise()
    assert str(raised.value) == "WrappedFailure: [Failure: OSError: disk gone]"


def test_pickle_round_trip():
    failure = captured(boom)
    again = pickle.loads(pickle.dumps(failure))
    assert again.matches(failure)
    assert str(again) == "Failure: OSError: disk gone"
    assert again.exception is None
    assert again.check("OSError") == "OSError"


def test_causes_are_kept():
    def chained():
        try:
            raise KeyError("inner")
        except KeyError as exc:
            raise RuntimeError("outer") from exc

    failure = captured(chained)
    assert str(failure) == "Failure: RuntimeError: outer"
    assert len(failure.causes) == 1
    assert failure.causes[0].check(KeyError) is KeyError
    again = Failure.from_dict(failure.to_dict())
    assert len(again.causes) == 1
    assert str(again.causes[0]) == "Failure: KeyError: 'inner'"


def test_kwargs_form_and_from_exception():
    failure = Failure(exception_str="es", traceback_str="tb", exc_type_names=["X", "Exception"])
    assert str(failure) == "Failure: X: es"
    failure = Failure.from_exception(ValueError("v"))
    assert str(failure) == "Failure: ValueError: v"
    assert failure.traceback_str == ""
    assert failure.exc_info[0] is ValueError


def test_failure_outside_an_except_block_or_of_an_interrupt():
    with pytest.raises(TypeError, match=r"while handling an exception"):
        Failure()
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        with pytest.raises(TypeError, match=r"interrupts and exits must propagate"):
            Failure()


def test_failure_is_unhashable_and_copies_match():
    failure = captured(boom)
    with pytest.raises(TypeError, match=r"unhashable type: 'Failure'"):
        hash(failure)
    assert failure.copy().matches(failure)


def test_reraise_if_any():
    assert Failure.reraise_if_any([]) is None
    one = captured(boom)
    with pytest.raises(OSError, match=r"^disk gone$"):
        Failure.reraise_if_any([one])
    two = Failure.from_exception(ValueError("v"))
    with pytest.raises(
        WrappedFailure, match=r"OSError: disk gone, Failure: ValueError: v\]"
    ) as raised:
        Failure.reraise_if_any([one, two])
    assert list(raised.value) == [one, two]
    assert str(raised.value) == (
        "WrappedFailure: [Failure: OSError: disk gone, Failure: ValueError: v]"
    )


def test_engine_failures_serialise(load, make):
    engine = load(LinearFlow("f").add(make("a", fail=ValueError("bad value"))))
    with pytest.raises(ValueError, match="bad value"):
        engine.run()
    failure = engine.storage.get_failures()["a"]
    again = Failure.from_dict(failure.to_dict())
    assert again.matches(failure)
    assert pickle.loads(pickle.dumps(failure)).matches(failure)
