"""Readiness by counters: which nodes of a plan may run, and which may be reverted.

The scheduler is a pure decision structure over a :class:`~tideflow._compiler.Plan`.
Going forward, each node keeps the count of predecessors not yet complete; completing
a node decrements its successors and reports those that reached zero. Reverting
mirrors this on the reversed graph, so each atom is reverted only after every atom
that depends on it has been reverted. Each edge is touched once per direction: a run
costs O(atoms + edges). (Step 4 of a run in ``docs/architecture.md``.)

A retry controller's flow is one contiguous range of nodes (the compiler numbers each
flow depth first), entered only through the flow's start node and left only through its
end node. Reverting that flow and running it again are the same counters restricted to
the range (:meth:`Scheduler.revert_range`, :meth:`Scheduler.reset_range`): O(nodes +
edges of the range) per decision, nothing outside it touched.

It knows nothing of executors, stores or notifications; the blocking engine and an
asyncio driver can share it.
"""

from __future__ import annotations

from collections.abc import Sequence

from tideflow._compiler import Plan
from tideflow.errors import InternalError

__all__ = ["Scheduler"]

#: A reverse count no pass can bring to zero: marks nodes a range pass must not report.
_NEVER = 1 << 62


class Scheduler:
    """Forward and reverse readiness counters over one plan."""

    __slots__ = ("_done", "_pending_reverts", "_plan", "_reverted", "_waiting")

    def __init__(self, plan: Plan) -> None:
        self._plan = plan
        self._waiting: list[int] = []
        self._done = bytearray()
        self._pending_reverts: list[int] = []
        self._reverted = bytearray()

    # -- forward ----------------------------------------------------------------------

    def start(self, done: Sequence[bool] | None = None) -> list[int]:
        """Begin a forward pass; ``done[i]`` marks nodes already complete (a resumed run).

        Returns the nodes ready now, in plan order.
        """
        plan = self._plan
        waiting = list(map(len, plan.pred))
        done_flags = bytearray(len(waiting))
        self._waiting = waiting
        self._done = done_flags
        if done is None:
            # a fresh pass: the compiler gives every node but the root flow's start a
            # predecessor, so that start is the one node ready
            return [0]
        for node, is_done in enumerate(done):
            if is_done:
                done_flags[node] = 1
                for s in plan.succ[node]:
                    waiting[s] -= 1
        self._waiting = waiting
        self._done = done_flags
        return [n for n in range(len(waiting)) if waiting[n] == 0 and not done_flags[n]]

    def complete(self, node: int) -> list[int]:
        """Mark ``node`` complete; return the successors that became ready."""
        done = self._done
        if done[node]:
            raise InternalError(f"node {self._plan.names[node]!r} completed twice")
        done[node] = 1
        waiting = self._waiting
        ready = []
        for s in self._plan.succ[node]:
            left = waiting[s] - 1
            waiting[s] = left
            if not left and not done[s]:
                ready.append(s)
        return ready

    def is_done(self, node: int) -> bool:
        """Say whether ``node`` has completed in this pass."""
        return bool(self._done[node])

    def all_done(self) -> bool:
        """Say whether every node of the plan has completed in this pass."""
        return 0 not in self._done

    # -- reverse ----------------------------------------------------------------------

    def start_revert(self) -> list[int]:
        """Begin a reverse pass over the whole plan; return the nodes revertible now.

        Every node takes part: the engine reverts atoms that ran and passes straight
        through the others (flow start/end nodes, atoms that never ran), so each atom
        is reverted only after every atom that depends on it has been reverted, however
        far apart they are.
        """
        succ = self._plan.succ
        pending = [len(s) for s in succ]
        self._pending_reverts = pending
        self._reverted = bytearray(len(pending))
        return [n for n in range(len(pending) - 1, -1, -1) if pending[n] == 0]

    def revert_range(self, lo: int, hi: int) -> list[int]:
        """Begin a reverse pass over the nodes ``lo <= n < hi`` alone; return those revertible now.

        Successors outside the range are not waited for, and predecessors outside it
        are never reported: the pass stays inside the range, however far the graph goes.
        """
        plan = self._plan
        succ, pred = plan.succ, plan.pred
        pending = self._pending_reverts
        if not pending:
            pending = self._pending_reverts = [0] * plan.size
            self._reverted = bytearray(plan.size)
        reverted = self._reverted
        ready = []
        for node in range(hi - 1, lo - 1, -1):
            inside = 0
            for s in succ[node]:
                if lo <= s < hi:
                    inside += 1
            pending[node] = inside
            reverted[node] = 0
            if not inside:
                ready.append(node)
            for p in pred[node]:
                if not lo <= p < hi:
                    pending[p] = _NEVER  # reached from inside, but not part of this pass
        return ready

    def reset_range(self, lo: int, hi: int) -> list[int]:
        """Make the nodes ``lo <= n < hi`` not done again; return those ready to run now.

        Predecessors outside the range keep their state: a range entered from a node
        that completed is ready again from its first node.
        """
        pred = self._plan.pred
        done, waiting = self._done, self._waiting
        done[lo:hi] = bytes(hi - lo)
        ready = []
        for node in range(lo, hi):
            count = 0
            for p in pred[node]:
                if not done[p]:
                    count += 1
            waiting[node] = count
            if not count:
                ready.append(node)
        return ready

    def reverted(self, node: int) -> list[int]:
        """Mark ``node`` reverted (or passed through); return predecessors now revertible."""
        if self._reverted[node]:
            raise InternalError(f"node {self._plan.names[node]!r} reverted twice")
        self._reverted[node] = 1
        pending = self._pending_reverts
        ready = []
        for p in self._plan.pred[node]:
            pending[p] -= 1
            if pending[p] == 0:
                ready.append(p)
        return ready
