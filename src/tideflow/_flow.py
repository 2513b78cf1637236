"""Flows: linear, unordered and graph patterns of atoms and subflows, nested to any depth.

A flow only describes; the compiler turns it into a plan. Flows check what can be
checked as they are built, and a refused ``add()``/``link()`` leaves the flow as it
was: an object added twice; a flow added to itself or to a flow nested in it (a
cycle of flows); in a graph flow, a link that would close a cycle, or two nodes
providing what a third requires.

Nothing here recurses over the flow tree: ``provides``/``requires`` and the cycle
check walk it with explicit stacks, so nesting depth is bounded by memory, not by
Python's recursion limit. Each flow keeps weak references to the flows it was added
to, so the cycle check can walk up from the receiving flow as well as down from the
added one, and stops when the shorter walk ends: building a deep nest from the
bottom up or from the top down costs constant time per ``add()``.
"""

from __future__ import annotations

import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Set
from typing import Any, Self, TypeAlias

from tideflow._task import Atom, never_initialised
from tideflow.errors import (
    AmbiguousProviderError,
    AtomReusedError,
    CycleError,
    InvalidArgumentError,
    NotInFlowError,
)

__all__ = ["Flow", "GraphFlow", "LinearFlow", "Node", "TargetedFlow", "UnorderedFlow"]

Node: TypeAlias = "Atom | Flow"
Decider: TypeAlias = Callable[[Mapping[str, Any]], bool]
_Part: TypeAlias = tuple[set[str], set[str]]  # (provides, requires) of one node

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
        name = getattr(value, "value", value)  # an enum member: its value
        if not isinstance(name, str):
            raise InvalidArgumentError(
                f"decider_depth must be a name (ALL, FLOW, NEIGHBORS or ATOM), got "
                f"{type(value).__name__} {value!r}"
            )
        if name.upper() not in (cls.ALL, cls.FLOW, cls.NEIGHBORS, cls.ATOM):
            raise InvalidArgumentError(
                f"unknown decider depth {value!r}; use ALL, FLOW, NEIGHBORS or ATOM"
            )
        return name.upper()


def _check_node(flow: Flow, item: object) -> Node:
    if isinstance(item, (Atom, Flow)):  # a tuple: faster than Atom | Flow
        if not hasattr(item, "name"):
            raise TypeError(f"flow {flow.name!r}: {never_initialised(item)}")
        return item
    if callable(item) and hasattr(item, "func") and hasattr(item, "defaults"):
        raise InvalidArgumentError(
            f"flow {flow.name!r}: {item!r} is a task factory made by @task; "
            "call it to make a task, e.g. flow.add(make_task())"
        )
    raise InvalidArgumentError(
        f"flow {flow.name!r} takes atoms (tasks, retries) and flows, got {type(item).__name__}"
    )


class Flow:
    """Base of all flow patterns: a name, an optional retry controller, and children."""

    def __init__(self, name: str, retry: Atom | None = None) -> None:
        if not isinstance(name, str):
            raise TypeError(f"a flow name must be a str, got {type(name).__name__}")
        if retry is not None and not (isinstance(retry, Atom) and retry._is_retry):
            raise TypeError(
                f"flow {name!r}: retry= takes a retry controller (an atom that guards the "
                f"flow and decides what to do when it fails), got {type(retry).__name__} "
                f"{retry!r}; to run a task in the flow, add() it"
            )
        self.name = name
        self.retry = retry
        self._children: list[Node] = []
        self._ids: set[int] = set()
        self._subflows: list[Flow] = []  # the children that are flows
        self._parents: list[weakref.ref[Flow]] = []  # flows this one was added to

    def _admit(self, items: Iterable[object]) -> list[Node]:
        """Check new children, changing nothing: refuse a non-node, one already in this
        flow, and a flow that is, or holds, this flow."""
        admitted: list[Node] = []
        fresh: set[int] = set()
        ids = self._ids
        for item in items:
            node = _check_node(self, item)
            key = id(node)
            if key in ids or key in fresh:
                what = _kind(node)
                raise AtomReusedError(
                    f"flow {self.name!r}: {what} {node.name!r} was added twice; "
                    f"each {what} object can appear once in a flow"
                )
            if not isinstance(node, Atom):
                _refuse_nesting(self, node)
            fresh.add(key)
            admitted.append(node)
        return admitted

    def _adopt(self, nodes: list[Node]) -> None:
        """Record ``nodes`` (already checked and placed in ``_children``) as children."""
        self._ids.update(map(id, nodes))
        for node in nodes:
            if not isinstance(node, Atom):
                self._subflows.append(node)
                node._parents.append(weakref.ref(self))

    def add(self, *items: Node) -> Self:
        """Add atoms or subflows; return the flow so calls chain.

        Refuses, leaving the flow unchanged, an object already in the flow, and a flow
        that is this flow or holds it (both AtomReusedError).
        """
        nodes = self._admit(items)
        self._children.extend(nodes)
        self._adopt(nodes)
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
        seen: set[int] = set()
        stack: list[Flow] = [self]
        while stack:  # no recursion: nesting may be deeper than Python's stack
            flow = stack.pop()
            if flow.retry is not None:
                names.update(flow.retry.save_as)
            for child in flow._children:
                if isinstance(child, Atom):
                    names.update(child.save_as)
                elif id(child) not in seen:
                    seen.add(id(child))
                    stack.append(child)
        return frozenset(names)

    @property
    def requires(self) -> frozenset[str]:
        """Names the flow needs from outside itself."""
        return frozenset(_summarize(self)[1])

    def _combine(self, parts: list[_Part]) -> _Part:
        """This flow's ``(provides, requires)`` from its children's, in child order.

        Each pattern says how its children's requirements combine. The sets in
        ``parts`` belong to this call, which may change and return them: merging the
        smaller into the larger keeps a whole tree's summary near-linear in its size
        (see :func:`_summarize`).
        """
        raise NotImplementedError(f"{type(self).__name__} must define requires")

    def _provides_with_retry(self, parts: list[_Part]) -> set[str]:
        sets = [gives for gives, _ in parts]
        if self.retry is not None:
            sets.append(set(self.retry.provides))
        return _union(sets)

    def _retry_requires(self, needed: set[str]) -> set[str]:
        """Take away what the retry provides, then add what it requires."""
        retry = self.retry
        if retry is not None:
            needed = _minus(needed, retry.provides)
            needed.update(retry.requires)
        return needed

    def __repr__(self) -> str:
        return f"{type(self).__name__}: {self.name}(len={len(self)})"

    __str__ = __repr__


class LinearFlow(Flow):
    """Children run one after another; each may use what earlier siblings provide."""

    def iter_links(self) -> Iterator[tuple[Node, Node, dict[str, Any]]]:
        for before, after in zip(self._children, self._children[1:], strict=False):
            yield before, after, {LINK_INVARIANT: True}

    def _combine(self, parts: list[_Part]) -> _Part:
        retry = self.retry
        provided: set[str] = set(retry.provides) if retry is not None else set()
        needed: list[set[str]] = []
        for gives, wants in parts:
            needed.append(_minus(wants, provided))
            provided = _union([provided, gives])
        if retry is not None:
            needed.append(set(retry.requires))
        return provided, _union(needed)


class UnorderedFlow(Flow):
    """Children are independent and may run in any order or at once.

    Siblings do not satisfy each other's requirements: each child's requirements
    must come from before the flow.
    """

    def _combine(self, parts: list[_Part]) -> _Part:
        needed = _union([wants for _, wants in parts])
        return self._provides_with_retry(parts), self._retry_requires(needed)


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
        count, forward = len(self._children), self._forward
        try:
            for node in nodes:
                self._insert(node, resolve_requires, resolve_existing)
        except BaseException:
            self._truncate(count, forward)
            raise
        self._adopt(nodes)
        return self

    def _insert(self, node: Node, resolve_requires: bool, resolve_existing: bool) -> None:
        # runs once per node of every graph flow built: kept to plain dict work
        key = id(node)
        succ, pred = self._succ, self._pred
        self._seq[key] = len(self._children)
        self._by_id[key] = node
        succ[key] = {}
        pred[key] = {}
        self._children.append(node)
        gives, wants = _names(node)
        providers, requirers = self._providers, self._requirers
        # each name is looked up once: resolved against what is there, then indexed
        # (the node's own names are indexed after its lookups, so it never links to itself)
        incoming: dict[int, set[str]] = {}
        for name in wants:
            found = providers.get(name)
            if found is not None and resolve_requires:
                if len(found) > 1:
                    raise AmbiguousProviderError(
                        f"graph flow {self.name!r}: {_kind(node)} {node.name!r} requires "
                        f"{name!r}, which several nodes provide: "
                        f"{sorted(p.name for p in found)}; rename one with provides=/rebind="
                    )
                src = id(found[0])
                reasons = incoming.get(src)
                if reasons is None:
                    incoming[src] = {name}
                else:
                    reasons.add(name)
            users = requirers.get(name)
            if users is None:
                requirers[name] = [node]
            else:
                users.append(node)
        outgoing: dict[int, set[str]] = {}
        for name in gives:
            found = providers.get(name)
            if resolve_existing:
                for other in requirers.get(name, ()):
                    if other is node:
                        continue
                    if found is not None:
                        rivals = [p for p in found if p is not other]
                        if rivals:
                            raise AmbiguousProviderError(
                                f"graph flow {self.name!r}: {_kind(other)} {other.name!r} "
                                f"requires {name!r}, which both {rivals[0].name!r} and "
                                f"{node.name!r} provide; rename one with provides=/rebind="
                            )
                    outgoing.setdefault(id(other), set()).add(name)
            if found is None:
                providers[name] = [node]
            else:
                found.append(node)
        if incoming and outgoing:
            self._refuse_cycle(node, list(outgoing), list(incoming))
        # the node is new, so none of these links exists yet
        mine = pred[key]
        for src, reasons in incoming.items():
            mine[src] = succ[src][key] = {LINK_REASONS: reasons}
        if outgoing:
            self._forward = False  # links to earlier nodes: insertion order is not topological
            mine = succ[key]
            for dst, reasons in outgoing.items():
                mine[dst] = pred[dst][key] = {LINK_REASONS: reasons}

    def _truncate(self, count: int, forward: bool) -> None:
        """Forget every node after the first ``count``: undo a refused ``add()``.

        The nodes went in last, so each index holds them at its tail; the cost is
        that of the nodes removed, not of the flow.
        """
        gone = self._children[count:]
        del self._children[count:]
        keys = {id(node) for node in gone}
        succ, pred = self._succ, self._pred
        for node in gone:
            key = id(node)
            del self._by_id[key], self._seq[key]
            for dst in succ.pop(key):
                if dst not in keys:
                    del pred[dst][key]
            for src in pred.pop(key):
                if src not in keys:
                    del succ[src][key]
            gives, wants = _names(node)
            for index, names in ((self._providers, gives), (self._requirers, wants)):
                for name in names:
                    users = index.get(name)
                    while users and id(users[-1]) in keys:
                        users.pop()
                    if users == []:
                        del index[name]
        self._forward = forward

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
                raise NotInFlowError(
                    f"graph flow {self.name!r}: {node!r} is not in this flow; add() it before "
                    "linking it"
                )
        if u is v:
            raise CycleError(f"graph flow {self.name!r}: cannot link {u.name!r} to itself")
        # while every link points from an earlier node to a later one, a link that
        # does too cannot close a cycle: no search needed
        forward = self._forward and self._seq[id(u)] < self._seq[id(v)]
        if not forward and self._reaches([id(v)], {id(u)}):
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
                raise InvalidArgumentError(
                    f"graph flow {self.name!r}: decider {decider!r} is not callable"
                )
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

    def _combine(self, parts: list[_Part]) -> _Part:
        needed: list[set[str]] = []
        pred = self._pred
        for child, (_, wants) in zip(self._children, parts, strict=True):
            satisfied: set[str] = set()
            for meta in pred[id(child)].values():
                satisfied.update(meta.get(LINK_REASONS, ()))
            needed.append(_minus(wants, satisfied))
        return self._provides_with_retry(parts), self._retry_requires(_union(needed))


class TargetedFlow(GraphFlow):
    """A graph flow that can be told to run only one target node and what it needs."""

    def __init__(self, name: str, retry: Atom | None = None) -> None:
        super().__init__(name, retry)
        self._target: Node | None = None

    def set_target(self, target: Node) -> None:
        """Run only ``target`` and the nodes it (transitively) follows."""
        if id(target) not in self._by_id:
            raise NotInFlowError(
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


def _union(sets: list[set[str]]) -> set[str]:
    """The union of ``sets`` (which it may change), built in the largest of them.

    Each name is copied only into a set at least as large as the one it came from,
    so merging a whole tree this way costs O(n log n), not O(n x depth).
    """
    if not sets:
        return set()
    base = max(sets, key=len)
    for other in sets:
        if other is not base:
            base.update(other)
    return base


def _minus(names: set[str], taken: Set[str]) -> set[str]:
    """``names - taken``, changing ``names``; costs the smaller of the two sizes."""
    if len(taken) < len(names):
        names.difference_update(taken)
        return names
    return {name for name in names if name not in taken}


def _summarize(root: Flow) -> _Part:
    """``(provides, requires)`` of ``root``, computed without recursion.

    An explicit post-order walk summarises each flow once, after its subflows, and
    hands each summary to its parent to merge (a flow added to several flows hands
    out copies). Atoms' names are merged smaller-into-larger (:func:`_union`), so
    the cost is near-linear in the tree, whatever its depth or shape.
    """
    done: dict[int, _Part] = {}  # summaries not yet handed to their parent
    finished: set[int] = set()
    expanded: set[int] = set()
    stack: list[Flow] = [root]
    while stack:
        flow = stack[-1]
        key = id(flow)
        if key in finished:  # a flow in several flows, already summarised
            stack.pop()
            continue
        if key not in expanded:
            expanded.add(key)
            stack.extend(sub for sub in flow._subflows if id(sub) not in finished)
            continue
        stack.pop()
        finished.add(key)
        parts: list[_Part] = []
        for child in flow._children:
            if isinstance(child, Atom):
                parts.append((set(child.save_as), set(child.requires)))
            elif len(child._parents) > 1:
                gives, wants = done[id(child)]
                parts.append((set(gives), set(wants)))
            else:
                parts.append(done.pop(id(child)))
        if type(flow).requires is Flow.requires:
            done[key] = flow._combine(parts)
        else:  # a pattern defined outside tideflow, with its own rule
            done[key] = (flow._provides_with_retry(parts), set(flow.requires))
    return done[id(root)]


def _refuse_nesting(parent: Flow, child: Flow) -> None:
    """Raise AtomReusedError if adding ``child`` to ``parent`` would nest a flow in itself.

    That happens when ``parent`` is ``child`` or is nested in it. Two walks answer it:
    down from ``child`` through its subflows, and up from ``parent`` through the flows
    it was added to. They take turns, one flow each, and the first to run out settles
    the question, so the cost is that of the shorter walk.
    """
    if parent is child:
        raise AtomReusedError(
            f"flow {parent.name!r} cannot contain itself; add its atoms or another flow"
        )
    down: list[Flow] = [child]
    up: list[Flow] = [parent]
    below = {id(child)}
    above = {id(parent)}
    while down and up:
        for sub in down.pop()._subflows:
            if sub is parent:
                _raise_nesting_cycle(parent, child)
            if id(sub) not in below:
                below.add(id(sub))
                down.append(sub)
        for ref in up.pop()._parents:
            holder = ref()
            if holder is None:
                continue
            if holder is child:
                _raise_nesting_cycle(parent, child)
            if id(holder) not in above:
                above.add(id(holder))
                up.append(holder)


def _raise_nesting_cycle(parent: Flow, child: Flow) -> None:
    raise AtomReusedError(
        f"flow {parent.name!r} cannot contain flow {child.name!r}: {child.name!r} already "
        f"contains {parent.name!r}, so adding it would create a cycle of flows"
    )


def _names(node: Node) -> tuple[Set[str], Set[str]]:
    """What a graph node provides, and what it uses (an atom's optional names too)."""
    if isinstance(node, Atom):
        return node.save_as.keys(), node.requires | node._args.optional
    return _summarize(node)


def _kind(node: Node) -> str:
    return "atom" if isinstance(node, Atom) else "flow"
