"""A flow object (not a factory) whose second task fails: the first is reverted."""

from __future__ import annotations

from typing import Any

import tideflow


class Reserve(tideflow.Task):
    def execute(self) -> str:
        return "seat-1"

    def revert(self, result: Any, **kwargs: Any) -> None:
        print(f"released {result}")


class Boom(tideflow.Task):
    def execute(self) -> None:
        raise ValueError("no luck today")


flow = tideflow.LinearFlow("unlucky").add(Reserve("reserve"), Boom("boom"))
