"""Retry controllers at run time: asking them about failures, and carrying their decisions out.

``docs/failure-resolution.md`` tells the rules; this module applies them for one run.
A failure is put to the nearest controller enclosing the failed atom, outwards while
they say REVERT (:meth:`RetryScopes.resolve`). A decision about a controller's flow is
then carried out in three steps, each a few scheduler calls over the flow's node range
(:meth:`RetryScopes.step`, called once per engine round while decisions are under way):

1. *quiet*: no atom of the flow starts any more; atoms of the flow still running are
   waited for, while atoms elsewhere keep running;
2. *revert*: the range is reverted, each atom after those that depend on it;
3. for RETRY, the controller goes RETRYING, the atoms PENDING, and the controller runs
   again (at once, or when its back-off expires: a deadline the engine's wait step
   knows, not a sleep); for REVERT, the controller is reverted last.

Controllers' own code (``execute``, ``revert``, ``on_failure``) runs here, on the
engine thread. Each decision under way is written in the controller's record with the
round that made it, so a resumed run finishes it (:meth:`RetryScopes.resume`).
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final, cast

from tideflow._compiler import RETRY as RETRY_NODE
from tideflow._compiler import START, Plan
from tideflow._log import logger
from tideflow._scheduler import Scheduler
from tideflow.errors import TideflowError
from tideflow.executors import Dispatcher, call_atom
from tideflow.failure import Failure
from tideflow.persistence.models import AtomDetail, RetryDetail
from tideflow.retry import EXECUTE_REVERT_HISTORY, REVERT_FLOW_FAILURES, Decision, History, Retry
from tideflow.states import AtomState, Intention

if TYPE_CHECKING:
    from tideflow._engine import Engine

__all__ = ["RetryScopes", "attempt_of"]

_A = AtomState
_RETRY: Final = Decision.RETRY
_REVERT: Final = Decision.REVERT
_REVERT_ALL: Final = Decision.REVERT_ALL
#: An atom still doing work: a flow is quiet once none of its atoms is in one of these.
_BUSY: Final = frozenset({_A.RUNNING, _A.REVERTING})
#: States of a controller whose current attempt has not produced its history entry yet.
_STARTING: Final = frozenset({_A.PENDING, _A.RUNNING, _A.RETRYING, _A.FAILURE, _A.IGNORE})
#: Controller states to revert when a revert reaches them.
TO_REVERT: Final = frozenset(
    {_A.SUCCESS, _A.FAILURE, _A.REVERTING, _A.RUNNING, _A.REVERT_FAILURE, _A.RETRYING}
)


def attempt_of(plan: Plan, details: list[AtomDetail | None], node: int) -> int:
    """The attempt an atom's state change belongs to: that of its innermost controller.

    1 for atoms no controller guards; a controller's attempt counts its executions
    since its flow last started afresh (its history, plus the attempt under way).
    """
    if not plan.retries:
        return 1
    retry = node if plan.kinds[node] == RETRY_NODE else plan.guards[node]
    if retry < 0:
        return 1
    detail = cast(RetryDetail, details[retry])
    made = len(detail.history)
    return max(1, made + 1 if detail.state in _STARTING else made)


class _Decision:
    """One decision about a controller's flow, being carried out."""

    __slots__ = ("checked", "decision", "failures", "hi", "lo", "resumed", "retry", "reverting")

    def __init__(self, retry: int, decision: Decision, lo: int, hi: int) -> None:
        self.retry = retry
        self.decision = decision
        self.lo = lo
        self.hi = hi
        self.reverting = False  # step 2 under way
        self.checked = False  # quietness looked at since the last change in the range
        #: picked up from the record of a stopped run: atoms it shows RUNNING or
        #: REVERTING were caught mid-call, and nothing of them is in flight any more
        self.resumed = False
        #: the failures that led here: raised at the end if the flow is given up
        self.failures: list[Failure] = []

    def holds(self, node: int) -> bool:
        return self.lo <= node < self.hi


class RetryScopes:
    """The retry state of one run: decisions under way, back-off deadlines, frozen flows."""

    def __init__(
        self,
        engine: Engine,
        plan: Plan,
        scheduler: Scheduler,
        dispatcher: Dispatcher,
        *,
        defer_reverts: bool,
    ) -> None:
        self._engine = engine
        self._plan = plan
        self._scheduler = scheduler
        self._dispatcher = dispatcher
        self._defer_reverts = defer_reverts
        self._storage = engine.storage
        self._details = engine.storage.details
        #: decisions under way, oldest first; their ranges never overlap
        self.decisions: list[_Decision] = []
        #: nodes a flow revert reached (the engine adds those its finished reverts free)
        self.back: deque[int] = deque()
        #: (deadline, controller node): back-offs being waited out
        self.timers: list[tuple[float, int]] = []
        #: 1 for nodes of a flow a decision is about: none of them may start
        self.frozen = bytearray(plan.size)
        #: failures of flows given up (REVERT): the run ends REVERTED and raises them
        self.given_up: list[Failure] = []
        #: start at most one revert per round (a serial engine on a durable store, so each
        #: revert's outcome is committed before the next one starts)
        self.one_at_a_time = False
        self._wake = threading.Event()

    # -- asking controllers --------------------------------------------------------------

    def resolve(self, node: int, failure: Failure) -> bool:
        """Put ``node``'s failure to its controllers; say whether a flow decision took it.

        False means the whole run reverts because of ``failure`` (no controller, or
        REVERT_ALL). A controller that cannot decide (its ``on_failure`` raised or
        gave no decision) reverts the whole run too, raising its own error: that is
        recorded here, and True returned.
        """
        plan = self._plan
        names = plan.names
        asked: list[tuple[int, Decision]] = []
        who, retry = node, plan.guards[node]
        while retry >= 0:
            try:
                decision = self._ask(retry, names[who], failure)
            except Exception as exc:
                logger("tideflow.engine").warning(
                    "retry controller %r could not decide about the failure of %r (%s); "
                    "the whole flow is reverted",
                    names[retry],
                    names[who],
                    exc,
                )
                self._engine._failures.append(Failure.from_exception(exc))
                return True
            asked.append((retry, decision))
            if decision is not _REVERT:
                break
            who, retry = retry, plan.guards[retry]
        if not asked:
            return False
        last, decision = asked[-1]
        if decision is _RETRY:
            self._begin(last, _RETRY, failure)
            return True
        if decision is _REVERT_ALL or self._defer_reverts:
            return False
        # REVERT all the way out: the flow of the first controller that gave up is reverted
        self._begin(asked[0][0], _REVERT, failure)
        return True

    def _ask(self, retry: int, failed: str, failure: Failure) -> Decision:
        """Record ``failure`` in the controller's current attempt and ask it."""
        detail = cast(RetryDetail, self._details[retry])
        if not detail.history:
            detail.history.append((detail.results, {}))
        detail.history[-1][1][failed] = failure
        self._storage.changed(detail)
        controller = cast(Retry, self._plan.atoms[retry])
        kwargs = self._arguments(retry, controller)
        return controller.decide(History(list(detail.history)), failure, kwargs)

    def _arguments(self, node: int, controller: Retry, *, revert: bool = False) -> dict[str, Any]:
        bindings = (self._plan.revert_args if revert else self._plan.args)[node]
        if not bindings:
            return {}
        return self._storage.bind(node, controller.inject, bindings)

    # -- decisions ----------------------------------------------------------------------

    def _begin(self, retry: int, decision: Decision, failure: Failure) -> None:
        """Start carrying ``decision`` out for ``retry``'s flow (unless a wider one covers it)."""
        lo, hi = self._plan.scope(retry)
        for under_way in self.decisions:
            if under_way.lo <= lo and hi <= under_way.hi:
                # a decision about this flow or an enclosing one is under way already
                if under_way.retry == retry and decision is _REVERT:
                    under_way.decision = _REVERT  # for one flow, REVERT wins over RETRY
                    self._record(retry, _REVERT)
                if under_way.decision is _REVERT:
                    under_way.failures.append(failure)
                return
        made = _Decision(retry, decision, lo, hi)
        made.failures.append(failure)
        kept = []
        for under_way in self.decisions:
            if lo <= under_way.lo and under_way.hi <= hi:
                # covered by the new, wider decision: its failures go with it, or away
                if decision is _REVERT:
                    made.failures.extend(under_way.failures)
                if under_way.retry != retry:
                    self._record(under_way.retry, None)
            else:
                kept.append(under_way)
        kept.append(made)
        self.decisions = kept
        self.frozen[lo:hi] = b"\x01" * (hi - lo)
        self._record(retry, decision)

    def _record(self, retry: int, decision: Decision | None) -> None:
        detail = cast(RetryDetail, self._details[retry])
        detail.decision = decision.value if decision is not None else None
        self._storage.changed(detail)

    def resume(self) -> list[int]:
        """Pick up the decisions a stopped run recorded; return the nodes they cover.

        Outermost first: a decision inside another's range is part of the wider one.
        """
        covered: list[int] = []
        details = self._details
        for retry in self._plan.retries:
            recorded = cast(RetryDetail, details[retry]).decision
            if recorded is None or any(d.holds(retry) for d in self.decisions):
                continue
            lo, hi = self._plan.scope(retry)
            made = _Decision(retry, Decision(recorded), lo, hi)
            made.resumed = True
            for node in range(lo, hi):
                failed = details[node]
                if failed is not None and failed.failure is not None:
                    made.failures.append(failed.failure)
            self.decisions.append(made)
            self.frozen[lo:hi] = b"\x01" * (hi - lo)
            covered.extend(range(lo, hi))
        return covered

    def clear(self) -> list[Failure]:
        """Drop every decision and back-off (the whole run reverts); return their failures."""
        failures = [f for d in self.decisions for f in d.failures]
        for under_way in self.decisions:
            self._record(under_way.retry, None)
        self.decisions.clear()
        self.timers.clear()
        self.back.clear()
        return failures

    @property
    def active(self) -> bool:
        """Whether there is anything to do: a decision under way, a back-off, reverts."""
        return bool(self.decisions or self.timers or self.back)

    # -- carrying decisions out ---------------------------------------------------------

    def step(self, ready: deque[int], finished: Iterable[int]) -> deque[int]:
        """One round's progress on decisions and back-offs; returns the atoms to start.

        ``ready`` is what the round found ready: atoms of frozen flows are taken out.
        ``finished`` names the atoms whose outcome the round recorded.
        """
        frozen = self.frozen
        if self.decisions:
            ready = deque(n for n in ready if not frozen[n])
        engine = self._engine
        if engine._suspend_requested or engine._failures or engine._revert_failures:
            return ready  # nothing new: the run stops, or reverts everything
        forward: deque[int] = deque()
        timers = self.timers
        if timers:
            now = time.monotonic()
            while timers and timers[0][0] <= now:
                forward.append(heapq.heappop(timers)[1])
        finished = list(finished)
        for under_way in list(self.decisions):
            if under_way.reverting:
                continue
            if under_way.checked and not any(under_way.holds(n) for n in finished):
                continue
            under_way.checked = True
            if self._quiet(under_way):
                under_way.reverting = True
                # what an earlier, narrower revert of this range still had queued is
                # counted again by this pass
                back = self.back = deque(n for n in self.back if not under_way.holds(n))
                back.extend(self._scheduler.revert_range(under_way.lo, under_way.hi))
        if self.back:
            forward.extend(self._revert_back())
        if forward:
            ready.extend(engine._settle(forward, self._scheduler, False))
        return ready

    def _quiet(self, under_way: _Decision) -> bool:
        if under_way.resumed:
            return True  # its busy-looking atoms were caught by the stop: revert them again
        kinds, details = self._plan.kinds, self._details
        for node in range(under_way.lo, under_way.hi):
            if kinds[node] < START and details[node].state in _BUSY:  # type: ignore[union-attr]
                return False
        return True

    def _revert_back(self) -> list[int]:
        """Revert what the flow reverts reached; return controllers ready to run again."""
        plan, details, scheduler = self._plan, self._details, self._scheduler
        kinds, atoms = plan.kinds, plan.atoms
        back = self.back
        again: list[int] = []
        while back:
            node = back.popleft()
            under_way = next((d for d in self.decisions if d.holds(node)), None)
            if under_way is None or not under_way.reverting:
                continue  # a wider decision took the flow over: it recounts when it starts
            if self._engine._revert_failures:
                break
            detail = details[node]
            if node == under_way.retry:
                if under_way.decision is _RETRY:
                    again.extend(self._again(under_way))
                elif detail.state not in TO_REVERT or self.revert_retry(node):  # type: ignore[union-attr]
                    self._gave_up(under_way)
                continue
            if kinds[node] >= START or detail.state not in TO_REVERT:  # type: ignore[union-attr]
                back.extend(scheduler.reverted(node))
            elif kinds[node] == RETRY_NODE:
                if self.revert_retry(node):
                    back.extend(scheduler.reverted(node))
            else:
                atom = atoms[node]
                assert atom is not None
                assert detail is not None
                self._engine._start_revert(self._dispatcher, node, atom, detail)
                if self.one_at_a_time:
                    break  # the rest of ``back`` waits for the next round
        return again

    def _again(self, under_way: _Decision) -> list[int]:
        """RETRY, once the flow is reverted: everything PENDING, the controller RETRYING."""
        engine, plan, details = self._engine, self._plan, self._details
        retry, lo, hi = under_way.retry, under_way.lo, under_way.hi
        detail = cast(RetryDetail, details[retry])
        controller = cast(Retry, plan.atoms[retry])
        attempt = len(detail.history) + 1
        delay = controller.delay(attempt)
        engine._atom_state(
            detail, _A.RETRYING, delay=delay if controller.backoff is not None else None
        )
        kinds, names = plan.kinds, plan.names
        for node in range(lo, hi):
            if node == retry or kinds[node] >= START:
                continue
            reset = details[node]
            assert reset is not None
            if reset.state is not _A.PENDING:
                engine._atom_state(reset, _A.PENDING)
            reset.reset(_A.PENDING)
            self._storage.changed(reset)
            engine._flow_failures.pop(names[node], None)
            engine._unstarted.discard(node)
        engine._ignored[lo:hi] = bytes(hi - lo)
        self.frozen[lo:hi] = bytes(hi - lo)
        detail.decision = None
        detail.intention = Intention.EXECUTE
        self._storage.changed(detail)
        self.decisions.remove(under_way)
        ready = self._scheduler.reset_range(lo, hi)
        if delay > 0:
            heapq.heappush(self.timers, (time.monotonic() + delay, retry))
            return [n for n in ready if n != retry]
        return ready

    def _gave_up(self, under_way: _Decision) -> None:
        """REVERT, once the controller is reverted: the flow stays reverted."""
        self.decisions.remove(under_way)
        self.given_up.extend(under_way.failures)

    # -- a controller's own code ------------------------------------------------------------

    def run_retry(self, node: int) -> bool:
        """Run a controller's ``execute`` here; say whether it succeeded.

        Its failure is resolved like any atom's (by the controller enclosing it); an
        argument that cannot be bound reverts the whole run, as it does for a task.
        """
        engine = self._engine
        detail = cast(RetryDetail, self._details[node])
        controller = cast(Retry, self._plan.atoms[node])
        engine._atom_state(detail, _A.RUNNING)
        detail.intention = Intention.EXECUTE
        try:
            kwargs = self._arguments(node, controller)
        except TideflowError as exc:
            engine._unstarted.add(node)  # its execute was never called: nothing to undo
            value: Any = Failure.from_exception(exc)
            ok = False
        else:
            kwargs[EXECUTE_REVERT_HISTORY] = History(list(detail.history))
            _, _, ok, value = call_atom(node, False, controller, kwargs)
        if ok:
            detail.results = value
            detail.failure = None
            detail.history.append((value, {}))
            engine._atom_state(detail, _A.SUCCESS, value)
            self._storage.changed(detail)
            return True
        detail.failure = value
        engine._flow_failures[detail.name] = value
        engine._atom_state(detail, _A.FAILURE, value)
        self._storage.changed(detail)
        if node in engine._unstarted or not self.resolve(node, value):
            engine._failures.append(value)
        return False

    def revert_retry(self, node: int) -> bool:
        """Run a controller's ``revert`` here; say whether it succeeded (else the run halts)."""
        engine = self._engine
        detail = cast(RetryDetail, self._details[node])
        controller = cast(Retry, self._plan.atoms[node])
        engine._atom_state(detail, _A.REVERTING)
        detail.intention = Intention.REVERT
        value: Any = None
        ok = True
        if node in engine._unstarted:
            pass  # its execute was never called: nothing to undo
        else:
            try:
                kwargs = self._arguments(node, controller, revert=True)
            except TideflowError as exc:
                ok, value = False, Failure.from_exception(exc)
            else:
                kwargs[EXECUTE_REVERT_HISTORY] = History(list(detail.history), detail.failure)
                kwargs[REVERT_FLOW_FAILURES] = dict(engine._flow_failures)
                _, _, ok, value = call_atom(node, True, controller, kwargs)
        if ok:
            detail.revert_results = value
            engine._atom_state(detail, _A.REVERTED, value)
            detail.history = []  # a reverted controller starts afresh (as in TaskFlow)
            self._storage.changed(detail)
            return True
        detail.revert_failure = value
        engine._revert_failures.append(value)
        engine._atom_state(detail, _A.REVERT_FAILURE, value)
        self._storage.changed(detail)
        return False

    # -- back-off deadlines -------------------------------------------------------------

    def wait_time(self, timeout: float | None) -> float | None:
        """How long the engine's wait for outcomes may block: until the next deadline."""
        if not self.timers:
            return timeout
        left = max(0.0, self.timers[0][0] - time.monotonic())
        return left if timeout is None else min(timeout, left)

    def wait_out(self) -> None:
        """With nothing running and nothing else to do, block until the next deadline.

        suspend() cuts the wait short. Nothing blocks while atoms run (their outcomes
        end the engine's wait) or when the run is stopping or reverting everything.
        """
        engine = self._engine
        if (
            not self.timers
            or self._dispatcher.in_flight
            or engine._suspend_requested
            or engine._failures
            or engine._revert_failures
        ):
            return
        self._wake.wait(max(0.0, self.timers[0][0] - time.monotonic()))
        self._wake.clear()

    def wake(self) -> None:
        """Cut a back-off wait short (the run is being suspended)."""
        self._wake.set()
