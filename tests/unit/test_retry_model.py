"""The retry model on its own: decisions, history, the controllers' rules, back-off policies."""

from __future__ import annotations

import random

import pytest

import tideflow
from tideflow import retry
from tideflow.errors import NotFoundError
from tideflow.failure import Failure


def failure(exc: Exception) -> Failure:
    try:
        raise exc
    except Exception as caught:
        return Failure.from_exception(caught)


KEY = failure(KeyError("k"))
IO = failure(OSError("io"))
VALUE = failure(ValueError("v"))


def history(*entries, own=None):
    return retry.History([(p, dict(f)) for p, f in entries], own)


# -- decisions -------------------------------------------------------------------------


def test_decisions_are_taskflows_strings():
    assert [d.value for d in retry.Decision] == ["REVERT", "REVERT_ALL", "RETRY"]
    assert retry.RETRY is retry.Decision.RETRY
    assert retry.REVERT == "REVERT"
    assert retry.REVERT_ALL == "REVERT_ALL"
    assert retry.EXECUTE_REVERT_HISTORY == "history"
    assert retry.REVERT_FLOW_FAILURES == "flow_failures"


# -- history ---------------------------------------------------------------------------


def test_history_reads_attempts_in_order():
    h = history((1, {"a": KEY}), (2, {"a": IO, "b": VALUE}), (3, {}))
    assert len(h) == 3
    assert list(h) == [(1, {"a": KEY}), (2, {"a": IO, "b": VALUE}), (3, {})]
    assert h[1] == (2, {"a": IO, "b": VALUE})
    assert h[-1] == (3, {})
    assert list(h.provided_iter()) == [1, 2, 3]
    assert list(h.outcomes_iter()) == [("a", KEY), ("a", IO), ("b", VALUE)]
    assert list(h.outcomes_iter(index=1)) == [("a", IO), ("b", VALUE)]
    assert list(h.outcomes_iter(index=2)) == []
    assert h.failure is None


def test_history_caused_by_matches_subclasses_names_and_attempts():
    h = history((1, {"a": KEY}), (2, {"b": IO}))
    assert h.caused_by(KeyError)
    assert h.caused_by(LookupError)  # KeyError is a LookupError
    assert h.caused_by("OSError")
    assert not h.caused_by(ValueError)
    assert h.caused_by(KeyError, index=0)
    assert not h.caused_by(KeyError, index=1)


def test_history_counts_the_controllers_own_failure_only_when_asked():
    h = history(own=VALUE)
    assert h.failure is VALUE
    assert len(h) == 0
    assert not h.caused_by(ValueError)
    assert h.caused_by(ValueError, include_retry=True)
    assert not h.caused_by(KeyError, include_retry=True)


# -- controllers -----------------------------------------------------------------------


def test_times_provides_the_attempt_number_and_gives_up_after_its_attempts():
    times = retry.Times(3, name="r", provides="attempt")
    assert times.provides == {"attempt"}
    assert times.requires == frozenset()  # history is the engine's to give
    assert times.execute(history()) == 1
    assert times.execute(history((1, {"a": KEY}))) == 2
    assert times.on_failure(history((1, {"a": KEY}))) is retry.RETRY
    assert times.on_failure(history((1, {"a": KEY}), (2, {"a": KEY}))) is retry.RETRY
    three = history((1, {"a": KEY}), (2, {"a": KEY}), (3, {"a": KEY}))
    assert times.on_failure(three) is retry.REVERT
    assert retry.Times(3, revert_all=True).on_failure(three) is retry.REVERT_ALL
    assert retry.Times().on_failure(history((1, {"a": KEY}))) is retry.REVERT


def test_times_keeps_taskflows_positional_order():
    times = retry.Times(2, "name", "prov", None, True, None, True)
    assert (times.name, times.provides, times.attempts) == ("name", {"prov"}, 2)
    assert times.on_failure(history((1, {}), (2, {}))) is retry.REVERT_ALL
    with pytest.raises(TypeError, match="'r': attempts must be an int"):
        retry.Times("3", name="r")


def test_for_each_tries_each_value_once_repeats_included():
    each = retry.ForEach([1, 2, 1, 3], name="r", provides="v")
    h = history()
    seen = []
    for _ in range(4):
        value = each.execute(h)
        seen.append(value)
        h = history(*[(v, {"c": KEY}) for v in seen])
        decision = each.on_failure(h)
        assert decision is (retry.RETRY if len(seen) < 4 else retry.REVERT)
    assert seen == [1, 2, 1, 3]
    with pytest.raises(NotFoundError, match="retry 'r' has no values left"):
        each.execute(h)


def test_for_each_gives_up_as_told_and_refuses_a_non_collection():
    each = retry.ForEach(["x"], name="r", revert_all=True)
    assert each.on_failure(history(("x", {"c": KEY}))) is retry.REVERT_ALL
    with pytest.raises(TypeError, match="'r': values must be a collection"):
        retry.ForEach("abc", name="r")
    with pytest.raises(NotFoundError, match="'e' has no values left"):
        retry.ForEach([], name="e").execute(history())


def test_parameterized_for_each_takes_its_values_from_the_run():
    each = retry.ParameterizedForEach(name="r", provides="v")
    assert each.requires == {"values"}
    renamed = retry.ParameterizedForEach(name="r2", rebind={"values": "choices"})
    assert renamed.requires == {"choices"}
    assert each.execute(values=(5, 3), history=history((5, {"c": KEY}))) == 3
    assert each.on_failure(values=(5, 3), history=history((5, {"c": KEY}))) is retry.RETRY
    done = history((5, {"c": KEY}), (3, {"c": KEY}))
    assert each.on_failure(values=(5, 3), history=done) is retry.REVERT


def test_always_revert_and_always_revert_all():
    assert retry.AlwaysRevert("a").execute(history()) is None
    assert retry.AlwaysRevert("a").on_failure(history((None, {"b": KEY}))) is retry.REVERT
    assert retry.AlwaysRevertAll("a").execute(history()) is None
    assert retry.AlwaysRevertAll("a").on_failure(history()) is retry.REVERT_ALL


def test_a_custom_controller_must_say_how_it_decides_and_what_it_runs():
    class NoDecision(retry.Retry):
        def execute(self, history):
            return None

    class NoExecute(retry.Retry):
        def on_failure(self, history):
            return retry.RETRY

    with pytest.raises(TypeError, match="NoDecision has no on_failure"):
        NoDecision()
    with pytest.raises(TypeError, match="NoExecute has no execute"):
        NoExecute()


def test_a_custom_controller_maps_its_own_arguments_but_never_history():
    class Custom(retry.Retry):
        default_provides = "mode"

        def execute(self, history, budget, extra=None):
            return budget - len(history)

        def on_failure(self, history, budget, extra=None):
            return retry.RETRY

    custom = Custom(rebind={"budget": "money"})
    assert custom.requires == {"money"}
    assert custom.optional == {"extra"}
    assert custom.provides == {"mode"}
    assert custom.name.endswith("Custom")


# -- deciding: on_failure, retry_on, bad answers ----------------------------------------


def test_decide_asks_on_failure_and_accepts_its_strings():
    class Says(retry.Retry):
        def __init__(self, answer, **kwargs):
            super().__init__(**kwargs)
            self.answer = answer

        def execute(self, history):
            return None

        def on_failure(self, history, **kwargs):
            self.seen = (len(history), kwargs)
            return self.answer

    says = Says("RETRY", name="s")
    assert says.decide(history((None, {"a": KEY})), KEY, {"x": 1}) is retry.RETRY
    assert says.seen == (1, {"x": 1})
    with pytest.raises(ValueError, match=r"retry 'm': on_failure\(\) returned 'MAYBE'"):
        Says("MAYBE", name="m").decide(history(), KEY, {})


def test_retry_on_gives_up_at_once_on_other_exception_types():
    times = retry.Times(5, name="r", retry_on=(KeyError, OSError))
    assert times.retry_on == (KeyError, OSError)
    assert times.decide(history((1, {"a": KEY})), KEY, {}) is retry.RETRY
    assert times.decide(history((1, {"a": IO})), IO, {}) is retry.RETRY
    assert times.decide(history((1, {"a": VALUE})), VALUE, {}) is retry.REVERT
    strict = retry.Times(5, name="r", revert_all=True, retry_on=KeyError)
    assert strict.decide(history((1, {"a": VALUE})), VALUE, {}) is retry.REVERT_ALL
    with pytest.raises(TypeError, match="'r': retry_on= takes exception classes"):
        retry.Times(2, name="r", retry_on="KeyError")
    with pytest.raises(ValueError, match="'r': retry_on= is empty"):
        retry.Times(2, name="r", retry_on=())


# -- back-off --------------------------------------------------------------------------


def test_without_a_backoff_there_is_no_delay():
    assert retry.Times(3).delay(2) == 0.0


def test_fixed_backoff():
    times = retry.Times(3, backoff=retry.FixedBackoff(0.5))
    assert [times.delay(n) for n in (2, 3, 4)] == [0.5, 0.5, 0.5]
    with pytest.raises(ValueError, match=r"FixedBackoff\(seconds\) must be a number of seconds"):
        retry.FixedBackoff(-1)


def test_exponential_backoff_grows_and_stops_at_its_cap():
    backoff = retry.ExponentialBackoff(initial=0.1, multiplier=3, cap=1.0)
    assert [round(backoff.delay(n), 6) for n in (2, 3, 4, 5, 6)] == [0.1, 0.3, 0.9, 1.0, 1.0]
    assert retry.ExponentialBackoff(cap=5).delay(10_000) == 5.0  # no overflow


def test_exponential_backoff_jitter_stays_within_its_fraction():
    rng = random.Random(7)
    backoff = retry.ExponentialBackoff(
        initial=1.0, multiplier=2, cap=8, jitter=0.5, random=rng.random
    )
    for attempt in range(2, 12):
        full = min(8.0, 2.0 ** (attempt - 2))
        assert full / 2 <= backoff.delay(attempt) <= full
    first = retry.ExponentialBackoff(1.0, 2, 8, 0.5, random.Random(3).random)
    second = retry.ExponentialBackoff(1.0, 2, 8, 0.5, random.Random(3).random)
    drawn = [first.delay(n) for n in range(2, 12)]
    assert drawn == [second.delay(n) for n in range(2, 12)]  # a seeded policy repeats
    assert len(set(drawn)) == len(drawn)  # and does draw


def test_backoffs_add_up_and_refuse_bad_settings():
    both = retry.FixedBackoff(1) + retry.ExponentialBackoff(initial=0.5, cap=10)
    assert [both.delay(n) for n in (2, 3, 4)] == [1.5, 2.0, 3.0]
    assert "FixedBackoff(1.0)" in repr(both)
    with pytest.raises(ValueError, match="multiplier"):
        retry.ExponentialBackoff(multiplier=0.5)
    with pytest.raises(ValueError, match="jitter"):
        retry.ExponentialBackoff(jitter=2)
    with pytest.raises(TypeError, match=r"backoff= takes a tideflow\.retry\.Backoff"):
        retry.Times(2, backoff=0.5)


# -- where the names live --------------------------------------------------------------


def test_public_names_and_taskflow_names_are_the_same_objects():
    import taskflow.retry as tf_retry

    for name in tf_retry.__all__:
        assert getattr(tf_retry, name) is getattr(retry, name)
    assert tideflow.Times is retry.Times
    assert tideflow.Decision is retry.Decision
    assert issubclass(tideflow.Retry, tideflow.Atom)
