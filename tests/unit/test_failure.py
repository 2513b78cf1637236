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
    with pytest.raises(ValueError) as info:
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
    with pytest.raises(WrappedFailure) as info:
        Failure.reraise_if_any([one, two])
    assert len(info.value) == 2
    assert info.value.check(KeyError) is KeyError
    assert str(info.value) == "WrappedFailure: [Failure: ValueError: a, Failure: KeyError: 'b']"


def test_pformat_with_traceback():
    failure = _raise(ValueError("v"))
    text = failure.pformat(traceback=True)
    assert text.startswith("Failure: ValueError: v\nTraceback (most recent call last):\n")
