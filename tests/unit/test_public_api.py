"""The public surface: __all__ sorted and complete, typed package marker present."""

import importlib
from pathlib import Path

import pytest

import tideflow

PUBLIC_MODULES = [
    "tideflow",
    "tideflow.errors",
    "tideflow.events",
    "tideflow.executors",
    "tideflow.failure",
    "tideflow.persistence",
    "tideflow.retry",
    "tideflow.states",
]


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_all_is_sorted_and_every_name_exists(name):
    module = importlib.import_module(name)
    exported = module.__all__
    # plain sort, or isort-style (CONSTANTS, then Classes, then functions) as ruff writes it
    isort_style = sorted(
        exported, key=lambda n: (0 if n.isupper() else 1 if n[0].isupper() else 2, n)
    )
    assert exported in (sorted(exported), isort_style)
    for item in exported:
        assert hasattr(module, item), f"{name}.__all__ names missing {item}"


def test_every_public_class_and_function_of_the_package_is_exported():
    public = {
        n
        for n, v in vars(tideflow).items()
        if not n.startswith("_")
        and (isinstance(v, type) or callable(v))
        and getattr(v, "__module__", "").startswith("tideflow")
    }
    assert public <= set(tideflow.__all__)


def test_py_typed_marker_ships():
    assert (Path(tideflow.__file__).parent / "py.typed").exists()


def test_error_tree_has_one_root():
    from tideflow import errors

    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.TideflowError)
