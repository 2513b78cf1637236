"""Failure and WrappedFailure: exceptions captured as data."""

import pickle

import pytest

from tideflow import Failure, WrappedFailure


class DiskGone(OSError):
    pass


def _raise(exc: BaseException) -> Failure:
    try:
        raise exc
    except BaseException:
        return Failure()


def test_captures_type_names_message_and_traceback():
    failure = _raise(DiskGone("disk gone"))
    assert failure.exc_type_names == (f"{__name__}.DiskGone", "OSError", "Exception")
    assert failure.exception_str == "disk gone"
    assert "raise exc" in failure.traceback_str
    assert str(failure) == f"Failure: {__name__}.DiskGone: disk gone"
    assert list(failure) == list(failure.exc_type_names)


def test_check_accepts_classes_and_names():
    failure = _raise(DiskGone("x"))
    assert failure.check(KeyError, OSError) is OSError
    assert failure.check("OSError") == "OSError"
    assert failure.check(KeyError) is None


def test_reraise_raises_the_original_exception_object():
    exc = ValueError("v")
    failure = _raise(exc)
    with pytest.raises(ValueError, match=r"^v$") as info:
        failure.reraise()
    assert info.value is exc


def test_round_trip_through_dict_and_pickle_keeps_what_matters():
    failure = _raise(RuntimeError("outer"))
    for copy in (Failure.from_dict(failure.to_dict()), pickle.loads(pickle.dumps(failure))):
        assert copy.matches(failure)
        assert copy.exception is None
        with pytest.raises(WrappedFailure, match="RuntimeError: outer"):
            copy.reraise()


def test_causes_are_captured():
    try:
        try:
            raise KeyError("inner")
        except KeyError as inner:
            raise RuntimeError("outer") from inner
    except RuntimeError as exc:
        failure = Failure.from_exception(exc)
    assert [c.exc_type_names[0] for c in failure.causes] == ["KeyError"]
    assert failure.to_dict()["causes"][0]["exception_str"] == "'inner'"


def test_interrupts_are_not_failures():
    with pytest.raises(TypeError, match="interrupts and exits must propagate"):
        Failure.from_exception(KeyboardInterrupt())


def test_failure_needs_an_exception_being_handled():
    with pytest.raises(TypeError, match="while handling an exception"):
        Failure()


def test_reraise_if_any():
    assert Failure.reraise_if_any([]) is None
    one = _raise(ValueError("a"))
    with pytest.raises(ValueError, match="a"):
        Failure.reraise_if_any([one])
    two = _raise(KeyError("b"))
    with pytest.raises(WrappedFailure, match=r"ValueError: a, Failure: KeyError: 'b'") as info:
        Failure.reraise_if_any([one, two])
    assert len(info.value) == 2
    assert info.value.check(KeyError) is KeyError
    assert str(info.value) == "WrappedFailure: [Failure: ValueError: a, Failure: KeyError: 'b']"


def test_pformat_with_traceback():
    failure = _raise(ValueError("v"))
    text = failure.pformat(traceback=True)
    assert text.startswith("Failure: ValueError: v\nTraceback (most recent call last):\n")


# -- matches() and == compare every field they name -----------------------------------


def _recorded(**changes) -> Failure:
    """A failure as a store gives it back; ``changes`` replace single fields."""
    fields = {
        "exc_type_names": ["mod.DiskGone", "OSError", "Exception"],
        "exception_str": "disk gone",
        "traceback_str": 'File "x.py", line 1, in f\n',
        "exc_args": ["disk gone"],
        "causes": [Failure(exc_type_names=["KeyError", "Exception"], exception_str="'k'")],
    }
    fields.update(changes)
    return Failure(**fields)


def test_equal_fields_match_and_compare_equal():
    assert _recorded().matches(_recorded())
    assert _recorded() == _recorded()


@pytest.mark.parametrize(
    "change",
    [
        {"exc_type_names": ["mod.Other", "OSError", "Exception"]},  # most derived type
        {"exc_type_names": ["mod.DiskGone", "Exception"]},  # a base left out
        {"exception_str": "disk full"},
        {"traceback_str": 'File "y.py", line 2, in g\n'},
        {"traceback_str": ""},
    ],
    ids=["type", "bases", "message", "traceback", "no-traceback"],
)
def test_matches_compares_type_names_message_and_traceback(change):
    one, other = _recorded(), _recorded(**change)
    assert not one.matches(other)
    assert not other.matches(one)
    assert one != other


def test_matches_leaves_out_causes_and_equality_compares_them():
    other = _recorded(causes=[Failure(exc_type_names=["ValueError", "Exception"])])
    assert _recorded().matches(other)  # the docstring's three fields agree
    assert _recorded() != other
    assert _recorded() != _recorded(causes=[])


def test_a_live_failure_matches_its_recorded_copy():
    # the exception object itself is not compared: a failure read back from a store has
    # none, and still describes the same failure
    live = _raise(DiskGone("disk gone"))
    copy = Failure.from_dict(live.to_dict())
    assert copy.exception is None
    assert live.matches(copy)
    assert live == copy


def test_a_failure_matches_only_failures():
    failure = _recorded()
    assert not failure.matches("Failure: mod.DiskGone: disk gone")
    assert not failure.matches(None)
    assert failure != "Failure: mod.DiskGone: disk gone"
