"""How values (results, store values, metadata) become text in a durable store, and back.

The default codec writes JSON, and keeps the types users return every day that JSON
alone would lose: tuples, sets, dicts whose keys are not all strings, ``bytes``,
``datetime``/``date``/``time``/``timedelta``, ``Decimal`` and ``UUID`` are written as
small tagged objects (``{"$t": "tuple", "v": [...]}``) and read back as what they
were. Anything else is refused with :class:`~tideflow.errors.UnstorableValueError`
naming where in the value it sits and its type — never stored as something else.

:class:`PickleCodec` is the explicit opt-in for arbitrary objects: it still writes
JSON for every value JSON can keep, and pickles only the rest. A pickled value is
read back only by a store opened with the pickle codec: no stored value is ever
unpickled by default, because a shared database must not become a way to run code
on whoever reads it.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import pickle
import uuid as _uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any, ClassVar, Final, Protocol

from tideflow.errors import StoreError, UnstorableValueError

__all__ = ["CODECS", "Codec", "JsonCodec", "PickleCodec", "codec_named"]

_TAG: Final = "$t"
#: One encoder for every call (json.dumps with options builds a new one each time).
_ENCODE: Final = json.JSONEncoder(separators=(",", ":"), allow_nan=True).encode


class Codec(Protocol):
    """Turns values into text and back; ``name`` is what stores record and options name."""

    @property
    def name(self) -> str:
        """The codec's name, as options spell it."""
        ...

    def dumps(self, value: Any, where: str = "value") -> str:
        """The text for ``value``; :class:`UnstorableValueError` naming ``where`` if none."""
        ...

    def loads(self, text: str) -> Any:
        """The value ``text`` was made from."""
        ...


def _tagged(tag: str, payload: Any) -> dict[str, Any]:
    return {_TAG: tag, "v": payload}


class JsonCodec:
    """JSON, with tags for the common Python types JSON cannot tell apart (the default)."""

    name: ClassVar[str] = "json"

    def dumps(self, value: Any, where: str = "value") -> str:
        """The JSON text for ``value``."""
        if value is None:
            return "null"
        return _ENCODE(self._plain(value, where))

    def loads(self, text: str) -> Any:
        """The value a :meth:`dumps` text stands for."""
        if text == "null":
            return None
        if text == "{}":  # the most common values of a record's fields, made at once
            return {}
        if text == "[]":
            return []
        return json.loads(text, object_hook=self._object_hook)

    # -- to JSON-able data ----------------------------------------------------------

    def _plain(self, value: Any, where: str) -> Any:
        kind = type(value)
        if kind is str or kind is int or kind is float or kind is bool or value is None:
            return value
        if kind is list:
            return [self._plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if kind is dict:
            if all(type(k) is str for k in value) and _TAG not in value:
                return {k: self._plain(v, f"{where}[{k!r}]") for k, v in value.items()}
            return _tagged(
                "dict",
                [
                    [self._plain(k, f"{where} key {k!r}"), self._plain(v, f"{where}[{k!r}]")]
                    for k, v in value.items()
                ],
            )
        if kind is tuple:
            return _tagged("tuple", [self._plain(v, f"{where}[{i}]") for i, v in enumerate(value)])
        encode = _ENCODERS.get(kind)
        if encode is not None:
            return encode(self, value, where)
        return self._other(value, where)

    def _other(self, value: Any, where: str) -> Any:
        """A value of a type JSON cannot keep: refused (the pickle codec pickles it)."""
        raise UnstorableValueError(
            f"cannot store {where}: a {_type_name(value)} ({_short(value)}) is not one of the "
            "types the JSON codec keeps (None, bool, int, float, str, list, tuple, dict, set, "
            "bytes, datetime, date, time, timedelta, Decimal, UUID). Return plain data, or "
            "open the store with codec='pickle' if every reader of the store trusts its writers"
        )

    # -- back from JSON ----------------------------------------------------------------

    def _object_hook(self, data: dict[str, Any]) -> Any:
        tag = data.get(_TAG)
        if tag is None:
            return data
        decode = _DECODERS.get(tag)
        if decode is None:
            if tag == "pickle":
                return self._unpickle(data["v"])
            raise StoreError(f"a stored value has an unknown type tag {tag!r}: {_short(data)}")
        return decode(data["v"])

    def _unpickle(self, payload: str) -> Any:
        raise StoreError(
            "a stored value was written with the pickle codec, and this store was opened with "
            "the JSON codec, which never unpickles: open the store with codec='pickle' to read "
            "it, only if you trust whoever wrote it"
        )


class PickleCodec(JsonCodec):
    """JSON where JSON can keep the value; pickle for the rest (opt-in, trusted stores only)."""

    name: ClassVar[str] = "pickle"

    def _other(self, value: Any, where: str) -> Any:
        try:
            data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise UnstorableValueError(
                f"cannot store {where}: a {_type_name(value)} ({_short(value)}) cannot be "
                f"pickled ({type(exc).__name__}: {exc})",
                cause=exc,
            ) from exc
        return _tagged("pickle", base64.b64encode(data).decode("ascii"))

    def _unpickle(self, payload: str) -> Any:
        return pickle.loads(base64.b64decode(payload))  # opted in by the user


def _type_name(value: Any) -> str:
    kind = type(value)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def _short(value: Any, limit: int = 60) -> str:
    try:
        text = repr(value)
    except Exception:  # a repr that fails must not hide the real error
        text = f"<{_type_name(value)}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _items(codec: JsonCodec, value: Any, where: str) -> list[Any]:
    return [codec._plain(v, f"{where} item") for v in value]


_ENCODERS: Final[dict[type, Callable[[JsonCodec, Any, str], Any]]] = {
    set: lambda c, v, w: _tagged("set", _items(c, v, w)),
    frozenset: lambda c, v, w: _tagged("frozenset", _items(c, v, w)),
    bytes: lambda c, v, w: _tagged("bytes", base64.b64encode(v).decode("ascii")),
    bytearray: lambda c, v, w: _tagged("bytearray", base64.b64encode(v).decode("ascii")),
    _dt.datetime: lambda c, v, w: _tagged("datetime", v.isoformat()),
    _dt.date: lambda c, v, w: _tagged("date", v.isoformat()),
    _dt.time: lambda c, v, w: _tagged("time", v.isoformat()),
    _dt.timedelta: lambda c, v, w: _tagged("timedelta", [v.days, v.seconds, v.microseconds]),
    Decimal: lambda c, v, w: _tagged("decimal", str(v)),
    _uuid.UUID: lambda c, v, w: _tagged("uuid", str(v)),
}

_DECODERS: Final[dict[str, Callable[[Any], Any]]] = {
    "tuple": tuple,
    "dict": lambda pairs: {_hashable(k): v for k, v in pairs},
    "set": lambda items: {_hashable(i) for i in items},
    "frozenset": lambda items: frozenset(_hashable(i) for i in items),
    "bytes": base64.b64decode,
    "bytearray": lambda text: bytearray(base64.b64decode(text)),
    "datetime": _dt.datetime.fromisoformat,
    "date": _dt.date.fromisoformat,
    "time": _dt.time.fromisoformat,
    "timedelta": lambda parts: _dt.timedelta(parts[0], parts[1], parts[2]),
    "decimal": Decimal,
    "uuid": _uuid.UUID,
}


def _hashable(value: Any) -> Any:
    """Keys and set items decode as what they were; a list here can only be a lost tuple."""
    return tuple(value) if type(value) is list else value


#: The codecs a store can be opened with, by name.
CODECS: Final[dict[str, type[JsonCodec]]] = {"json": JsonCodec, "pickle": PickleCodec}


def codec_named(name: str | Codec) -> Codec:
    """The codec ``name`` names (``'json'`` or ``'pickle'``), or ``name`` if it is one."""
    if not isinstance(name, str):
        if callable(getattr(name, "dumps", None)) and callable(getattr(name, "loads", None)):
            return name
        raise TypeError(f"codec= takes 'json', 'pickle' or a codec object, got {name!r}")
    try:
        return CODECS[name]()
    except KeyError:
        raise ValueError(f"unknown codec {name!r}: choose one of {sorted(CODECS)}") from None
