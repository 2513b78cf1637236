"""A graph flow with inferred links, a decider and a retry controller."""

from __future__ import annotations

import tideflow


@tideflow.task(name="fetch", provides="raw")
def fetch() -> str:
    return "data"


@tideflow.task(name="parse", provides="rows")
def parse(raw: str) -> list[str]:
    return raw.split()


@tideflow.task(name="publish")
def publish(rows: list[str]) -> None:
    pass


def has_rows(history: dict[str, object]) -> bool:
    return True


def make_flow() -> tideflow.Flow:
    load = tideflow.LinearFlow("load", retry=tideflow.Times(3, name="again")).add(publish())
    graph = tideflow.GraphFlow("etl").add(fetch(), parse(), load)
    graph.link(_node(graph, "parse"), load, decider=has_rows)
    return graph


def _node(flow: tideflow.GraphFlow, name: str) -> object:
    return next(n for n, _ in flow.iter_nodes() if n.name == name)
