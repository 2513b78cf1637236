"""Ready-made listeners over a real engine: exact lines, captured sequences, durations, logs."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

import tideflow
import tideflow.listeners
from tideflow import Engine, Failure, LinearFlow, Task
from tideflow.listeners import (
    CaptureListener,
    DumpingListener,
    DurationListener,
    DynamicLoggingListener,
    EventTimeListener,
    Listener,
    LoggingListener,
    PrintingDurationListener,
    PrintingListener,
    TimingListener,
)
from tideflow.listeners.base import failure_text

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ABSENT = "<absent>"
LOGGER = "tideflow.listeners.logging"

#: ``tideflow.load`` for the engine kind under test (the ``load`` fixture of conftest.py).
Loader = Callable[..., Engine]


# -- flows ------------------------------------------------------------------------------


class Named(Task):
    """Returns ``'<name>-res'``."""

    def execute(self) -> str:
        return f"{self.name}-res"


class Boom(Task):
    """Raises ``OSError('boom')``."""

    def execute(self) -> None:
        raise OSError("boom")


class BadRevert(Task):
    """Succeeds, but its revert raises ``ValueError('revert-boom')``."""

    def execute(self) -> int:
        return 1

    def revert(self, *args: Any, **kwargs: Any) -> None:
        raise ValueError("revert-boom")


def two_tasks(fail: bool = False) -> LinearFlow:
    """Linear ``f``: t1 (provides x) then t2 (raises OSError when ``fail``)."""
    second = Boom("t2") if fail else Named("t2")
    return LinearFlow("f").add(Named("t1", provides="x"), second)


def abc_flow() -> LinearFlow:
    """Linear ``f``: a, b, then c raising OSError (notes §1b)."""
    return LinearFlow("f").add(Named("a"), Named("b"), Boom("c"))


def run_quietly(engine: Engine) -> BaseException | None:
    """Run ``engine``; return what it raised, if anything."""
    try:
        engine.run()
    except Exception as exc:
        return exc
    return None


def normalise(text: str, engine: Engine) -> str:
    """Replace the engine's repr and every uuid with fixed placeholders."""
    return UUID_RE.sub("UUID", text.replace(repr(engine), "<ENGINE>"))


def summary(values: list[tuple[str, str, dict[str, Any]]]) -> list[tuple[Any, ...]]:
    """``(kind, name, old_state, state, result)`` per captured event; Failures as text."""
    out: list[tuple[Any, ...]] = []
    for kind, state, details in values:
        name = details.get("flow_name") or details.get("task_name") or details.get("retry_name")
        result = details.get("result", ABSENT)
        if isinstance(result, Failure):
            result = str(result)
        out.append((kind, name, details.get("old_state"), state, result))
    return out


# -- base: registration, hooks, routing -------------------------------------------------


class HookRecorder(Listener):
    """Records every hook call."""

    def __init__(self, engine: Engine, **kwargs: Any) -> None:
        super().__init__(engine, **kwargs)
        self.calls: list[tuple[str, str]] = []

    def _flow_receiver(self, state: str, details: Mapping[str, Any]) -> None:
        self.calls.append(("flow", state))

    def _task_receiver(self, state: str, details: Mapping[str, Any]) -> None:
        self.calls.append(("task", state))

    def _retry_receiver(self, state: str, details: Mapping[str, Any]) -> None:
        self.calls.append(("retry", state))


def test_register_twice_delivers_once_and_deregister_twice_is_fine() -> None:
    engine = tideflow.load(two_tasks())
    listener = HookRecorder(engine)
    listener.register()
    listener.register()
    assert len(engine.notifier) == 1
    assert len(engine.atom_notifier) == 1
    engine.run()
    assert listener.calls == [
        ("flow", "RUNNING"),
        ("task", "RUNNING"),
        ("task", "SUCCESS"),
        ("task", "RUNNING"),
        ("task", "SUCCESS"),
        ("flow", "SUCCESS"),
    ]
    listener.deregister()
    listener.deregister()
    assert len(engine.notifier) == 0
    assert len(engine.atom_notifier) == 0
    listener.calls.clear()
    engine.reset()
    engine.run()
    assert listener.calls == []


def test_register_again_after_deregister() -> None:
    engine = tideflow.load(two_tasks())
    listener = HookRecorder(engine, task_listen_for=(), retry_listen_for=())
    listener.register()
    listener.deregister()
    listener.register()
    engine.run()
    assert listener.calls == [("flow", "RUNNING"), ("flow", "SUCCESS")]


def test_context_manager_registers_returns_self_and_deregisters() -> None:
    engine = tideflow.load(two_tasks())
    with HookRecorder(engine) as listener:
        assert isinstance(listener, HookRecorder)
        assert len(engine.notifier) == 1
        engine.run()
    assert len(engine.notifier) == 0
    assert len(engine.atom_notifier) == 0
    assert len(listener.calls) == 6


def test_context_manager_deregisters_when_the_run_raises() -> None:
    engine = tideflow.load(two_tasks(fail=True))
    with pytest.raises(OSError, match="boom"), HookRecorder(engine):
        engine.run()
    assert len(engine.notifier) == 0
    assert len(engine.atom_notifier) == 0


def test_hooks_not_overridden_are_not_registered() -> None:
    class TasksOnly(Listener):
        def __init__(self, engine: Engine) -> None:
            super().__init__(engine)
            self.seen: list[str] = []

        def _task_receiver(self, state: str, details: Mapping[str, Any]) -> None:
            self.seen.append(state)

    engine = tideflow.load(two_tasks())
    with TasksOnly(engine) as listener:
        assert len(engine.notifier) == 0
        assert not engine.notifier.wants("RUNNING")
        engine.run()
    assert listener.seen == ["RUNNING", "SUCCESS", "RUNNING", "SUCCESS"]

    plain = Listener(engine)
    plain.register()
    assert len(engine.notifier) == 0
    assert len(engine.atom_notifier) == 0
    plain.deregister()


def test_listen_for_states_registers_only_those() -> None:
    engine = tideflow.load(two_tasks())
    listener = HookRecorder(
        engine, task_listen_for=["SUCCESS"], flow_listen_for="SUCCESS", retry_listen_for=()
    )
    with listener:
        # Details are never built for states nobody asked for.
        assert engine.notifier.wants("SUCCESS")
        assert not engine.notifier.wants("RUNNING")
        assert not engine.atom_notifier.wants("RUNNING")
        engine.run()
    assert listener.calls == [("task", "SUCCESS"), ("task", "SUCCESS"), ("flow", "SUCCESS")]


def test_empty_listen_for_registers_nothing_for_that_kind() -> None:
    engine = tideflow.load(two_tasks())
    with HookRecorder(engine, flow_listen_for=[]) as listener:
        assert len(engine.notifier) == 0
        engine.run()
    assert [c for c in listener.calls if c[0] == "flow"] == []


def test_atom_events_route_by_details_to_task_or_retry() -> None:
    engine = tideflow.load(two_tasks())
    listener = HookRecorder(engine, task_listen_for=["RUNNING"], retry_listen_for=["RETRYING"])
    with listener:
        notify = engine.atom_notifier.notify
        notify("RUNNING", {"task_name": "t", "task_uuid": "u", "old_state": "PENDING"})
        notify("RUNNING", {"retry_name": "r", "retry_uuid": "u", "old_state": "PENDING"})
        notify("RETRYING", {"retry_name": "r", "retry_uuid": "u", "old_state": "SUCCESS"})
    assert listener.calls == [("task", "RUNNING"), ("retry", "RETRYING")]


def test_dumping_listener_is_abstract() -> None:
    engine = tideflow.load(two_tasks())
    with pytest.raises(TypeError, match="abstract"):
        DumpingListener(engine)  # type: ignore[abstract]


def test_a_raising_listener_never_breaks_the_run(
    load: Loader, caplog: pytest.LogCaptureFixture
) -> None:
    class Raising(Listener):
        def _flow_receiver(self, state: str, details: Mapping[str, Any]) -> None:
            raise RuntimeError(f"flow listener broke on {state}")

        def _task_receiver(self, state: str, details: Mapping[str, Any]) -> None:
            raise RuntimeError(f"task listener broke on {state}")

    engine = load(two_tasks())
    caplog.set_level(logging.WARNING)
    with Raising(engine), CaptureListener(engine) as capture:
        engine.run()
    assert engine.storage.get_flow_state() == "SUCCESS"
    assert engine.storage.fetch("x") == "t1-res"
    # The listener registered after the raising one still heard everything.
    assert len(capture.values) == 6
    broken = [r for r in caplog.records if r.exc_info and "broke on" in str(r.exc_info[1])]
    assert len(broken) == 6


# -- PrintingListener ---------------------------------------------------------------------

PRINTED_SUCCESS = """\
<ENGINE> has moved flow 'f' (UUID) into state 'RUNNING' from state 'PENDING'
<ENGINE> has moved task 't1' (UUID) into state 'RUNNING' from state 'PENDING'
<ENGINE> has moved task 't1' (UUID) into state 'SUCCESS' from state 'RUNNING' with result 't1-res' (failure=False)
<ENGINE> has moved task 't2' (UUID) into state 'RUNNING' from state 'PENDING'
<ENGINE> has moved task 't2' (UUID) into state 'SUCCESS' from state 'RUNNING' with result 't2-res' (failure=False)
<ENGINE> has moved flow 'f' (UUID) into state 'SUCCESS' from state 'RUNNING'
"""  # noqa: E501

PRINTED_FAILURE = """\
<ENGINE> has moved flow 'f' (UUID) into state 'RUNNING' from state 'PENDING'
<ENGINE> has moved task 't1' (UUID) into state 'RUNNING' from state 'PENDING'
<ENGINE> has moved task 't1' (UUID) into state 'SUCCESS' from state 'RUNNING' with result 't1-res' (failure=False)
<ENGINE> has moved task 't2' (UUID) into state 'RUNNING' from state 'PENDING'
<ENGINE> has moved task 't2' (UUID) into state 'FAILURE' from state 'RUNNING' with result 'Failure: OSError: boom' (failure=True)
Traceback (most recent call last):
{traceback}OSError: boom
<ENGINE> has moved task 't2' (UUID) into state 'REVERTING' from state 'FAILURE'
<ENGINE> has moved task 't2' (UUID) into state 'REVERTED' from state 'REVERTING' with result 'None' (failure=False)
<ENGINE> has moved task 't1' (UUID) into state 'REVERTING' from state 'SUCCESS'
<ENGINE> has moved task 't1' (UUID) into state 'REVERTED' from state 'REVERTING' with result 'None' (failure=False)
<ENGINE> has moved flow 'f' (UUID) into state 'REVERTED' from state 'RUNNING'
"""  # noqa: E501


def test_printing_listener_success_lines(load: Loader, capsys: pytest.CaptureFixture[str]) -> None:
    engine = load(two_tasks())
    with PrintingListener(engine):
        engine.run()
    out, err = capsys.readouterr()
    assert normalise(out, engine) == PRINTED_SUCCESS
    assert err == ""


def test_printing_listener_failure_lines_with_traceback(
    load: Loader, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = load(two_tasks(fail=True))
    with PrintingListener(engine), CaptureListener(engine, flow_listen_for=()) as capture:
        assert isinstance(run_quietly(engine), OSError)
    failure = next(d["result"] for _, state, d in capture.values if state == "FAILURE")
    assert "in execute" in failure.traceback_str
    out, _ = capsys.readouterr()
    assert normalise(out, engine) == PRINTED_FAILURE.format(
        traceback=normalise(failure.traceback_str, engine)
    )


def test_printing_listener_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    engine = tideflow.load(two_tasks())
    with PrintingListener(engine, stderr=True):
        engine.run()
    out, err = capsys.readouterr()
    assert out == ""
    assert normalise(err, engine) == PRINTED_SUCCESS


def test_printing_listener_filters(capsys: pytest.CaptureFixture[str]) -> None:
    engine = tideflow.load(two_tasks())
    with PrintingListener(engine, task_listen_for=["SUCCESS"], flow_listen_for=[]):
        engine.run()
    lines = normalise(capsys.readouterr().out, engine).splitlines()
    assert lines == [
        "<ENGINE> has moved task 't1' (UUID) into state 'SUCCESS' from state 'RUNNING'"
        " with result 't1-res' (failure=False)",
        "<ENGINE> has moved task 't2' (UUID) into state 'SUCCESS' from state 'RUNNING'"
        " with result 't2-res' (failure=False)",
    ]


def test_printing_listener_revert_failure_line_with_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    flow = LinearFlow("f").add(BadRevert("b"), Boom("c"))
    engine = tideflow.load(flow)
    with PrintingListener(engine, flow_listen_for=()):
        assert isinstance(run_quietly(engine), ValueError)
    out = normalise(capsys.readouterr().out, engine)
    line = (
        "<ENGINE> has moved task 'b' (UUID) into state 'REVERT_FAILURE' from state 'REVERTING'"
        " with result 'Failure: ValueError: revert-boom' (failure=True)\n"
        "Traceback (most recent call last):\n"
    )
    assert line in out
    assert ", in revert\n" in out.split("'REVERT_FAILURE'")[1]
    assert out.endswith("\nValueError: revert-boom\n")


def test_printing_a_failure_without_its_exception_uses_the_recorded_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine = tideflow.load(two_tasks())
    stored = Failure(
        exc_type_names=["mod.Gone", "Exception"],
        exception_str="far away",
        traceback_str='  File "remote.py", line 3, in execute\n    raise Gone("far away")\n',
    )
    listener = PrintingListener(engine)
    listener._task_receiver(
        "FAILURE", {"task_name": "t", "task_uuid": "u", "old_state": "RUNNING", "result": stored}
    )
    assert capsys.readouterr().out == (
        f"{engine!r} has moved task 't' (u) into state 'FAILURE' from state 'RUNNING'"
        " with result 'Failure: mod.Gone: far away' (failure=True)\n"
        "Traceback (most recent call last):\n"
        '  File "remote.py", line 3, in execute\n'
        '    raise Gone("far away")\n'
        "mod.Gone: far away\n"
    )


def test_failure_text_matches_pythons_shape() -> None:
    try:
        raise KeyError()
    except KeyError:
        failure = Failure()
    text = failure_text(failure)
    assert text.startswith("Traceback (most recent call last):\n")
    assert text.endswith("\nKeyError")
    assert failure_text(Failure.from_exception(ValueError("v"))) == "ValueError: v"


# -- CaptureListener -----------------------------------------------------------------------

CAPTURED_SUCCESS = [
    ("flow", "f", "PENDING", "RUNNING", ABSENT),
    ("task", "t1", "PENDING", "RUNNING", ABSENT),
    ("task", "t1", "RUNNING", "SUCCESS", "t1-res"),
    ("task", "t2", "PENDING", "RUNNING", ABSENT),
    ("task", "t2", "RUNNING", "SUCCESS", "t2-res"),
    ("flow", "f", "RUNNING", "SUCCESS", ABSENT),
]

# notes §1b: the failed task is reverted first, then the others, latest first.
CAPTURED_ABC_REVERT = [
    ("flow", "f", "PENDING", "RUNNING", ABSENT),
    ("task", "a", "PENDING", "RUNNING", ABSENT),
    ("task", "a", "RUNNING", "SUCCESS", "a-res"),
    ("task", "b", "PENDING", "RUNNING", ABSENT),
    ("task", "b", "RUNNING", "SUCCESS", "b-res"),
    ("task", "c", "PENDING", "RUNNING", ABSENT),
    ("task", "c", "RUNNING", "FAILURE", "Failure: OSError: boom"),
    ("task", "c", "FAILURE", "REVERTING", ABSENT),
    ("task", "c", "REVERTING", "REVERTED", None),
    ("task", "b", "SUCCESS", "REVERTING", ABSENT),
    ("task", "b", "REVERTING", "REVERTED", None),
    ("task", "a", "SUCCESS", "REVERTING", ABSENT),
    ("task", "a", "REVERTING", "REVERTED", None),
    ("flow", "f", "RUNNING", "REVERTED", ABSENT),
]


def test_capture_success_sequence_and_details(load: Loader) -> None:
    engine = load(two_tasks())
    with CaptureListener(engine) as capture:
        engine.run()
    assert summary(capture.values) == CAPTURED_SUCCESS
    flow_details = capture.values[0][2]
    assert set(flow_details) == {"engine", "flow_name", "flow_uuid", "old_state"}
    assert flow_details["engine"] is engine
    assert flow_details["flow_uuid"] == engine.storage.flow_uuid
    assert set(capture.values[1][2]) == {"task_name", "task_uuid", "old_state"}
    assert set(capture.values[2][2]) == {"task_name", "task_uuid", "old_state", "result"}
    assert capture.values[1][2]["task_uuid"] == engine.storage.get_atom_uuid("t1")
    assert all(type(state) is str for _, state, _ in capture.values)
    assert (CaptureListener.FLOW, CaptureListener.TASK, CaptureListener.RETRY) == (
        "flow",
        "task",
        "retry",
    )


def test_capture_failure_and_revert_sequence(load: Loader) -> None:
    engine = load(abc_flow())
    with CaptureListener(engine) as capture:
        assert isinstance(run_quietly(engine), OSError)
    assert summary(capture.values) == CAPTURED_ABC_REVERT


def test_capture_rerun_of_a_reverted_flow(load: Loader) -> None:
    engine = load(abc_flow())
    assert isinstance(run_quietly(engine), OSError)
    uuids = {name: engine.storage.get_atom_uuid(name) for name in "abc"}
    with CaptureListener(engine) as capture:
        assert isinstance(run_quietly(engine), OSError)
    # notes §1c: every atom back to PENDING, then the flow, then the same run again.
    assert summary(capture.values) == [
        ("task", "a", "REVERTED", "PENDING", ABSENT),
        ("task", "b", "REVERTED", "PENDING", ABSENT),
        ("task", "c", "REVERTED", "PENDING", ABSENT),
        ("flow", "f", "REVERTED", "PENDING", ABSENT),
        *CAPTURED_ABC_REVERT,
    ]
    assert {n: engine.storage.get_atom_uuid(n) for n in "abc"} == uuids


def test_capture_revert_failure_sequence(load: Loader) -> None:
    flow = LinearFlow("f").add(Named("a"), BadRevert("b"), Boom("c"))
    engine = load(flow)
    with CaptureListener(engine) as capture:
        assert isinstance(run_quietly(engine), ValueError)
    # notes §1d: a is never reverted once b's revert failed.
    assert summary(capture.values)[-4:] == [
        ("task", "c", "REVERTING", "REVERTED", None),
        ("task", "b", "SUCCESS", "REVERTING", ABSENT),
        ("task", "b", "REVERTING", "REVERT_FAILURE", "Failure: ValueError: revert-boom"),
        ("flow", "f", "RUNNING", "FAILURE", ABSENT),
    ]


def test_capture_skips_and_kinds() -> None:
    engine = tideflow.load(two_tasks())
    with CaptureListener(engine, capture_flow=False, skip_tasks=["t1"]) as capture:
        assert len(engine.notifier) == 0
        engine.run()
    assert summary(capture.values) == [
        ("task", "t2", "PENDING", "RUNNING", ABSENT),
        ("task", "t2", "RUNNING", "SUCCESS", "t2-res"),
    ]

    engine = tideflow.load(two_tasks())
    with CaptureListener(engine, capture_task=False, skip_flows=["other"]) as capture:
        engine.run()
    assert [k for k, _, _ in capture.values] == ["flow", "flow"]

    engine = tideflow.load(two_tasks())
    with CaptureListener(engine, skip_flows=["f"], flow_listen_for=["SUCCESS"]) as capture:
        engine.run()
    assert [k for k, _, _ in capture.values] == ["task"] * 4


def test_capture_retries_and_skip_retries() -> None:
    engine = tideflow.load(two_tasks())
    with CaptureListener(engine, skip_retries=["r2"]) as capture:
        for name in ("r1", "r2"):
            engine.atom_notifier.notify(
                "RETRYING", {"retry_name": name, "retry_uuid": "u", "old_state": "SUCCESS"}
            )
    assert capture.values == [
        ("retry", "RETRYING", {"retry_name": "r1", "retry_uuid": "u", "old_state": "SUCCESS"})
    ]
    engine = tideflow.load(two_tasks())
    with CaptureListener(engine, capture_retry=False, capture_task=False) as capture:
        assert len(engine.atom_notifier) == 0


def test_capture_appends_to_the_given_list_and_copies_details() -> None:
    values: list[tuple[str, str, dict[str, Any]]] = []
    engine = tideflow.load(two_tasks())

    class Meddler(Listener):
        def _task_receiver(self, state: str, details: Mapping[str, Any]) -> None:
            details["task_name"] = "meddled"  # type: ignore[index]

    with CaptureListener(engine, values=values) as capture, Meddler(engine):
        engine.run()
    assert capture.values is values
    assert [d.get("task_name") for k, _, d in values if k == "task"] == ["t1", "t1", "t2", "t2"]


# -- timing ---------------------------------------------------------------------------------


def test_duration_listener_records_durations_in_meta(load: Loader) -> None:
    engine = load(two_tasks())
    with DurationListener(engine):
        engine.run()
    storage = engine.storage
    assert isinstance(storage.flow_detail.meta["duration"], float)
    assert storage.flow_detail.meta["duration"] >= 0.0
    for detail in storage.flow_detail:
        assert isinstance(detail.meta["duration"], float)
        assert 0.0 <= detail.meta["duration"] <= storage.flow_detail.meta["duration"]
    assert TimingListener is DurationListener


def test_duration_listener_times_reverts_and_warns_about_unfinished_timers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = tideflow.load(two_tasks(fail=True))
    with DurationListener(engine):
        run_quietly(engine)
    assert all("duration" in d.meta for d in engine.storage.flow_detail)
    assert "duration" in engine.storage.flow_detail.meta

    listener = DurationListener(engine)
    listener.register()
    engine.atom_notifier.notify(
        "RUNNING", {"task_name": "t1", "task_uuid": "x", "old_state": "PENDING"}
    )
    caplog.set_level(logging.WARNING, logger="tideflow.listeners.timing")
    listener.deregister()
    assert "1 timer(s) never reached a finish state: [\"task 't1'\"]" in caplog.text


def test_printing_duration_listener_lines() -> None:
    lines: list[str] = []
    engine = tideflow.load(two_tasks(fail=True))
    with PrintingDurationListener(engine, printer=lines.append):
        run_quietly(engine)
    shapes = [re.sub(r"\d+\.\d\d", "N", line) for line in lines]
    assert shapes == [
        "'f' flow started.",
        "'t1' task started.",
        "It took task 't1' N seconds to finish.",
        "'t2' task started.",
        "It took task 't2' N seconds to finish.",
        "'t2' task started.",
        "It took task 't2' N seconds to finish.",
        "'t1' task started.",
        "It took task 't1' N seconds to finish.",
        "It took flow 'f' N seconds to finish.",
    ]
    assert "duration" in engine.storage.flow_detail.meta


def test_printing_duration_listener_prints_to_stdout_by_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine = tideflow.load(two_tasks())
    with PrintingDurationListener(engine):
        engine.run()
    out = capsys.readouterr().out
    assert out.startswith("'f' flow started.\n't1' task started.\nIt took task 't1' ")
    assert re.search(r"It took flow 'f' \d+\.\d\d seconds to finish\.\n$", out)


def test_event_time_listener_records_timestamps(load: Loader) -> None:
    engine = load(two_tasks())
    with EventTimeListener(engine):
        engine.run()
    flow_meta = engine.storage.flow_detail.meta
    assert set(flow_meta) == {"RUNNING-timestamp", "SUCCESS-timestamp"}
    assert flow_meta["RUNNING-timestamp"] <= flow_meta["SUCCESS-timestamp"]
    for detail in engine.storage.flow_detail:
        stamps = {k: v for k, v in detail.meta.items() if k.endswith("-timestamp")}
        assert set(stamps) == {"RUNNING-timestamp", "SUCCESS-timestamp"}
        assert flow_meta["RUNNING-timestamp"] <= stamps["RUNNING-timestamp"]
        assert stamps["RUNNING-timestamp"] <= stamps["SUCCESS-timestamp"]


def test_event_time_listener_filters() -> None:
    engine = tideflow.load(two_tasks())
    with EventTimeListener(engine, task_listen_for=["SUCCESS"], flow_listen_for=()):
        engine.run()
    assert engine.storage.flow_detail.meta == {}
    for detail in engine.storage.flow_detail:
        assert [k for k in detail.meta if k.endswith("-timestamp")] == ["SUCCESS-timestamp"]


# -- logging -------------------------------------------------------------------------------


def records(caplog: pytest.LogCaptureFixture, engine: Engine) -> Iterator[tuple[int, str]]:
    """``(levelno, normalised message)`` of the listener logger's records."""
    for record in caplog.records:
        if record.name == LOGGER:
            yield record.levelno, normalise(record.getMessage(), engine)


def test_logging_listener_logs_the_printed_lines(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    engine = tideflow.load(two_tasks())
    with LoggingListener(engine):
        engine.run()
    logged = list(records(caplog, engine))
    assert {level for level, _ in logged} == {logging.DEBUG}
    assert "\n".join(m for _, m in logged) + "\n" == PRINTED_SUCCESS


def test_logging_listener_failure_carries_exc_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    engine = tideflow.load(two_tasks(fail=True))
    with LoggingListener(engine, level=logging.INFO):
        run_quietly(engine)
    ours = [r for r in caplog.records if r.name == LOGGER]
    assert {r.levelno for r in ours} == {logging.INFO}
    failed = [r for r in ours if r.exc_info]
    assert len(failed) == 1
    message = failed[0].getMessage()
    assert message.endswith(
        "into state 'FAILURE' from state 'RUNNING' with result 'Failure: OSError: boom'"
        " (failure=True)"
    )
    assert failed[0].exc_info is not None
    assert isinstance(failed[0].exc_info[1], OSError)


def test_logging_listener_uses_the_given_logger() -> None:
    logger = logging.getLogger("test.listeners.custom")
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    handler = Keep()
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        engine = tideflow.load(two_tasks())
        with LoggingListener(engine, log=logger, level=logging.INFO, flow_listen_for=()):
            engine.run()
    finally:
        logger.removeHandler(handler)
    assert [r.levelno for r in seen] == [logging.INFO] * 4


def test_logging_listener_without_a_live_exception_logs_the_recorded_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    engine = tideflow.load(two_tasks())
    stored = Failure(
        exc_type_names=["OSError", "Exception"], exception_str="gone", traceback_str=""
    )
    LoggingListener(engine)._task_receiver(
        "FAILURE", {"task_name": "t", "task_uuid": "u", "old_state": "RUNNING", "result": stored}
    )
    (record,) = caplog.records
    assert record.exc_info is None
    assert record.getMessage().endswith("(failure=True)\nOSError: gone")


def test_dynamic_logging_listener_levels_on_success(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    engine = tideflow.load(two_tasks())
    with DynamicLoggingListener(engine):
        engine.run()
    assert list(records(caplog, engine)) == [
        (10, "Flow 'f' (UUID) transitioned into state 'RUNNING' from state 'PENDING'"),
        (10, "Task 't1' (UUID) transitioned into state 'RUNNING' from state 'PENDING'"),
        (
            10,
            "Task 't1' (UUID) transitioned into state 'SUCCESS' from state 'RUNNING'"
            " with result 't1-res'",
        ),
        (10, "Task 't2' (UUID) transitioned into state 'RUNNING' from state 'PENDING'"),
        (
            10,
            "Task 't2' (UUID) transitioned into state 'SUCCESS' from state 'RUNNING'"
            " with result 't2-res'",
        ),
        (10, "Flow 'f' (UUID) transitioned into state 'SUCCESS' from state 'RUNNING'"),
    ]


def test_dynamic_logging_listener_raises_the_level_after_a_failure(
    load: Loader, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    engine = load(two_tasks(fail=True))
    with DynamicLoggingListener(engine):
        run_quietly(engine)
    logged = list(records(caplog, engine))
    assert [(level, m.split("\n")[0]) for level, m in logged[4:]] == [
        (30, "Task 't2' (UUID) transitioned into state 'FAILURE' from state 'RUNNING'"),
        (10, "Task 't2' (UUID) transitioned into state 'REVERTING' from state 'FAILURE'"),
        (
            30,
            "Task 't2' (UUID) transitioned into state 'REVERTED' from state 'REVERTING'"
            " with result 'None'",
        ),
        (10, "Task 't1' (UUID) transitioned into state 'REVERTING' from state 'SUCCESS'"),
        (
            30,
            "Task 't1' (UUID) transitioned into state 'REVERTED' from state 'REVERTING'"
            " with result 'None'",
        ),
        (30, "Flow 'f' (UUID) transitioned into state 'REVERTED' from state 'RUNNING'"),
    ]
    failed = [r for r in caplog.records if r.name == LOGGER and r.exc_info]
    assert len(failed) == 1
    assert failed[0].exc_info is not None
    assert isinstance(failed[0].exc_info[1], OSError)
    assert failed[0].getMessage().split("\n")[1:] == [
        "2 predecessors (most recent first):",
        "  Atom 't1' {'intention': 'EXECUTE', 'state': 'SUCCESS', 'requires': {},"
        " 'provides': 't1-res'}",
        "  Flow 'f'",
    ]


def test_dynamic_logging_listener_hides_and_masks(caplog: pytest.LogCaptureFixture) -> None:
    class Secret(Task):
        def execute(self, password: str) -> dict[str, str]:
            return {"token": "t0k3n", "user": "u"}

    flow = LinearFlow("f").add(Secret("s"), Named("t1"), Boom("t2"))
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    engine = tideflow.load(flow, store={"password": "hunter2"})
    listener = DynamicLoggingListener(
        engine,
        hide_inputs_outputs_of=["t1"],
        mask_inputs_keys=["password"],
        mask_outputs_keys=["token"],
    )
    with listener:
        run_quietly(engine)
    logged = [m for _, m in records(caplog, engine)]
    assert "Task 't1' (UUID) transitioned into state 'SUCCESS' from state 'RUNNING'" in logged
    failure_message = next(m for m in logged if "'FAILURE'" in m)
    assert failure_message.split("\n")[1:] == [
        "3 predecessors (most recent first):",
        "  Atom 't1' {'intention': 'EXECUTE', 'state': 'SUCCESS'}",
        "  Atom 's' {'intention': 'EXECUTE', 'state': 'SUCCESS', 'requires': {'password':"
        " '***'}, 'provides': {'token': '***', 'user': 'u'}}",
        "  Flow 'f'",
    ]
    assert "hunter2" not in caplog.text
    assert "t0k3n" not in caplog.text.split("transitioned into state 'FAILURE'")[1]


def test_dynamic_logging_listener_shows_results_only_at_the_verbose_level(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    engine = tideflow.load(two_tasks(fail=True))
    with DynamicLoggingListener(engine):
        run_quietly(engine)
    reverted = [m for _, m in records(caplog, engine) if "'REVERTED' from state 'REVERTING'" in m]
    assert reverted == [
        "Task 't2' (UUID) transitioned into state 'REVERTED' from state 'REVERTING'",
        "Task 't1' (UUID) transitioned into state 'REVERTED' from state 'REVERTING'",
    ]


def test_dynamic_logging_listener_custom_formatter_and_levels(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Short:
        def format(self, failure: Failure, atom_name: str) -> tuple[None, str]:
            return None, f"{atom_name} said {failure.exception_str}"

    caplog.set_level(logging.DEBUG, logger=LOGGER)
    engine = tideflow.load(two_tasks(fail=True))
    listener = DynamicLoggingListener(
        engine, fail_formatter=Short(), failure_level=logging.ERROR, level=logging.INFO
    )
    with listener:
        run_quietly(engine)
    logged = list(records(caplog, engine))
    assert (
        logging.ERROR,
        "Task 't2' (UUID) transitioned into state 'FAILURE' from state 'RUNNING'\nt2 said boom",
    ) in logged
    assert {level for level, _ in logged} == {logging.INFO, logging.ERROR}
    assert not any(r.exc_info for r in caplog.records if r.name == LOGGER)


# -- the package -------------------------------------------------------------------------------


def test_all_is_sorted_and_complete() -> None:
    exported = tideflow.listeners.__all__
    assert exported == sorted(exported)
    public = {
        name
        for name, value in vars(tideflow.listeners).items()
        if isinstance(value, type) and not name.startswith("_")
    }
    assert public == set(exported)
