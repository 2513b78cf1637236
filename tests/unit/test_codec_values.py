"""The JSON codec reads back what it wrote, every value a new object."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

import pytest

from tideflow.persistence.codec import JsonCodec

VALUES: list[Any] = [
    None,
    {},
    [],
    (),
    {"a": [1, {}], "b": ()},
    [[], {}],
    {1: "one"},
    {"k": datetime.date(2026, 12, 2), "d": Decimal("1.50")},
    "{}",
    "[]",
    0,
    "",
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_a_value_reads_back_as_written(value: Any) -> None:
    codec = JsonCodec()
    text = codec.dumps(value)
    back = codec.loads(text)
    assert back == value
    assert type(back) is type(value)


@pytest.mark.parametrize("text", ["{}", "[]"])
def test_each_empty_container_read_is_a_new_object(text: str) -> None:
    codec = JsonCodec()
    first, second = codec.loads(text), codec.loads(text)
    assert first is not second
    first.append(1) if isinstance(first, list) else first.update(x=1)
    assert not second  # changing one read does not change the next
    assert codec.loads(text) in ({}, [])
    assert not codec.loads(text)
