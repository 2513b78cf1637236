"""Notifier: registration rules and delivery."""

import logging
from collections.abc import Callable

import pytest

from tideflow import Notifier, RestrictedNotifier


def test_any_listeners_hear_everything_first():
    heard = []
    notifier = Notifier()
    notifier.register("x", lambda e, details: heard.append(("x", e, details)))
    notifier.register(Notifier.ANY, lambda e, details: heard.append(("*", e, details)))
    notifier.notify("x", {"k": 1})
    notifier.notify("y", {"k": 2})
    assert heard == [("*", "x", {"k": 1}), ("x", "x", {"k": 1}), ("*", "y", {"k": 2})]


def test_bound_args_and_kwargs_and_filters():
    heard = []

    def callback(event, tag, details, extra):
        heard.append((event, tag, details["n"], extra))

    notifier = Notifier()
    notifier.register(
        "e", callback, args=["t"], kwargs={"extra": 9}, details_filter=lambda d: d["n"] > 1
    )
    notifier.notify("e", {"n": 1})
    notifier.notify("e", {"n": 2})
    assert heard == [("e", "t", 2, 9)]


def test_register_rules():
    notifier = Notifier()

    def cb(event, details):
        return None

    notifier.register("e", cb)
    with pytest.raises(ValueError, match="already registered"):
        notifier.register("e", cb)
    with pytest.raises(ValueError, match="callable"):
        notifier.register("e", "nope")  # type: ignore[arg-type]
    assert notifier.is_registered("e", cb)
    assert notifier.deregister("e", cb) is True
    assert notifier.deregister("e", cb) is False
    assert len(notifier) == 0


def test_wants_reports_whether_details_are_worth_building():
    notifier = Notifier()
    assert not notifier.wants("SUCCESS")
    notifier.register("SUCCESS", lambda e, details: None)
    assert notifier.wants("SUCCESS")
    assert not notifier.wants("RUNNING")
    notifier.register("*", lambda e, details: None)
    assert notifier.wants("RUNNING")


def test_a_raising_listener_is_logged_and_the_others_still_hear(caplog):
    heard = []
    notifier = Notifier()

    def bad(event, details):
        raise RuntimeError("listener bug")

    notifier.register("e", bad)
    notifier.register("e", lambda e, details: heard.append(e))
    with caplog.at_level(logging.ERROR, logger="tideflow.notifier"):
        notifier.notify("e", {})
    assert heard == ["e"]
    assert "listener bug" in caplog.text


def test_restricted_notifier_only_takes_declared_events():
    notifier = RestrictedNotifier(["update_progress"])
    notifier.register("update_progress", lambda e, details: None)
    notifier.register("*", lambda e, details: None)
    with pytest.raises(ValueError, match="not one this notifier reports"):
        notifier.register("custom", lambda e, details: None)
    closed = RestrictedNotifier(["a"], allow_any=False)
    with pytest.raises(
        ValueError,
        match=r"event '\*' is not one this notifier reports; register for one of \['a'\]",
    ):
        closed.register("*", lambda e, details: None)


def test_many_registrations_are_kept_in_order_and_removed_by_key() -> None:
    # registrations are keyed by (callback, filter): adding, checking and removing one
    # does not scan the others (10,000 listeners used to cost 630 µs per register)
    notifier = Notifier()
    heard: list[int] = []

    def hears(i: int) -> Callable[[str, object], None]:
        return lambda event, details: heard.append(i)

    callbacks = [hears(i) for i in range(2000)]
    for callback in callbacks:
        notifier.register("x", callback)
    notifier.notify("x", {})
    assert heard == list(range(2000))
    for callback in callbacks[::2]:
        assert notifier.deregister("x", callback)
    heard.clear()
    notifier.notify("x", {})
    assert heard == list(range(1, 2000, 2))
    assert len(notifier) == 1000


def test_an_unhashable_callback_is_found_by_comparison() -> None:
    class Unhashable:
        __hash__ = None  # type: ignore[assignment]

        def __call__(self, event: str, details: object) -> None:
            pass

    first, second = Unhashable(), Unhashable()
    notifier = Notifier()
    notifier.register("x", first)
    notifier.register("x", second)
    with pytest.raises(ValueError, match="already registered"):
        notifier.register("x", second)
    assert notifier.deregister("x", first)
    assert not notifier.is_registered("x", first)
    assert notifier.is_registered("x", second)


def test_a_closed_notifier_does_not_suggest_the_any_event_it_refuses() -> None:
    closed = RestrictedNotifier(["a"], allow_any=False)
    with pytest.raises(ValueError, match=r"event '\*' is not one this notifier reports") as info:
        closed.register("*", lambda e, details: None)
    assert "or '*'" not in str(info.value)
