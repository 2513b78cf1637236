"""Compile a flow into a Plan: flat integer-indexed arrays, with every argument resolved.

Each atom becomes a node; each flow adds two bookkeeping nodes, its *start* and
*end*, so that ordering between a subflow and its siblings costs two edges rather
than one edge per pair of atoms. Edges come from the patterns: a linear flow chains
its children, an unordered flow fans out from start to end, a graph flow keeps its
links. The whole compile is linear in atoms + edges.

Arguments are resolved here, once: for each parameter of each atom, the nearest
preceding atom in scope that provides the symbol (``-1`` when none does; the store
or the atom's ``inject`` must then supply it at run time). Scope follows TaskFlow:
an atom sees what its preceding siblings provide (in a linear flow, every earlier
sibling; in a graph flow, its ancestors; in an unordered flow, none), recursively
through subflows and outwards through enclosing flows, nearest first.

A flow with a retry controller adds the controller as a third node, right after its
start and end nodes: the flow's first children follow it, so everything in the flow
depends on it and sees what it provides. A flow's nodes are numbered as one contiguous
range (depth first), entered only through its start node and left only through its end
node, so a controller's decisions (revert the flow, run it again) work on that range
(:meth:`Plan.scope`); :attr:`Plan.guards` says which controller decides about each node.

Depth costs nothing special: each flow is compiled by a generator that hands its
subflows to one driving loop (no recursion, so nesting is bounded by memory, not by
Python's stack), and a lookup starts from the latest provider of the symbol and
asks only the flows between it and the atom (no scope is copied when a flow starts
or undone when it ends).

No I/O, no engine: the compiler knows flows, atoms and nothing else.
"""

from __future__ import annotations

import functools
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Generator, Iterable
from operator import attrgetter
from typing import Any, Final, NamedTuple

from tideflow._flow import (
    LINK_DECIDER,
    LINK_DECIDER_DEPTH,
    LINK_REASONS,
    Flow,
    GraphFlow,
    LinearFlow,
    Node,
    UnorderedFlow,
)
from tideflow._log import logger
from tideflow._task import ArgMapping, Atom, Index
from tideflow.errors import (
    AtomReusedError,
    CycleError,
    DuplicateAtomError,
    MissingRequirementError,
)

__all__ = ["END", "RETRY", "START", "TASK", "Binding", "FlowInfo", "Plan", "compile_flow"]

#: Node kinds.
TASK: Final = 0
RETRY: Final = 1
START: Final = 2
END: Final = 3

NO_PROVIDER: Final = -1

#: A flow being compiled: yields (subflow, its parent's flow id) and is sent back the
#: subflow's (entry, exit) nodes; returns its own (entry, exit).
_Steps = Generator[tuple[Flow, int], tuple[int, int], tuple[int, int]]
_ChildSteps = Generator[tuple[Flow, int], tuple[int, int], None]


class Binding(NamedTuple):
    """How one parameter of an atom is filled at run time."""

    param: str
    symbol: str
    provider: int  # node providing ``symbol``, or NO_PROVIDER
    at: Index  # where ``symbol`` sits in the provider's result
    optional: bool


#: Binding((...)) without the Python-level __new__ a named tuple adds: one per argument.
_binding = functools.partial(tuple.__new__, Binding)


class FlowInfo:
    """One flow of the compiled tree.

    Nodes are numbered depth first, so a flow's nodes (its own start/end and all of
    its subflows' nodes) are exactly the indices ``start <= node < stop``.
    """

    __slots__ = ("end", "name", "parent", "retry", "start", "stop")

    def __init__(self, name: str, parent: int, start: int, end: int) -> None:
        self.name = name
        self.parent = parent  # index into Plan.flows, -1 for the root
        self.start = start
        self.end = end
        self.retry = -1  # the flow's retry controller (start + 2), or -1
        self.stop = 0  # set once the flow's last node is numbered

    def holds(self, node: int) -> bool:
        """Say whether ``node`` belongs to this flow (directly or through subflows)."""
        return self.start <= node < self.stop

    def __repr__(self) -> str:
        return f"FlowInfo({self.name!r}, nodes {self.start}..{self.stop - 1})"


class Decision(NamedTuple):
    """A decider on a graph link: it may IGNORE its target instead of running it."""

    decider: Callable[[dict[str, Any]], Any]
    depth: str  # DeciderDepth: ALL, FLOW, NEIGHBORS or ATOM
    flow: int  # the graph flow the link belongs to
    target_entry: int
    target_exit: int
    target_stop: int  # target's nodes are target_entry <= n < target_stop
    history: tuple[int, ...]  # atom nodes whose results the decider is shown


_PRIORITY = attrgetter("priority")


class Plan:
    """The compiled form of a flow: flat arrays indexed by node number.

    Built once by :func:`compile_flow` and never changed afterwards. (A plain class
    rather than a dataclass: importing dataclasses costs more than this file.)
    """

    __slots__ = (
        "args",
        "atom_nodes",
        "atoms",
        "decisions",
        "external",
        "flow",
        "flow_of",
        "flows",
        "guards",
        "index",
        "kinds",
        "names",
        "pred",
        "prioritized",
        "providers",
        "retries",
        "revert_args",
        "succ",
    )

    def __init__(self, flow: Flow, b: _Builder) -> None:
        self.flow = flow
        self.atoms: list[Atom | None] = b.atoms  # None for flow start/end nodes
        self.kinds = bytes(b.kinds)
        self.names: list[str] = b.names
        self.succ: list[list[int]] = b.succ
        self.pred: list[list[int]] = b.pred
        self.flow_of: list[int] = b.flow_of
        self.flows: list[FlowInfo] = b.flows
        self.args: list[tuple[Binding, ...]] = b.args
        self.revert_args: list[tuple[Binding, ...]] = b.revert_args
        #: atom name -> node
        self.index: dict[str, int] = b.index
        #: symbol -> atom nodes providing it, in plan order
        self.providers: dict[str, list[int]] = b.providers
        #: symbol -> [(atom name, flow name)] for required symbols no atom provides
        self.external: dict[str, list[tuple[str, str]]] = b.external
        self.atom_nodes: list[int] = b.atom_nodes
        #: entry node of a decided link's target -> the deciders to ask before it runs
        self.decisions: dict[int, list[Decision]] = b.decisions
        #: retry controller nodes, outermost first (empty: the run has no retries)
        self.retries: list[int] = b.retries
        #: node -> the controller asked first when it fails (-1: none); [] without retries
        self.guards: list[int] = _guards(self) if b.retries else []
        #: whether any atom has a priority (C-speed scan: ready work is then ordered)
        self.prioritized: bool = any(map(_PRIORITY, filter(None, b.atoms)))

    # -- the public view: what a plan says, in atom names ------------------------------

    def atom_order(self) -> dict[tuple[str, str], frozenset[str]]:
        """Every ordering the engine keeps between two atoms, by name.

        ``{(before, after): symbols}``: ``after`` never starts before ``before``
        succeeded. The edges are those of the plan with the start/end nodes each flow
        adds collapsed away (so a linear flow of three atoms gives two edges, and an
        atom after an unordered flow follows each of its children); ``symbols`` names
        the values ``after`` takes from ``before``'s result (empty for order alone).
        Public and stable: what ``tideflow graph`` draws.
        """
        atoms, succ = self.atoms, self.succ
        # reach[n]: the atom nodes a bookkeeping node n leads to through bookkeeping nodes
        # only; worked out once each, without recursion (flows nest to any depth)
        reach: dict[int, frozenset[int]] = {}

        def atoms_after(node: int) -> frozenset[int]:
            found: set[int] = set()
            for nxt in succ[node]:
                if atoms[nxt] is not None:
                    found.add(nxt)
                else:
                    _reach_from(nxt)
                    found |= reach[nxt]
            return frozenset(found)

        def _reach_from(start: int) -> None:
            stack = [start]
            while stack:
                node = stack[-1]
                if node in reach:
                    stack.pop()
                    continue
                pending = [n for n in succ[node] if atoms[n] is None and n not in reach]
                if pending:
                    stack.extend(pending)
                    continue
                stack.pop()
                found: set[int] = set()
                for nxt in succ[node]:
                    found |= {nxt} if atoms[nxt] is not None else reach[nxt]
                reach[node] = frozenset(found)

        order: dict[tuple[str, str], set[str]] = {}
        for node in self.atom_nodes:
            before = atoms[node]
            assert before is not None
            for after in sorted(atoms_after(node)):
                order[(before.name, atoms[after].name)] = set()  # type: ignore[union-attr]
        for node in self.atom_nodes:
            after_atom = atoms[node]
            assert after_atom is not None
            for binding in self.args[node]:
                if binding.provider >= 0:
                    provider = atoms[binding.provider]
                    assert provider is not None
                    order.setdefault((provider.name, after_atom.name), set()).add(binding.symbol)
        return {edge: frozenset(symbols) for edge, symbols in order.items()}

    def store_requirements(self) -> dict[str, list[str]]:
        """``{symbol: [atom names]}``: what must come from the run's store (no atom
        provides it), and which atoms need it. Public and stable."""
        return {symbol: sorted(a for a, _ in users) for symbol, users in self.external.items()}

    def scope(self, retry: int) -> tuple[int, int]:
        """The nodes a retry controller's decisions work on: ``lo <= n < hi``.

        Its flow's nodes after the flow's start node: the end node, the controller,
        and every node of the flow's children.
        """
        info = self.flows[self.flow_of[retry]]
        return info.start + 1, info.stop

    @property
    def size(self) -> int:
        """Number of nodes, bookkeeping nodes included."""
        return len(self.kinds)

    @property
    def edge_count(self) -> int:
        """Number of edges."""
        return sum(len(s) for s in self.succ)

    def check_requirements(self, available: Iterable[str]) -> None:
        """Raise MissingRequirementError unless ``available`` covers every external symbol."""
        if not self.external:
            return
        have = set(available)
        missing = {s: users for s, users in self.external.items() if s not in have}
        if not missing:
            return
        lines = []
        for symbol in sorted(missing):
            for atom, flow in missing[symbol]:
                lines.append(f"atom {atom!r} (in flow {flow!r}) requires {symbol!r}")
        first_atom = missing[min(missing)][0][0]
        raise MissingRequirementError(
            "nothing provides what these atoms require: "
            + "; ".join(lines)
            + ". Pass the values in store=, inject= them, or add an atom that provides them "
            "before their users",
            atom=first_atom,
            missing=sorted(missing),
            flow=self.flows[0].name,
        )


class _Builder:
    """Walks a flow tree once, appending nodes, edges and bindings."""

    def __init__(self) -> None:
        self.atoms: list[Atom | None] = []
        self.kinds = bytearray()
        self.names: list[str] = []
        self.succ: list[list[int]] = []
        self.pred: list[list[int]] = []
        self.flow_of: list[int] = []
        self.flows: list[FlowInfo] = []
        self.args: list[tuple[Binding, ...]] = []
        self.revert_args: list[tuple[Binding, ...]] = []
        self.index: dict[str, int] = {}
        self.seen: dict[int, int] = {}  # flow visited -> its parent (atoms: by name)
        self.providers: dict[str, list[int]] = {}
        self.external: dict[str, list[tuple[str, str]]] = {}
        self.atom_nodes: list[int] = []
        self.decisions: dict[int, list[Decision]] = {}
        self.retries: list[int] = []
        # the flows being compiled, outermost first, and their start nodes (ascending)
        self.scopes: list[_Scope] = []
        self.scope_starts: list[int] = []
        self.unordered: set[int] = set()  # ids of the unordered flows
        self.checked: set[tuple[int, int]] = set()  # provider pairs already checked

    # -- nodes and edges ------------------------------------------------------------

    def _node(self, atom: Atom | None, kind: int, name: str, flow_id: int) -> int:
        node = len(self.kinds)
        self.atoms.append(atom)
        self.kinds.append(kind)
        self.names.append(name)
        self.succ.append([])
        self.pred.append([])
        self.flow_of.append(flow_id)
        self.args.append(())
        self.revert_args.append(())
        return node

    def _edge(self, u: int, v: int) -> None:
        self.succ[u].append(v)
        self.pred[v].append(u)

    # -- scope ----------------------------------------------------------------------

    def _lookup(self, symbol: str) -> int:
        """The provider of ``symbol`` nearest the atom being added, or NO_PROVIDER.

        Candidates are the atoms providing ``symbol`` so far, latest first (nodes are
        numbered in compile order). The latest one, ``p``, is judged by the innermost
        flow still being compiled that holds it: a linear flow shows it (it sits in an
        earlier child's subtree); a graph flow shows what :meth:`_Scope.resolve`
        picks; otherwise nothing in that flow is visible, and the search jumps to the
        latest provider before the flow began. Each step leaves a flow behind and no
        scope is ever copied or undone, so deep nests of any pattern compile in time
        near-linear in their size.
        """
        nodes = self.providers.get(symbol)
        if not nodes:
            return NO_PROVIDER
        scopes, starts = self.scopes, self.scope_starts
        i = len(nodes) - 1
        k = len(scopes) - 1
        while True:
            p = nodes[i]
            if starts[k] > p:
                k = bisect_right(starts, p, 0, k) - 1
            scope = scopes[k]
            if scope.linear and i > 0 and self.unordered:
                self._warn_if_unordered(nodes[i - 1], p, symbol)
            if scope.linear or p == scope.start:
                return p  # a graph flow's start is its retry controller: everyone sees it
            found = scope.resolve(nodes, i, symbol)
            if found != NO_PROVIDER:
                return found
            i = bisect_left(nodes, scope.start, 0, i)
            if nodes[i] == scope.start:
                return nodes[i]  # the flow's retry controller provides it
            i -= 1
            if i < 0 or k == 0:
                return NO_PROVIDER
            k -= 1

    def _warn_if_unordered(self, q: int, p: int, symbol: str) -> None:
        """Warn when ``p`` and the provider before it, ``q``, are unordered siblings.

        An atom after an unordered flow whose children both provide ``symbol`` gets the
        value of the one added last, ``p``, as in TaskFlow; that is accepted, and said.
        """
        # each pair once: the walk up costs the depth between them, and every later
        # user of the symbol asks about the same pair
        if (q, p) in self.checked:
            return
        self.checked.add((q, p))
        flows, f = self.flows, self.flow_of[p]
        while flows[f].start > q:  # up to the innermost flow holding both
            f = flows[f].parent
        if f in self.unordered:
            logger("tideflow.compiler").warning(
                "unordered flow %r has two atoms providing %r, %r and %r; what follows it "
                "gets the value of %r, the one added last (as in TaskFlow). Give them "
                "different names (provides= or rebind=) to choose",
                flows[f].name,
                symbol,
                self.names[q],
                self.names[p],
                self.names[p],
            )

    def _open(self, scope: _Scope) -> None:
        self.scopes.append(scope)
        self.scope_starts.append(scope.start)

    def _close(self) -> None:
        self.scopes.pop()
        self.scope_starts.pop()

    # -- atoms ----------------------------------------------------------------------

    def _bind(self, atom: Atom, mapping: ArgMapping, flow_id: int) -> tuple[Binding, ...]:
        """Resolve each parameter to its nearest visible provider (or to the store)."""
        flow_name = self.flows[flow_id].name
        inject = atom.inject or {}
        lookup = self._lookup
        bindings = []
        for param, symbol in mapping.mapping.items():
            optional = symbol not in mapping.required
            provider = lookup(symbol)
            index: Index = None
            if provider != NO_PROVIDER:
                provider_atom = self.atoms[provider]
                assert provider_atom is not None
                index = provider_atom.save_as[symbol]
            elif not optional and symbol not in inject:
                users = self.external.setdefault(symbol, [])
                if not users or users[-1] != (atom.name, flow_name):
                    users.append((atom.name, flow_name))
            bindings.append(_binding((param, symbol, provider, index, optional)))
        return tuple(bindings)

    def _atom(self, atom: Atom, flow_id: int) -> int:
        """Add one atom, resolving its arguments against what it can see."""
        name = atom.name
        index = self.index
        if name in index:
            self._refuse_duplicate(atom, index[name], flow_id)
        # _node, inlined: this runs once per atom of every compiled flow
        node = len(self.kinds)
        self.atoms.append(atom)
        self.kinds.append(RETRY if atom._is_retry else TASK)
        self.names.append(name)
        self.succ.append([])
        self.pred.append([])
        self.flow_of.append(flow_id)
        index[name] = node
        self.atom_nodes.append(node)
        mapping = atom._args
        self.args.append(self._bind(atom, mapping, flow_id) if mapping.mapping else ())
        mapping = atom._revert_args
        self.revert_args.append(self._bind(atom, mapping, flow_id) if mapping.mapping else ())
        if atom.save_as:
            providers = self.providers
            for symbol in atom.save_as:
                found = providers.get(symbol)
                if found is None:
                    providers[symbol] = [node]
                else:
                    found.append(node)
        return node

    def _in_flows(self, first: int, second: int) -> str:
        """Name the flow(s) two duplicates sit in: once when both are in one flow."""
        if first == second:
            return f"in flow {self.flows[first].name!r}"
        return f"in flows {self.flows[first].name!r} and {self.flows[second].name!r}"

    def _refuse_duplicate(self, atom: Atom, first: int, flow_id: int) -> None:
        """Raise DuplicateAtomError for ``atom``, whose name node ``first`` already has."""
        name = atom.name
        where = self._in_flows(self.flow_of[first], flow_id)
        if self.atoms[first] is atom:
            raise AtomReusedError(
                f"atom {name!r} appears more than once in flow {self.flows[0].name!r} "
                f"({where}); an atom object can be used once: create another instance"
            )
        raise DuplicateAtomError(
            f"two atoms are named {name!r} ({where}); atom names must be unique in a "
            "flow: pass name= to one"
        )

    # -- flows ----------------------------------------------------------------------

    def visit(self, item: Node, flow_id: int) -> tuple[int, int]:
        """Add ``item``; return its entry and exit nodes."""
        if isinstance(item, Atom):
            node = self._atom(item, flow_id)
            return node, node
        return self._flows(item, flow_id)

    def _flows(self, root: Flow, parent: int) -> tuple[int, int]:
        """Add ``root`` and every flow nested in it, without recursion.

        Each flow is compiled by a generator (:meth:`_flow`) that yields a subflow
        when it needs that subflow's entry and exit nodes; this loop compiles the
        subflow and sends them back. Nesting depth costs heap, not Python's stack,
        so a flow nested 100,000 deep compiles like a flat one.
        """
        stack: list[_Steps] = []
        steps = self._flow(root, parent)
        sent: Any = None  # a fresh generator must be sent None first
        while True:
            try:
                child, flow_id = steps.send(sent)
            except StopIteration as done:
                if not stack:
                    result: tuple[int, int] = done.value
                    return result
                steps = stack.pop()
                sent = done.value
                continue
            stack.append(steps)
            steps = self._flow(child, flow_id)
            sent = None

    def _flow(self, flow: Flow, parent: int) -> _Steps:
        first = self.seen.get(id(flow))
        if first is not None:
            where = self._in_flows(first, parent)
            raise AtomReusedError(
                f"flow {flow.name!r} appears more than once in flow {self.flows[0].name!r} "
                f"({where}); a flow object can be used once: build another"
            )
        self.seen[id(flow)] = parent
        flow_id = len(self.flows)
        start = self._node(None, START, f"{flow.name}[start]", flow_id)
        end = self._node(None, END, f"{flow.name}[end]", flow_id)
        info = FlowInfo(flow.name, parent, start, end)
        self.flows.append(info)
        if isinstance(flow, UnorderedFlow):
            self.unordered.add(flow_id)
        # what the flow's first children follow: its start node, or its retry controller,
        # which runs first (everything in the flow depends on it, and sees what it provides)
        head = start
        if flow.retry is not None:
            head = info.retry = self._atom(flow.retry, flow_id)
            self._edge(start, head)
            self.retries.append(head)
        plain = type(flow).iter_nodes is Flow.iter_nodes  # children in insertion order
        children = list(flow) if plain else [child for child, _ in flow.iter_nodes()]
        if isinstance(flow, LinearFlow) and plain:
            # a linear flow in a linear flow shows what its parent shows and more:
            # one scope serves both
            scopes = self.scopes
            nested = bool(scopes) and scopes[-1].linear
            if not nested:
                self._open(_Scope(head, True))
            previous = head
            succ, pred = self.succ, self.pred
            for child in children:
                if isinstance(child, Atom):
                    entry = exit_ = self._atom(child, flow_id)
                else:
                    entry, exit_ = yield child, flow_id
                succ[previous].append(entry)
                pred[entry].append(previous)
                previous = exit_
            self._edge(previous, end)
            if not nested:
                self._close()
        elif type(flow) is GraphFlow and flow._forward:
            yield from self._graph_children(flow, flow_id, children, head, end)
        else:
            yield from self._dag_children(flow, flow_id, children, head, end)
        info.stop = len(self.kinds)
        return start, end

    def _graph_children(
        self, flow: GraphFlow, flow_id: int, children: list[Node], start: int, end: int
    ) -> _ChildSteps:
        """A graph flow whose insertion order is already topological: one pass, in order.

        The common case (nodes added after what they require) and the same result as
        :meth:`_dag_children`, which handles any order, but reading the graph flow's
        own link tables instead of re-deriving them: this runs once per graph node.
        """
        pos = {id(child): i for i, child in enumerate(children)}
        n = len(children)
        entries = [0] * n
        exits = [0] * n
        stops = [0] * n
        preds: list[list[int]] = [[] for _ in range(n)]
        decided: list[tuple[int, Callable[[dict[str, Any]], Any], str]] = []
        succ, pred = self.succ, self.pred
        graph_pred, graph_succ = flow._pred, flow._succ
        scope = _Scope(start, False, preds, entries, stops)
        self._open(scope)
        for c, child in enumerate(children):
            key = id(child)
            incoming = graph_pred[key]
            reasons: dict[str, int] | None = None
            if incoming:
                ps = preds[c] = [pos[k] for k in incoming]
                for k, meta in incoming.items():
                    if LINK_REASONS in meta:
                        if reasons is None:
                            reasons = {}
                        reasons.update(dict.fromkeys(meta[LINK_REASONS], pos[k]))
                    if LINK_DECIDER in meta:
                        depth = meta.get(LINK_DECIDER_DEPTH, "ALL")
                        decided.append((c, meta[LINK_DECIDER], depth))
            scope.enter(c, reasons)
            if isinstance(child, Atom):
                entry = exit_ = self._atom(child, flow_id)
            else:
                entry, exit_ = yield child, flow_id
            scope.done(c, entry)
            entries[c] = entry
            exits[c] = exit_
            stops[c] = len(self.kinds)
            if incoming:
                for p in ps:
                    before = exits[p]
                    succ[before].append(entry)
                    pred[entry].append(before)
            else:
                succ[start].append(entry)
                pred[entry].append(start)
            if not graph_succ[key]:
                succ[exit_].append(end)
                pred[end].append(exit_)
        self._close()
        if not children:
            self._edge(start, end)
        self._decisions(flow_id, children, preds, entries, exits, stops, decided)

    def _decisions(
        self,
        flow_id: int,
        children: list[Node],
        preds: list[list[int]],
        entries: list[int],
        exits: list[int],
        stops: list[int],
        decided: list[tuple[int, Callable[[dict[str, Any]], Any], str]],
    ) -> None:
        """Record the deciders on a flow's links."""
        for target, decider, depth in decided:
            history = tuple(exits[p] for p in preds[target] if isinstance(children[p], Atom))
            self.decisions.setdefault(entries[target], []).append(
                Decision(
                    decider,
                    depth,
                    flow_id,
                    entries[target],
                    exits[target],
                    stops[target],
                    history,
                )
            )

    def _dag_children(
        self, flow: Flow, flow_id: int, children: list[Node], start: int, end: int
    ) -> _ChildSteps:
        """Children ordered by the flow's links: each sees what its ancestors provide."""
        pos = {id(child): i for i, child in enumerate(children)}
        preds: list[list[int]] = [[] for _ in children]
        succs: list[list[int]] = [[] for _ in children]
        decided: list[tuple[int, Callable[[dict[str, Any]], Any], str]] = []
        # symbols a link was inferred for: its source is the consumer's provider
        reasoned: dict[int, dict[str, int]] = {}
        for u, v, meta in flow._raw_links():
            pu, pv = pos.get(id(u)), pos.get(id(v))
            if pu is None or pv is None:
                continue  # a targeted flow left one end out
            preds[pv].append(pu)
            succs[pu].append(pv)
            reasons = meta.get(LINK_REASONS)
            if reasons:
                reasoned.setdefault(pv, {}).update(dict.fromkeys(reasons, pu))
            if LINK_DECIDER in meta:
                decided.append((pv, meta[LINK_DECIDER], meta.get(LINK_DECIDER_DEPTH, "ALL")))
        order = _topological(len(children), preds, succs, flow.name)
        entries = [0] * len(children)
        exits = [0] * len(children)
        stops = [0] * len(children)
        scope = _Scope(start, False, preds, entries, stops)
        self._open(scope)
        for c in order:
            child = children[c]
            scope.enter(c, reasoned.get(c))
            if isinstance(child, Atom):
                entries[c] = exits[c] = self._atom(child, flow_id)
            else:
                entries[c], exits[c] = yield child, flow_id
            scope.done(c, entries[c])
            stops[c] = len(self.kinds)
        self._close()
        succ, pred = self.succ, self.pred
        for c in range(len(children)):
            entry, exit_ = entries[c], exits[c]
            if not preds[c]:
                succ[start].append(entry)
                pred[entry].append(start)
            for s in succs[c]:
                succ[exit_].append(entries[s])
                pred[entries[s]].append(exit_)
            if not succs[c]:
                succ[exit_].append(end)
                pred[end].append(exit_)
        if not children:
            self._edge(start, end)
        self._decisions(flow_id, children, preds, entries, exits, stops, decided)


class _Scope:
    """What one flow being compiled shows the atoms inside it (see ``_Builder._lookup``).

    A linear flow shows everything its earlier children provide. A graph (or
    unordered) flow shows a child what its ancestors in the flow provide: the
    provider a link was inferred for, else the latest-compiled direct predecessor
    providing the symbol, else the latest-compiled ancestor. Children are compiled
    in topological order, so each child's nodes form one range, after its
    predecessors' ranges. ``start`` is the flow's first node: its start node, or its
    retry controller, which every child sees.
    """

    __slots__ = (
        "ancestors",
        "child",
        "direct",
        "entries",
        "linear",
        "order",
        "preds",
        "ranks",
        "reasons",
        "start",
        "stops",
    )

    def __init__(
        self,
        start: int,
        linear: bool,
        preds: list[list[int]] | None = None,
        entries: list[int] | None = None,
        stops: list[int] | None = None,
    ) -> None:
        self.start = start
        self.linear = linear
        self.preds = preds or []  # child -> its predecessors (child indexes)
        self.entries = entries or []  # child -> its first node
        self.stops = stops or []  # child -> one past its last node
        self.ranks: list[int] = []  # first nodes of the children compiled, ascending
        self.order: list[int] = []  # ... and which child each is
        self.child = -1  # the child being compiled
        self.reasons: dict[str, int] | None = None  # its inferred links: symbol -> child
        self.direct: set[int] | None = None  # its predecessors, as a set (on demand)
        self.ancestors: set[int] | None = None  # all its ancestors (on demand)

    def enter(self, child: int, reasons: dict[str, int] | None) -> None:
        """Start compiling ``child``."""
        self.child = child
        self.reasons = reasons
        self.direct = self.ancestors = None

    def done(self, child: int, entry: int) -> None:
        """Note that ``child``, whose first node is ``entry``, is compiled."""
        self.ranks.append(entry)
        self.order.append(child)

    def resolve(self, nodes: list[int], i: int, symbol: str) -> int:
        """The provider of ``symbol`` the current child sees among its siblings.

        ``nodes`` lists the providers of ``symbol``, ascending; ``nodes[i]``, the
        latest so far, lies in an earlier-compiled child of this flow.
        """
        c = self.child
        preds = self.preds[c]
        if not preds:
            return NO_PROVIDER
        if self.reasons is not None:
            source = self.reasons.get(symbol)
            if source is not None:
                lo, hi = self.entries[source], self.stops[source]
                if lo <= nodes[i] < hi:
                    return nodes[i]
                j = bisect_left(nodes, hi, 0, i + 1) - 1
                if j >= 0 and nodes[j] >= lo:
                    return nodes[j]
        if self.direct is None:
            self.direct = set(preds)
        found = self._latest(nodes, i, self.direct)
        if found == NO_PROVIDER:
            if self.ancestors is None:
                self.ancestors = _ancestors(c, self.preds)
            found = self._latest(nodes, i, self.ancestors)
        return found

    def _latest(self, nodes: list[int], i: int, among: set[int]) -> int:
        """The latest of ``nodes[: i + 1]`` that lies inside one of the children ``among``."""
        ranks, order, start = self.ranks, self.order, self.start
        while i >= 0 and nodes[i] > start:
            if order[bisect_right(ranks, nodes[i]) - 1] in among:
                return nodes[i]
            i -= 1
        return NO_PROVIDER


def _guards(plan: Plan) -> list[int]:
    """For each node, the nearest retry controller that decides about its failure.

    A controller's own failure goes to the controller of an enclosing flow.
    """
    flows = plan.flows
    by_flow = [-1] * len(flows)
    for f, info in enumerate(flows):  # parents are numbered before their subflows
        inherited = by_flow[info.parent] if info.parent >= 0 else -1
        by_flow[f] = info.retry if info.retry >= 0 else inherited
    guards = [by_flow[f] for f in plan.flow_of]
    for info in flows:
        if info.retry >= 0:
            guards[info.retry] = by_flow[info.parent] if info.parent >= 0 else -1
    return guards


def _ancestors(c: int, preds: list[list[int]]) -> set[int]:
    seen: set[int] = set()
    queue = deque(preds[c])
    while queue:
        p = queue.popleft()
        if p not in seen:
            seen.add(p)
            queue.extend(preds[p])
    return seen


def _topological(n: int, preds: list[list[int]], succs: list[list[int]], name: str) -> list[int]:
    """Kahn's order, ties broken by insertion order; raise if the links form a cycle."""
    waiting = [len(p) for p in preds]
    queue = deque(i for i in range(n) if waiting[i] == 0)
    order: list[int] = []
    while queue:
        i = queue.popleft()
        order.append(i)
        for s in succs[i]:
            waiting[s] -= 1
            if waiting[s] == 0:
                queue.append(s)
    if len(order) != n:
        raise CycleError(f"flow {name!r}: its links form a cycle")
    return order


def compile_flow(flow: Flow) -> Plan:
    """Compile ``flow`` into a Plan, checking names and structure; nothing runs."""
    if not isinstance(flow, Flow):
        raise TypeError(f"expected a flow to compile, got {type(flow).__name__}")
    builder = _Builder()
    builder.visit(flow, -1)
    return Plan(flow, builder)


def _entry_atoms(plan: Plan, node: int, stop: int) -> list[int]:
    """The first atoms reached from ``node`` through flow start nodes only (below ``stop``)."""
    found: list[int] = []
    stack = [node]
    seen: set[int] = set()
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        if plan.kinds[n] < START:
            found.append(n)
        elif plan.kinds[n] == START:
            stack.extend(s for s in plan.succ[n] if s < stop)
    return found


def ignore_set(plan: Plan, decision: Decision) -> set[int]:
    """The atoms a refused decision IGNOREs, as far as its depth reaches.

    ALL: the target and everything after it, anywhere. FLOW: the target and what
    follows it inside the graph flow of the link. NEIGHBORS: the target (all of it,
    if a subflow) and the first atoms of what directly follows it. ATOM: the first
    atoms of the target only.
    """
    depth = decision.depth
    entry, stop = decision.target_entry, decision.target_stop
    if depth == "ATOM":
        return set(_entry_atoms(plan, entry, stop))
    if depth == "NEIGHBORS":
        marked = {n for n in range(entry, stop) if plan.kinds[n] < START}
        flow = plan.flows[decision.flow]
        for s in plan.succ[decision.target_exit]:
            if flow.holds(s) and s != flow.end:
                marked.update(_entry_atoms(plan, s, plan.size))
        return marked
    limit = plan.flows[decision.flow] if depth == "FLOW" else None
    marked = set()
    queue = deque([entry])
    seen = {entry}
    while queue:
        n = queue.popleft()
        if plan.kinds[n] < START:
            marked.add(n)
        if limit is not None and n == limit.end:
            continue
        for s in plan.succ[n]:
            if s not in seen and (limit is None or limit.holds(s)):
                seen.add(s)
                queue.append(s)
    return marked
