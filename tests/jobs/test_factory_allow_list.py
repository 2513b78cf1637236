"""The allow-list cannot be left through the attribute path of a factory: only public
names after the colon, and the factory must be defined in an allowed module."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from tideflow.jobs.base import FactoryNotAllowedError, check_factory, import_factory

WHERE = "conductor 'w1'"


@pytest.fixture
def flows_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    package = tmp_path / "allowapp"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "flows.py").write_text(
        textwrap.dedent(
            """
            import os
            from json import dumps

            def build(n=1):
                return ("flow", n)

            class Maker:
                @staticmethod
                def make():
                    return "made"

            _private = build
            """
        )
    )
    (package / "_inner.py").write_text("def build():\n    return 'inner'\n\n_hidden = build\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("allowapp", "allowapp.flows", "allowapp._inner"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return "allowapp.flows"


def test_a_factory_defined_in_an_allowed_module_is_imported(flows_module: str) -> None:
    build = import_factory(f"{flows_module}:build", ("allowapp",), WHERE)
    assert build(3) == ("flow", 3)
    assert import_factory(f"{flows_module}:Maker.make", ("allowapp",), WHERE)() == "made"


@pytest.mark.parametrize(
    "path",
    ["os.system", "dumps", "os.path.join"],
)
def test_a_name_the_module_only_imported_is_refused(flows_module: str, path: str) -> None:
    with pytest.raises(FactoryNotAllowedError, match=r"defined in '.*', outside .*allowapp"):
        import_factory(f"{flows_module}:{path}", ("allowapp",), WHERE)


@pytest.mark.parametrize(
    "path",
    ["build.__globals__", "__builtins__", "_private", "Maker.__init__", "build.__code__"],
)
def test_private_and_dunder_names_are_refused_before_any_import(
    flows_module: str, path: str
) -> None:
    factory = f"{flows_module}:{path}"
    with pytest.raises(ValueError, match="no name after the colon starts with '_'"):
        check_factory(factory, ("allowapp",), WHERE)
    with pytest.raises(ValueError, match="no name after the colon starts with '_'"):
        import_factory(factory, ("allowapp",), WHERE)
    assert "allowapp.flows" not in sys.modules


def test_the_standard_library_escape_is_closed() -> None:
    # 'json' allowed and json imports codecs: codecs.open must not be reachable
    with pytest.raises(FactoryNotAllowedError, match="defined in 'codecs'"):
        import_factory("json:codecs.open", ("json",), WHERE)


def test_a_module_outside_the_list_is_not_imported(flows_module: str) -> None:
    with pytest.raises(FactoryNotAllowedError, match="not on the board's allow-list"):
        import_factory(f"{flows_module}:build", ("otherapp",), WHERE)
    assert "allowapp.flows" not in sys.modules


@pytest.mark.parametrize(
    ("recorded", "match"),
    [
        ("allowapp.flows.os.system", r"defined in '(posix|os)'"),
        ("allowapp.flows.dumps", "defined in 'json"),
        ("allowapp.flows._private", "private or special names"),
        ("allowapp.flows.build.__globals__", "private or special names"),
        ("allowapp._inner._hidden", "private or special names"),
        ("allowapp._inner.build.__globals__", "private or special names"),
        ("otherapp.flows.build", "outside the board's allow-list"),
    ],
)
def test_a_forged_run_record_cannot_leave_the_list_either(
    flows_module: str, recorded: str, match: str
) -> None:
    from tideflow.conductors._work import _check_recorded_factory, _Unrunnable

    with pytest.raises(_Unrunnable, match=match):
        _check_recorded_factory(recorded, ("allowapp",), "run-1")
    _check_recorded_factory(f"{flows_module}.build", ("allowapp",), "run-1")


def test_a_run_record_of_a_factory_in_a_private_module_is_resumed(flows_module: str) -> None:
    # a job may name 'allowapp._inner:build' (the module part is free): its record,
    # 'allowapp._inner.build', must pass the same check when the run is resumed
    from tideflow.conductors._work import _check_recorded_factory

    check_factory("allowapp._inner:build", ("allowapp",), WHERE)
    _check_recorded_factory("allowapp._inner.build", ("allowapp",), "run-1")
