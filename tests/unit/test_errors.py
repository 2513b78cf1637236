"""The error tree: where each error sits, which builtins it is, and how it is built."""

from __future__ import annotations

import pytest

from tideflow import errors

# Errors that engine.run() (through compile/validate) or storage can raise. They must
# not be builtin ValueError/TypeError/LookupError subclasses: a program's
# ``except ValueError`` around run(), meant for a task's own ValueError, would
# otherwise swallow a definition error that TaskFlow lets through.
_EXCEPTION_ONLY = [
    errors.DuplicateAtomError,
    errors.DependencyError,
    errors.CycleError,
    errors.AmbiguousProviderError,
    errors.MissingRequirementError,
    errors.CompilationError,
    errors.ExecutionError,
    errors.InvalidStateError,
    errors.NotFoundError,
    errors.StoreError,
    errors.InternalError,
]


@pytest.mark.parametrize("cls", _EXCEPTION_ONLY, ids=lambda c: c.__name__)
def test_errors_run_can_raise_are_no_builtin_lookalikes(cls: type[Exception]) -> None:
    for builtin in (ValueError, TypeError, LookupError, AttributeError, RuntimeError):
        assert not issubclass(cls, builtin)


@pytest.mark.parametrize(
    ("cls", "parent", "builtins"),
    [
        (errors.AtomReusedError, errors.DuplicateAtomError, (ValueError,)),
        (errors.NotInFlowError, errors.NotFoundError, (ValueError,)),
        (errors.InvalidArgumentError, errors.DefinitionError, (TypeError, ValueError)),
    ],
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_errors_for_taskflow_builtin_cases_are_those_builtins(
    cls: type[Exception], parent: type[Exception], builtins: tuple[type[Exception], ...]
) -> None:
    error = cls("m")
    assert isinstance(error, parent)
    for builtin in builtins:
        with pytest.raises(builtin):
            raise error
    assert not isinstance(error, AttributeError)  # getattr() fallbacks would swallow it
    assert str(error) == "m"


def test_dependency_errors_are_not_duplicates_or_compilation_errors() -> None:
    for cls in (errors.CycleError, errors.AmbiguousProviderError, errors.MissingRequirementError):
        assert issubclass(cls, errors.DependencyError)
        assert issubclass(cls, errors.DefinitionError)
    for cls in (errors.DuplicateAtomError, errors.CompilationError, errors.InvalidArgumentError):
        assert not issubclass(cls, errors.DependencyError)
        assert issubclass(cls, errors.DefinitionError)


def test_missing_requirement_tideflow_form() -> None:
    error = errors.MissingRequirementError("msg", atom="a", missing=["y", "x"], flow="f")
    assert (error.atom, error.missing, error.flow, error.method) == ("a", ("y", "x"), "f", None)
    assert error.missing_requirements == ["x", "y"]
    assert str(error) == "msg"
    assert error.cause is None


def test_missing_requirement_taskflow_positional_form() -> None:
    cause = KeyError("k")
    error = errors.MissingRequirementError("loader", ["m2", "m1"], cause, "execute")
    assert error.missing_requirements == ["m1", "m2"]
    assert error.atom == "loader"
    assert error.method == "execute"
    assert error.cause is cause
    assert error.message == "'execute' of 'loader' requires ['m1', 'm2'], which nothing provides"
    assert str(error) == error.message + "\n  KeyError: 'k'"


def test_missing_requirement_taskflow_form_without_method() -> None:
    error = errors.MissingRequirementError("who", ("a",))
    assert str(error) == "'who' requires ['a'], which nothing provides"


def test_tree_is_drawn_in_the_module_docstring() -> None:
    doc = errors.__doc__ or ""
    for name in errors.__all__:
        assert name in doc, f"{name} missing from the drawn tree"
