"""Flows: linear, unordered and graph patterns of atoms and subflows, nested to any depth.

A flow only describes; the compiler turns it into a plan. Graph flows check what
can be checked as they are built: a link that would close a cycle, or two nodes
providing what a third requires, is refused at ``add()``/``link()`` time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Self, TypeAlias

from tideflow._task import Atom
from tideflow.errors import AmbiguousProviderError, CycleError, DuplicateAtomError, NotFoundError

__all__ = ["Flow", "GraphFlow", "LinearFlow", "Node", "TargetedFlow", "UnorderedFlow"]

Node: TypeAlias = "Atom | Flow"
Decider: TypeAlias = Callable[[Mapping[str, Any]], bool]

#: Link metadata keys (TaskFlow's names).
LINK_INVARIANT = "invariant"
LINK_REASONS = "reasons"
LINK_MANUAL = "manual"
LINK_DECIDER = "decider"
LINK_DECIDER_DEPTH = "decider_depth"


class DeciderDepth:
    """How far a decider's "no" reaches (TaskFlow's ``Depth``)."""

    ALL = "ALL"  # everything that follows the refused target
    FLOW = "FLOW"  # the rest of the flow the link is in
    NEIGHBORS = "NEIGHBORS"  # the target and its immediate successors
    ATOM = "ATOM"  # the target alone

    @classmethod
    def translate(cls, value: str | None) -> str:
        """Check a depth given by name (any case); None means ALL."""
        if value is None:
            return cls.ALL
        name = str(getattr(value, "value", value)).upper()
        if name not in (cls.ALL, cls.FLOW, cls.NEIGHBORS, cls.ATOM):
            raise ValueError(f"unknown decider depth {value!r}; use ALL, FLOW, NEIGHBORS or ATOM")
        return name


def _check_node(flow: Flow, item: object) -> Node:
    if isinstance(item, Atom | Flow):
        return item
    if callable(item) and hasattr(item, "func") and hasattr(item, "defaults"):
        raise TypeError(
            f"flow {flow.name!r}: {item!r} is a task factory made by @task; "
            "call it to make a task, e.g. flow.add(make_task())"
        )
    raise TypeError(
        f"flow {flow.name!r} takes atoms (tasks, retries) and flows, got {type(item).__name__}"
    )


class Flow:
    """Base of all flow patterns: a name, an optional retry controller, and children."""

    def __init__(self, name: str, retry: Atom | None = None) -> None:
        if not isinstance(name, str):
            raise TypeError(f"a flow name must be a str, got {type(name).__name__}")
        self.name = name
        self.retry = retry
        self._children: list[Node] = []
        self._ids: set[int] = set()

    def _admit(self, items: Iterable[object]) -> list[Node]:
        """Type-check new children and refuse one already in this flow."""
        admitted: list[Node] = []
        for item in items:
            node = _check_node(self, item)
            if id(node) in self._ids or node is self:
                what = "atom" if isinstance(node, Atom) else "flow"
                raise DuplicateAtomError(
                    f"flow {self.name!r}: {what} {node.name!r} was added twice; "
                    "each atom object can appear once in a flow"
                )
            self._ids.add(id(node))
            admitted.append(node)
        return admitted

    def add(self, *items: Node) -> Self:
        """Add atoms or subflows; return the flow so calls chain."""
        self._children.extend(self._admit(items))
        return self

    def __len__(self) -> int:
        return len(self._children)

    def __iter__(self) -> Iterator[Node]:
        return iter(self._children)

    def iter_nodes(self) -> Iterator[tuple[Node, dict[str, Any]]]:
        """Yield ``(child, metadata)`` for each direct child."""
        for child in self._children:
            yield child, {}

    def iter_links(self) -> Iterator[tuple[Node, Node, dict[str, Any]]]:
        """Yield ``(before, after, metadata)`` for each ordering between direct children."""
        return iter(())

    def _raw_links(self) -> Iterator[tuple[Node, Node, dict[str, Any]]]:
        """Like iter_links, but the metadata are the flow's own dicts (for the compiler)."""
        return self.iter_links()

    @property
    def provides(self) -> frozenset[str]:
        """Names the flow's atoms (and its retry) make available to what follows."""
        names: set[str] = set()
        if self.retry is not None:
            names.update(self.retry.provides)
        for child in self._children:
            names.update(child.provides)
        return frozenset(names)

    @property
    def requires(self) -> frozenset[str]:
        """Names the flow needs from outside itself."""
        raise NotImplementedError

    def _retry_requires(self, needed: set[str]) -> frozenset[str]:
        if self.retry is not None:
            needed.update(self.retry.requires)
            needed.difference_update(self.retry.provides - self.retry.requires)
        return frozenset(needed)

    def __repr__(self) -> str:
        return f"{type(self).__name__}: {self.name}(len={len(self)})"

    __str__ = __repr__


class LinearFlow(Flow):
    """Children run one after another; each may use what earlier siblings provide."""

    def iter_links(self) -> Iterator[tuple[Node, Node, dict[str, Any]]]:
        for before, after in zip(self._children, self._children[1:], strict=False):
            yield before, after, {LINK_INVARIANT: True}

    @property
    def requires(self) -> frozenset[str]:
        provided: set[str] = set()
        if self.retry is not None:
            provided.update(self.retry.provides)
        needed: set[str] = set()
        for child in self._children:
            needed.update(child.requires - provided)
            provided.update(child.provides)
        if self.retry is not None:
            needed.update(self.retry.requires)
        return frozenset(needed)


class UnorderedFlow(Flow):
    """Children are independent and may run in any order or at once.

    Siblings do not satisfy each other's requirements: each child's requirements
    must come from before the flow.
    """

    @property
    def requires(self) -> frozenset[str]:
        needed: set[str] = set()
        for child in self._children:
            needed.update(child.requires)
        provided_by_retry = self.retry.provides if self.retry is not None else frozenset()
        return self._retry_requires(needed - provided_by_retry)


class GraphFlow(Flow):
    """Children ordered by links: inferred from provides/requires, or given with ``link()``."""

    def __init__(self, name: str, retry: Atom | None = None) -> None:
        super().__init__(name, retry)
        self._succ: dict[int, dict[int, dict[str, Any]]] = {}
        self._pred: dict[int, dict[int, dict[str, Any]]] = {}
        self._by_id: dict[int, Node] = {}
        self._providers: dict[str, list[Node]] = {}
        self._requirers: dict[str, list[Node]] = {}
        # insertion sequence of each node, and whether every link so far points from an
        # earlier node to a later one (then insertion order is a topological order)
        self._seq: dict[int, int] = {}
        self._forward = True

    def add(
        self, *items: Node, resolve_requires: bool = True, resolve_existing: bool = True
    ) -> Self:
        """Add nodes, linking providers to the nodes that require what they provide.

        ``resolve_requires`` links new nodes after existing nodes providing their
        requirements; ``resolve_existing`` links existing nodes that require what new
        nodes provide after them. Refuses, without changing the flow, nodes whose
        inferred links would be ambiguous or would close a cycle.
        """
        nodes = self._admit(items)
        try:
            for node in nodes:
                self._insert(node, resolve_requires, resolve_existing)
        except BaseException:
            for node in nodes:
                self._remove(node)
            raise
        return self

    def _insert(self, node: Node, resolve_requires: bool, resolve_existing: bool) -> None:
        key = id(node)
        self._seq[key] = len(self._seq)
        self._by_id[key] = node
        self._succ[key] = {}
        self._pred[key] = {}
        self._children.append(node)
        incoming: dict[int, set[str]] = {}
        outgoing: dict[int, set[str]] = {}
        wants = node.requires | _optional_of(node)
        if resolve_requires:
            for name in wants:
                providers = [p for p in self._providers.get(name, ()) if p is not node]
                if len(providers) > 1:
                    raise AmbiguousProviderError(
                        f"graph flow {self.name!r}: {_kind(node)} {node.name!r} requires "
                        f"{name!r}, which several nodes provide: "
                        f"{sorted(p.name for p in providers)}; rename one with provides=/rebind="
                    )
                if providers:
                    incoming.setdefault(id(providers[0]), set()).add(name)
        if resolve_existing:
            for name in node.provides:
                for other in self._requirers.get(name, ()):
                    if other is node:
                        continue
                    rivals = [p for p in self._providers.get(name, ()) if p is not other]
                    if rivals:
                        raise AmbiguousProviderError(
                            f"graph flow {self.name!r}: {_kind(other)} {other.name!r} requires "
                            f"{name!r}, which both {rivals[0].name!r} and {node.name!r} "
                            "provide; rename one with provides=/rebind="
                        )
                    outgoing.setdefault(id(other), set()).add(name)
        for name in node.provides:
            self._providers.setdefault(name, []).append(node)
        for name in wants:
            self._requirers.setdefault(name, []).append(node)
        if incoming and outgoing:
            self._refuse_cycle(node, list(outgoing), list(incoming))
        for src, reasons in incoming.items():
            self._connect(src, key, {LINK_REASONS: reasons})
        for dst, reasons in outgoing.items():
            self._connect(key, dst, {LINK_REASONS: reasons})

    def _remove(self, node: Node) -> None:
        key = id(node)
        if key not in self._by_id:
            self._ids.discard(key)
            return
        for dst in self._succ.pop(key, {}):
            self._pred[dst].pop(key, None)
        for src in self._pred.pop(key, {}):
            self._succ[src].pop(key, None)
        for index in (self._providers, self._requirers):
            for users in index.values():
                if node in users:
                    users.remove(node)
        del self._by_id[key]
        self._ids.discard(key)
        self._children.remove(node)
        self._seq = {id(child): i for i, child in enumerate(self._children)}

    def _connect(self, src: int, dst: int, meta: dict[str, Any]) -> None:
        if self._seq[src] > self._seq[dst]:
            self._forward = False
        existing = self._succ[src].get(dst)
        if existing is None:
            self._succ[src][dst] = meta
            self._pred[dst][src] = meta
            return
        reasons = meta.get(LINK_REASONS)
        if reasons:
            existing.setdefault(LINK_REASONS, set()).update(reasons)
        for k, v in meta.items():
            if k != LINK_REASONS:
                existing[k] = v

    def _reaches(self, sources: Iterable[int], targets: set[int]) -> bool:
        seen: set[int] = set()
        queue = deque(sources)
        while queue:
            key = queue.popleft()
            if key in targets:
                return True
            if key in seen:
                continue
            seen.add(key)
            queue.extend(self._succ[key])
        return False

    def _refuse_cycle(self, node: Node, after: list[int], before: list[int]) -> None:
        if self._reaches(after, set(before)):
            raise CycleError(
                f"graph flow {self.name!r}: adding {_kind(node)} {node.name!r} would create a "
                "cycle through what it requires and provides"
            )

    def link(
        self,
        u: Node,
        v: Node,
        decider: Decider | None = None,
        decider_depth: str | None = None,
    ) -> Self:
        """Make ``v`` run after ``u``; with ``decider``, ``v`` runs only if it says yes.

        The decider gets the results of ``u`` and its predecessors (name -> result);
        when it returns False, ``v`` and what follows it (as far as ``decider_depth``
        says) are IGNOREd.
        """
        for node in (u, v):
            if id(node) not in self._by_id:
                raise NotFoundError(
                    f"graph flow {self.name!r}: {node!r} is not in this flow; add() it before "
                    "linking it"
                )
        if u is v:
            raise CycleError(f"graph flow {self.name!r}: cannot link {u.name!r} to itself")
        if self._reaches([id(v)], {id(u)}):
            raise CycleError(
                f"graph flow {self.name!r}: linking {u.name!r} -> {v.name!r} would create a cycle"
            )
        meta: dict[str, Any] = {LINK_MANUAL: True}
        if decider is None and decider_depth is not None:
            raise ValueError(
                f"graph flow {self.name!r}: decider_depth={decider_depth!r} needs a decider= "
                "to go with it"
            )
        if decider is not None:
            if not callable(decider):
                raise TypeError(f"graph flow {self.name!r}: decider {decider!r} is not callable")
            meta[LINK_DECIDER] = decider
            if decider_depth is not None:
                meta[LINK_DECIDER_DEPTH] = DeciderDepth.translate(decider_depth)
        self._connect(id(u), id(v), meta)
        return self

    def iter_links(self) -> Iterator[tuple[Node, Node, dict[str, Any]]]:
        for u, v, meta in self._raw_links():
            yield u, v, dict(meta)

    def _raw_links(self) -> Iterator[tuple[Node, Node, dict[str, Any]]]:
        by_id = self._by_id
        for src, targets in self._succ.items():
            for dst, meta in targets.items():
                yield by_id[src], by_id[dst], meta

    def successors(self, node: Node) -> list[Node]:
        """The nodes linked directly after ``node``."""
        return [self._by_id[k] for k in self._succ.get(id(node), {})]

    def predecessors(self, node: Node) -> list[Node]:
        """The nodes linked directly before ``node``."""
        return [self._by_id[k] for k in self._pred.get(id(node), {})]

    def link_meta(self, u: Node, v: Node) -> dict[str, Any] | None:
        """The metadata of the link ``u -> v``, or None if there is none."""
        return self._succ.get(id(u), {}).get(id(v))

    @property
    def requires(self) -> frozenset[str]:
        needed: set[str] = set()
        for child in self._children:
            satisfied: set[str] = set()
            for meta in self._pred[id(child)].values():
                satisfied.update(meta.get(LINK_REASONS, ()))
            needed.update(child.requires - satisfied)
        provided_by_retry = self.retry.provides if self.retry is not None else frozenset()
        return self._retry_requires(needed - provided_by_retry)


class TargetedFlow(GraphFlow):
    """A graph flow that can be told to run only one target node and what it needs."""

    def __init__(self, name: str, retry: Atom | None = None) -> None:
        super().__init__(name, retry)
        self._target: Node | None = None

    def set_target(self, target: Node) -> None:
        """Run only ``target`` and the nodes it (transitively) follows."""
        if id(target) not in self._by_id:
            raise NotFoundError(
                f"targeted flow {self.name!r}: target {target!r} is not in this flow"
            )
        self._target = target

    def reset_target(self) -> None:
        """Run every node again."""
        self._target = None

    def _kept(self) -> set[int] | None:
        if self._target is None:
            return None
        kept: set[int] = set()
        queue = deque([id(self._target)])
        while queue:
            key = queue.popleft()
            if key not in kept:
                kept.add(key)
                queue.extend(self._pred[key])
        return kept

    def iter_nodes(self) -> Iterator[tuple[Node, dict[str, Any]]]:
        kept = self._kept()
        for child in self._children:
            if kept is None or id(child) in kept:
                yield child, {}

    def _raw_links(self) -> Iterator[tuple[Node, Node, dict[str, Any]]]:
        kept = self._kept()
        for u, v, meta in super()._raw_links():
            if kept is None or (id(u) in kept and id(v) in kept):
                yield u, v, meta

    def __len__(self) -> int:
        kept = self._kept()
        return len(self._children) if kept is None else len(kept)


def _optional_of(node: Node) -> frozenset[str]:
    return node.optional if isinstance(node, Atom) else frozenset()


def _kind(node: Node) -> str:
    return "atom" if isinstance(node, Atom) else "flow"
