"""Two tasks in a line: double a number from the store, then add one."""

from __future__ import annotations

import tideflow


@tideflow.task(name="double", provides="doubled")
def double(n: int) -> int:
    print(f"doubling {n}")
    return n * 2


@tideflow.task(name="add-one", provides="total")
def add_one(doubled: int) -> int:
    return doubled + 1


def make_flow() -> tideflow.Flow:
    """The flow, built fresh for each run."""
    return tideflow.LinearFlow("arith").add(double(), add_one())
