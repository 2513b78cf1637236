"""Failure: an exception captured as data, and WrappedFailure: several of them at once.

A :class:`Failure` keeps what is needed to report, store and compare an exception
without keeping the exception alive: its type names (most derived first), its
message, its traceback as text and its arguments. While the original exception is
still at hand (in the process that caught it), :meth:`Failure.reraise` raises it
again unchanged; a failure read back from a store raises :class:`WrappedFailure`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, NoReturn, TypeAlias

__all__ = ["Failure", "WrappedFailure"]

ExcInfo: TypeAlias = tuple[type[BaseException], BaseException, TracebackType | None]

_FORMAT_VERSION = 1


def _type_name(cls: type) -> str:
    """Name a class the way failures record it: builtins bare, others module-qualified."""
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _type_names(cls: type[BaseException]) -> tuple[str, ...]:
    """Names of ``cls`` and its exception bases, most derived first, up to ``Exception``."""
    names = []
    for base in cls.__mro__:
        if not (isinstance(base, type) and issubclass(base, Exception)):
            continue
        names.append(_type_name(base))
        if base is Exception:
            break
    return tuple(names)


def _json_safe_args(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Keep an exception's args when they are plain data, else their text."""
    safe: list[Any] = []
    for arg in args:
        if arg is None or isinstance(arg, str | int | float | bool):
            safe.append(arg)
        else:
            safe.append(repr(arg))
    return tuple(safe)


class Failure:
    """An exception captured as data: type names, message, traceback text, arguments."""

    __slots__ = (
        "_exc_info",
        "causes",
        "exc_args",
        "exc_type_names",
        "exception_str",
        "traceback_str",
    )

    def __init__(
        self,
        exc_info: ExcInfo | None = None,
        *,
        exc_type_names: Iterable[str] = (),
        exception_str: str = "",
        traceback_str: str = "",
        exc_args: Iterable[Any] = (),
        causes: Iterable[Failure] = (),
    ) -> None:
        if exc_info is None and not exc_type_names:
            exc_info = _current_exc_info()
        self._exc_info = exc_info
        if exc_info is not None:
            exc_type, exc, tb = exc_info
            if not (isinstance(exc_type, type) and issubclass(exc_type, Exception)):
                raise TypeError(
                    f"a Failure captures an Exception, not {exc_type!r}: interrupts and exits "
                    "must propagate"
                )
            self.exc_type_names: tuple[str, ...] = _type_names(exc_type)
            self.exception_str: str = str(exc)
            self.traceback_str: str = _format_tb(tb) if tb else ""
            self.exc_args: tuple[Any, ...] = _json_safe_args(exc.args)
            self.causes: tuple[Failure, ...] = _causes_of(exc)
        else:
            self.exc_type_names = tuple(exc_type_names)
            self.exception_str = exception_str
            self.traceback_str = traceback_str
            self.exc_args = tuple(exc_args)
            self.causes = tuple(causes)

    @classmethod
    def from_exception(cls, exception: BaseException) -> Failure:
        """Capture ``exception`` (with its traceback, if it was raised)."""
        return cls((type(exception), exception, exception.__traceback__))

    @classmethod
    def validate(cls, data: object) -> None:
        """Check that ``data`` is a failure record :meth:`from_dict` can read, causes included.

        Raises :class:`~tideflow.errors.RecordFormatError` naming what is wrong.
        """
        from tideflow.errors import RecordFormatError  # noqa: PLC0415  # no cycle at import

        pending: list[tuple[str, object]] = [("failure", data)]
        while pending:  # causes nest: walk them without recursion
            where, record = pending.pop()
            if not isinstance(record, Mapping):
                raise RecordFormatError(
                    f"{where}: a failure record is a mapping, got {type(record).__name__}"
                )
            version = record.get("version", _FORMAT_VERSION)
            if version != _FORMAT_VERSION:
                raise RecordFormatError(
                    f"{where}: failure record version {version!r} is not {_FORMAT_VERSION}, "
                    "the only one this version of tideflow reads"
                )
            names = record.get("exc_type_names")
            if (
                isinstance(names, str | bytes)
                or not isinstance(names, list | tuple)
                or not names
                or not all(isinstance(n, str) for n in names)
            ):
                raise RecordFormatError(
                    f"{where}: 'exc_type_names' must be a non-empty list of type names, got "
                    f"{names!r}"
                )
            for key in ("exception_str", "traceback_str"):
                if not isinstance(record.get(key, ""), str):
                    raise RecordFormatError(f"{where}: {key!r} must be text")
            causes = record.get("causes", ())
            if not isinstance(causes, list | tuple):
                raise RecordFormatError(f"{where}: 'causes' must be a list of failure records")
            pending.extend((f"{where}.causes[{i}]", c) for i, c in enumerate(causes))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Failure:
        """Rebuild a failure from :meth:`to_dict` output (the exception itself is not restored)."""
        cls.validate(data)
        return cls._from_checked(data)

    @classmethod
    def _from_checked(cls, data: Mapping[str, Any]) -> Failure:
        return cls(
            exc_type_names=data["exc_type_names"],
            exception_str=data.get("exception_str", ""),
            traceback_str=data.get("traceback_str", ""),
            exc_args=data.get("exc_args", ()),
            causes=[cls._from_checked(c) for c in data.get("causes", ())],
        )

    def to_dict(self, include_args: bool = True) -> dict[str, Any]:
        """Describe the failure as JSON-friendly data."""
        return {
            "exc_type_names": list(self.exc_type_names),
            "exception_str": self.exception_str,
            "traceback_str": self.traceback_str,
            "exc_args": tuple(self.exc_args) if include_args else (),
            "causes": [c.to_dict() for c in self.causes],
            "version": _FORMAT_VERSION,
        }

    @property
    def exc_info(self) -> ExcInfo | None:
        """The original ``(type, exception, traceback)``, while it is still at hand."""
        return self._exc_info

    @property
    def exception(self) -> BaseException | None:
        """The original exception, while it is still at hand."""
        return self._exc_info[1] if self._exc_info else None

    @property
    def exception_type_names(self) -> tuple[str, ...]:
        """Same as ``exc_type_names``."""
        return self.exc_type_names

    @property
    def exception_args(self) -> tuple[Any, ...]:
        """The exception's arguments (plain data; others as their repr)."""
        return self.exc_args

    def pformat(self, traceback: bool = False) -> str:
        """Describe the failure in one line, with the traceback below it if asked."""
        text = str(self)
        if traceback and self.traceback_str:
            text += "\nTraceback (most recent call last):\n" + self.traceback_str.rstrip("\n")
        return text

    def copy(self) -> Failure:
        """Return an equal failure (keeping the original exception, if at hand)."""
        clone = Failure.from_dict(self.to_dict())
        clone._exc_info = self._exc_info
        return clone

    def __iter__(self) -> Iterator[str]:
        """Iterate over the exception type names, most derived first."""
        return iter(self.exc_type_names)

    def check(self, *exc_classes: type[BaseException] | str) -> type[BaseException] | str | None:
        """Return the first of ``exc_classes`` this failure is an instance of, or None.

        Classes and names are both accepted; names compare as failures record them.
        """
        for cls in exc_classes:
            name = cls if isinstance(cls, str) else _type_name(cls)
            if name in self.exc_type_names:
                return cls
        return None

    def matches(self, other: object) -> bool:
        """Say whether ``other`` describes the same failure (type, message, traceback)."""
        if not isinstance(other, Failure):
            return False
        return (
            self.exc_type_names == other.exc_type_names
            and self.exception_str == other.exception_str
            and self.traceback_str == other.traceback_str
        )

    def reraise(self) -> NoReturn:
        """Raise the original exception, or a WrappedFailure when it is no longer at hand."""
        if self._exc_info is not None:
            _, exc, tb = self._exc_info
            raise exc.with_traceback(tb)
        raise WrappedFailure([self])

    @staticmethod
    def reraise_if_any(failures: Iterable[Failure]) -> None:
        """Re-raise one failure as itself, several as a WrappedFailure; do nothing for none."""
        found = list(failures)
        if len(found) == 1:
            found[0].reraise()
        if found:
            raise WrappedFailure(found)

    def iter_causes(self) -> Iterator[Failure]:
        """Yield the chain of causes, nearest first."""
        for cause in self.causes:
            yield cause
            yield from cause.iter_causes()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Failure):
            return NotImplemented
        return self.matches(other) and self.causes == other.causes

    __hash__ = None  # type: ignore[assignment]  # failures compare by value and are mutable data

    def __str__(self) -> str:
        name = self.exc_type_names[0] if self.exc_type_names else "?"
        return f"Failure: {name}: {self.exception_str}"

    def __repr__(self) -> str:
        return (
            f"<Failure {self.exc_type_names[0] if self.exc_type_names else '?'}: "
            f"{self.exception_str!r}>"
        )

    def __getstate__(self) -> dict[str, Any]:
        return self.to_dict()

    def __setstate__(self, state: dict[str, Any]) -> None:
        copy = Failure.from_dict(state)
        for slot in Failure.__slots__:
            object.__setattr__(self, slot, getattr(copy, slot))


def _format_tb(tb: TracebackType) -> str:
    import traceback  # noqa: PLC0415  # deferred: only failures need it

    return "".join(traceback.format_tb(tb))


def _current_exc_info() -> ExcInfo:
    """The exception being handled, for ``Failure()`` called inside an ``except`` block."""
    exc = sys.exception()
    if exc is None:
        raise TypeError(
            "Failure() without arguments must be called while handling an exception; "
            "use Failure.from_exception(exc) or pass exc_info"
        )
    return (type(exc), exc, exc.__traceback__)


def _causes_of(exc: BaseException) -> tuple[Failure, ...]:
    """Capture the explicit or implicit cause of ``exc`` as a one-element chain."""
    cause = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    if cause is None:
        return ()
    return (Failure.from_exception(cause),)


class WrappedFailure(Exception):  # TaskFlow's public name
    """Several failures raised together (for example by tasks failing at the same time)."""

    def __init__(self, causes: Iterable[Failure]) -> None:
        super().__init__()
        self._causes = list(causes)

    def __iter__(self) -> Iterator[Failure]:
        return iter(self._causes)

    def __len__(self) -> int:
        return len(self._causes)

    def check(self, *exc_classes: type[BaseException] | str) -> type[BaseException] | str | None:
        """Return the first of ``exc_classes`` that one of the failures is an instance of."""
        if not exc_classes:
            return None
        for failure in self._causes:
            found = failure.check(*exc_classes)
            if found is not None:
                return found
        return None

    def __str__(self) -> str:
        return f"WrappedFailure: [{', '.join(str(f) for f in self._causes)}]"

    def __repr__(self) -> str:
        return f"WrappedFailure({len(self._causes)} failures)"
