"""Storage: the values a run sees, and the one seam through which its records reach a store.

Values come from three places: an atom's own injected arguments, the run's store
(``store=``/``inject()``), and atom results. The engine changes atom and flow records
only through this class; each change is written through to the store, and a durable
store receives the changes of one scheduling round together (:meth:`Storage.commit`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from tideflow._compiler import TASK, Binding, Plan
from tideflow._log import logger
from tideflow._options import check_store_keys, short_repr
from tideflow.errors import (
    FlowChangedError,
    MissingRequirementError,
    NotFoundError,
    StoreError,
    TideflowError,
    UnstorableValueError,
)
from tideflow.failure import Failure
from tideflow.persistence._owners import fence_of, new_owner, retire_owner
from tideflow.persistence.models import AtomDetail, FlowDetail, LogBook, RetryDetail, TaskDetail
from tideflow.retry import History
from tideflow.states import AtomState, FlowState, Intention

__all__ = ["Storage"]

#: States whose execute result may be read (TaskFlow's rule).
_READABLE = frozenset({AtomState.SUCCESS, AtomState.FAILURE, AtomState.REVERTING})
_MISSING = object()


class Storage:
    """Run values and records for one flow run, written through to a store."""

    def __init__(
        self,
        flow_detail: FlowDetail,
        backend: Any | None = None,
        prepare: Callable[[], object] | None = None,
    ) -> None:
        self._flow_detail = flow_detail
        #: Asked (once) to compile the flow and make its records when a question about
        #: atoms or provided values comes before the engine prepared the run.
        self._prepare = prepare
        self._backend = backend
        self._shared = backend is None or bool(getattr(backend, "shares_records", False))
        #: The store's codec, to check a value can be stored before the run relies on it.
        self._codec = None if self._shared else getattr(backend, "codec", None)
        #: This engine's owner token while it runs the flow record (claim()/release()).
        self._owner: str | None = None
        #: True when the store is the engine's own (made for it, seen by no other engine).
        self.private = False
        #: The job claim this run works under, ``(job key, fencing token)``, or None:
        #: carried in the owner token, so that a newer claim takes the record over and
        #: this run's writes are refused from then on (tideflow.persistence._owners).
        self.fence: tuple[str, int] | None = None
        #: An owner token that already holds the record for this run (adopt_claim())
        self._adopted: str | None = None
        #: The log book to create the record from at the first commit (adopt_claim())
        self._create: LogBook | None = None
        self._dirty: dict[str, AtomDetail] = {}
        self._flow_dirty = False
        self._transient: dict[str, Any] = {}
        self._atom_args: dict[str, dict[str, Any]] = {}
        self._by_name: dict[str, AtomDetail] = {d.name: d for d in flow_detail}
        self._plan: Plan | None = None
        #: One record per plan node (None for flow start/end nodes), set by ensure_plan().
        self.details: list[AtomDetail | None] = []
        #: Whether ensure_plan() made every record itself (none came from the flow record).
        self.all_new = True

    # -- the flow record ------------------------------------------------------------

    @property
    def flow_detail(self) -> FlowDetail:
        """The flow record this storage writes."""
        return self._flow_detail

    @property
    def flow_name(self) -> str:
        """The flow's name."""
        return self._flow_detail.name

    @property
    def flow_uuid(self) -> str:
        """The flow record's uuid."""
        return self._flow_detail.uuid

    @property
    def flow_meta(self) -> dict[str, Any]:
        """The flow record's free-form metadata."""
        return self._flow_detail.meta

    @property
    def shares_records(self) -> bool:
        """Say whether the store holds these very record objects (no write-back needed)."""
        return self._shared

    @property
    def backend(self) -> Any | None:
        """The store records are written to (None: this process only)."""
        return self._backend

    def get_flow_state(self) -> FlowState:
        """The flow's recorded state."""
        return self._flow_detail.state

    def set_flow_state(self, state: FlowState) -> None:
        """Record the flow's state."""
        self._flow_detail.state = state
        self._flow_dirty = True

    # -- atom records ---------------------------------------------------------------

    def ensure_plan(self, plan: Plan) -> None:
        """Create (or find, when resuming) a record for every atom of ``plan``."""
        if self._plan is plan:
            return
        details: list[AtomDetail | None] = [None] * plan.size
        by_name = self._by_name
        add = self._flow_detail.add
        atoms = plan.atoms
        kinds = plan.kinds
        shared = self._shared
        if by_name:
            check_same_flow(self._flow_detail, plan)
        for node in plan.atom_nodes:
            atom = atoms[node]
            assert atom is not None
            detail = by_name.get(atom.name)
            if detail is not None:
                self.all_new = False
                if atom.version is not None and detail.version != atom.version:
                    detail.version = atom.version  # a compatible (minor) change: adopted
                    self.changed(detail)
            else:
                detail = (TaskDetail if kinds[node] == TASK else RetryDetail)(atom.name)
                if atom.version != (1, 0):
                    detail.version = atom.version
                add(detail)
                by_name[atom.name] = detail
                if not shared:
                    self._dirty[detail.name] = detail
            details[node] = detail
        self.details = details
        self._plan = plan

    def _ensure_plan_known(self) -> None:
        """Before the engine prepared the run, ask it to, so atoms and providers are known.

        A flow that does not compile stays unknown here; running it reports why.
        """
        prepare = self._prepare
        if self._plan is None and prepare is not None:
            self._prepare = None
            try:
                prepare()
            except TideflowError:
                self._prepare = prepare

    def _detail(self, atom_name: str) -> AtomDetail:
        try:
            return self._by_name[atom_name]
        except KeyError:
            pass
        if self._plan is None and self._prepare is not None:
            self._ensure_plan_known()
            if atom_name in self._by_name:
                return self._by_name[atom_name]
        raise NotFoundError(
            f"unknown atom {atom_name!r} in flow {self.flow_name!r}; known atoms: "
            f"{sorted(self._by_name)[:20]}"
        )

    def changed(self, detail: AtomDetail) -> None:
        """Note that ``detail`` changed; it is written at the next commit."""
        if not self._shared:
            self._dirty[detail.name] = detail

    def commit(self, release: bool = False) -> None:
        """Write every change since the last commit to the store, together.

        A store with ``save_round`` writes them in one transaction, fenced by this
        engine's claim; others get TaskFlow's ``update_*`` calls one record at a time.
        Anything the store raises reaches the caller as a StoreError; what was not
        written stays pending for the next commit. With ``release`` (the run's last
        commit), a store whose rounds can release the run (``releases_in_round``) does
        so in the same transaction, and :meth:`release` then has nothing left to do.
        """
        if self._shared or (not self._dirty and not self._flow_dirty):
            if self._create is not None:
                self._create_now()
            self._flow_dirty = False
            if self._shared and self.fence is not None and self._owner is not None:
                self._check_fence()
            return
        backend = self._backend
        assert backend is not None
        try:
            conn = backend.get_connection()
            try:
                save_round = getattr(conn, "save_round", None)
                create = None if self._create is None else self._create_first(conn)
                if save_round is not None:
                    owner = self._owner
                    # the run's first round may create its record, its last release it
                    extra: dict[str, Any] = {}
                    if create is not None:
                        extra["create"] = create
                    elif release and owner and getattr(conn, "releases_in_round", False):
                        extra["release"] = True
                    save_round(
                        self._flow_detail,
                        list(self._dirty.values()),
                        owner=owner,
                        flow_changed=self._flow_dirty,
                        **extra,
                    )
                    if create is not None:
                        self._create = None
                    elif extra:
                        self._owner = None
                        assert owner is not None
                        retire_owner(owner)
                else:
                    conn.update_flow_details(self._flow_detail)
                    for detail in self._dirty.values():
                        conn.update_atom_details(detail)
            finally:
                conn.close()
        except TideflowError:
            raise
        except Exception as exc:
            raise StoreError(
                f"the store {backend!r} could not record flow {self.flow_name!r} "
                f"({type(exc).__name__}: {exc}); what it recorded before is kept, and the run "
                "can be resumed from it",
                cause=exc,
            ) from exc
        self._dirty.clear()
        self._flow_dirty = False

    def _create_now(self) -> None:
        """Do a pending creation of the record (nothing else to write with it)."""
        assert self._backend is not None
        conn = self._backend.get_connection()
        try:
            self._claim_to_create(conn)
        finally:
            conn.close()

    def _claim_to_create(self, conn: Any) -> None:
        """Create the pending record now: claim it with its log book."""
        assert self._create is not None
        conn.claim_run(self.flow_uuid, self._owner or self._adopted, self._create)
        self._create = None

    def _check_fence(self) -> None:
        """A store sharing the engine's records has nothing to write, but a fenced run
        still stops at its commit once a newer claim has taken the record over."""
        assert self._backend is not None
        conn = self._backend.get_connection()
        try:
            conn.save_round(self._flow_detail, [], owner=self._owner, flow_changed=False)
        finally:
            conn.close()

    def unstorable(self, detail: AtomDetail, value: Any, reverted: bool) -> Exception | None:
        """The error a result would meet in the store (None if it can be stored).

        Checked as the result arrives, so that an atom whose result cannot be recorded
        fails there and then (and is reverted) instead of the run failing at commit.
        """
        codec = self._codec
        if codec is None:
            return None
        what = "revert result" if reverted else "result"
        try:
            codec.dumps(value, f"the {what} of atom {detail.name!r}")
        except UnstorableValueError as exc:
            exc.atom = detail.name
            return exc
        return None

    # -- owning the run -------------------------------------------------------------

    def adopt_claim(self, owner: str, create: LogBook | None = None) -> None:
        """Run under ``owner``, a token that already holds the record (a conductor took
        it over under the job's fence before reading it): the next run claims nothing,
        saving a transaction, and releases ``owner`` when it ends. If a newer claim took
        the record over meanwhile, the run's first write is refused as usual.

        With ``create`` (a log book holding the record), the record is not stored yet:
        the first commit creates it owned by ``owner`` (in the round's own transaction
        where the store can, ``creates_in_round``), and is refused if another owner
        created it first."""
        fence = fence_of(owner)
        if fence is None or fence != self.fence:
            raise ValueError(
                f"adopt_claim() takes an owner token fenced as this run is ({self.fence}), "
                f"got {owner!r}"
            )
        self._adopted = owner
        self._create = create

    def _create_first(self, conn: Any) -> LogBook | None:
        """The book for the round to create the record from, if the store can and one is
        pending; else a pending creation is done now (claim_run) and None is returned."""
        book = self._create
        if book is None:
            return None
        if self._owner is not None and getattr(conn, "creates_in_round", False):
            return book
        self._claim_to_create(conn)
        return None

    def claim(self) -> None:
        """Make this engine the one running the flow record (RunOwnedError if another is).

        A flow record the store has never seen is saved first (in a log book of its own).
        """
        backend = self._backend
        if backend is None or self.private:
            return
        if self._adopted is not None:
            self._owner, self._adopted = self._adopted, None
            return
        fence = self.fence
        owner = new_owner(fence)
        conn = backend.get_connection()
        try:
            claim_run = getattr(conn, "claim_run", None)
            if claim_run is None:
                retire_owner(owner)
                if fence is not None:
                    raise StoreError(
                        f"{type(conn).__name__} cannot fence runs (it has no claim_run()): "
                        "a run under a job claim needs a store that can (every store of "
                        "tideflow's can)"
                    )
                return
            try:
                try:
                    claim_run(self.flow_uuid, owner)
                except NotFoundError:
                    book = LogBook("tmp")
                    book.add(self._flow_detail)
                    if fence is not None:
                        # created under the claim: a stale claimant cannot overwrite it
                        claim_run(self.flow_uuid, owner, book)
                    else:
                        conn.save_logbook(book)
                        claim_run(self.flow_uuid, owner)
            except BaseException:
                retire_owner(owner)
                raise
        finally:
            conn.close()
        self._owner = owner

    def release(self) -> None:
        """Stop owning the flow record (a store error here is logged, not raised)."""
        owner, self._owner = self._owner, None
        if owner is None or self._backend is None:
            return
        retire_owner(owner)  # even if the store cannot be told, this run is over
        try:
            conn = self._backend.get_connection()
            try:
                conn.release_run(self.flow_uuid, owner)
            finally:
                conn.close()
        except Exception as exc:  # the run's outcome matters more than the release
            logger("tideflow.storage").warning(
                "could not release flow record %s (%s: %s); the next engine takes it over "
                "once this process has exited",
                self.flow_uuid,
                type(exc).__name__,
                exc,
            )

    def update_atom_metadata(self, atom_name: str, update: Mapping[str, Any]) -> None:
        """Merge ``update`` into an atom record's metadata (written at the next commit)."""
        detail = self._detail(atom_name)
        detail.meta.update(update)
        self.changed(detail)

    def update_flow_metadata(self, update: Mapping[str, Any]) -> None:
        """Merge ``update`` into the flow record's metadata (written at the next commit)."""
        self._flow_detail.meta.update(update)
        self._flow_dirty = True

    def get_atom_uuid(self, atom_name: str) -> str:
        """The uuid of an atom's record."""
        return self._detail(atom_name).uuid

    def get_atom_state(self, atom_name: str) -> AtomState:
        """An atom's recorded state."""
        return self._detail(atom_name).state

    def set_atom_state(self, atom_name: str, state: AtomState) -> None:
        """Record an atom's state."""
        detail = self._detail(atom_name)
        detail.state = state
        self.changed(detail)

    def get_atom_intention(self, atom_name: str) -> Intention:
        """What the engine means to do with an atom next."""
        return self._detail(atom_name).intention

    def set_atom_intention(self, atom_name: str, intention: Intention) -> None:
        """Record what the engine means to do with an atom next."""
        detail = self._detail(atom_name)
        detail.intention = intention
        self.changed(detail)

    def get_atoms_states(self, atom_names: Iterable[str]) -> dict[str, tuple[AtomState, Intention]]:
        """``{name: (state, intention)}`` for the given atoms."""
        return {n: (self._detail(n).state, self._detail(n).intention) for n in atom_names}

    def reset(self, atom_name: str, state: AtomState = AtomState.PENDING) -> None:
        """Forget an atom's results and put it back in ``state``."""
        detail = self._detail(atom_name)
        detail.reset(state)
        self.changed(detail)

    def get_execute_result(self, atom_name: str) -> Any:
        """What an atom's ``execute`` returned (or the Failure it raised)."""
        detail = self._detail(atom_name)
        if detail.failure is not None:
            return detail.failure
        if detail.state not in _READABLE:
            raise NotFoundError(
                f"the result of atom {atom_name!r} is not known: it is {detail.state} "
                f"(results are readable in {sorted(_READABLE)})"
            )
        return detail.failure if detail.failure is not None else detail.results

    get = get_execute_result

    def get_retry_history(self, retry_name: str) -> History:
        """A retry controller's attempts so far (empty once it was reverted)."""
        detail = self._detail(retry_name)
        if not isinstance(detail, RetryDetail):
            raise NotFoundError(f"atom {retry_name!r} is not a retry controller: it has no history")
        return History(list(detail.history), detail.failure)

    def get_retry_histories(self) -> dict[str, History]:
        """``{controller name: History}`` for every retry controller of the flow."""
        self._ensure_plan_known()
        return {
            d.name: History(list(d.history), d.failure)
            for d in self._by_name.values()
            if isinstance(d, RetryDetail)
        }

    def get_revert_result(self, atom_name: str) -> Any:
        """What an atom's ``revert`` returned (or the Failure it raised)."""
        detail = self._detail(atom_name)
        if detail.revert_failure is not None:
            return detail.revert_failure
        if detail.state is not AtomState.REVERTED:
            raise NotFoundError(
                f"atom {atom_name!r} has not been reverted (it is {detail.state}): it has no "
                "revert result"
            )
        return detail.revert_results

    def get_execute_failures(self) -> dict[str, Failure]:
        """``{atom name: Failure}`` for every atom whose execute failed."""
        return {d.name: d.failure for d in self._by_name.values() if d.failure is not None}

    get_failures = get_execute_failures

    def get_revert_failures(self) -> dict[str, Failure]:
        """``{atom name: Failure}`` for every atom whose revert failed."""
        return {
            d.name: d.revert_failure for d in self._by_name.values() if d.revert_failure is not None
        }

    def has_failures(self) -> bool:
        """Say whether any atom's execute or revert failed."""
        return any(
            d.failure is not None or d.revert_failure is not None for d in self._by_name.values()
        )

    def get_task_progress(self, atom_name: str) -> float:
        """The task's progress: what it last reported, else what its state implies.

        The engine marks 0.0 as execute or revert starts and 1.0 as it ends; it writes
        those marks only for tasks that reported progress themselves, and derives them
        from the state for the rest (1.0 once SUCCESS or REVERTED).
        """
        detail = self._detail(atom_name)
        meta = detail._meta
        if meta is not None and "progress" in meta:
            return float(meta["progress"])
        return 1.0 if detail.state in (AtomState.SUCCESS, AtomState.REVERTED) else 0.0

    def get_task_progress_details(self, atom_name: str) -> Any:
        """The details a task gave with its last progress report, if any."""
        return self._detail(atom_name).meta.get("progress_details")

    def set_task_progress(
        self, atom_name: str, progress: float, details: Mapping[str, Any] | None = None
    ) -> None:
        """Record a task's progress."""
        detail = self._detail(atom_name)
        detail.meta["progress"] = progress
        if details is not None:
            detail.meta["progress_details"] = dict(details)
        self.changed(detail)

    # -- values ---------------------------------------------------------------------

    def inject(self, pairs: Mapping[str, Any], transient: bool = False) -> None:
        """Add store values; transient ones are kept in memory only, never recorded."""
        if not isinstance(pairs, Mapping):
            raise TypeError(
                f"inject() takes a mapping of names to values, got {type(pairs).__name__}"
            )
        check_store_keys(pairs, "inject()")
        if transient:
            self._transient.update(pairs)
            return
        codec = self._codec
        if codec is not None:
            for key, value in pairs.items():
                codec.dumps(value, f"store value {key!r}")
        self._flow_detail.injected.update(pairs)
        self._flow_dirty = True

    def inject_atom_args(
        self, atom_name: str, pairs: Mapping[str, Any], transient: bool = True
    ) -> None:
        """Give one atom its own argument values (they win over everything else)."""
        self._detail(atom_name)
        self._atom_args.setdefault(atom_name, {}).update(pairs)

    def store_keys(self) -> set[str]:
        """Names the run's store (recorded and transient) provides."""
        return {*self._flow_detail.injected, *self._transient}

    def _store_value(self, name: str) -> Any:
        if name in self._transient:
            return self._transient[name]
        return self._flow_detail.injected.get(name, _MISSING)

    def _provided(self, node: int, name: str) -> Any:
        """The value ``name`` takes from atom ``node``'s result, or _MISSING."""
        assert self._plan is not None
        detail = self.details[node]
        if detail is None or detail.state not in _READABLE or detail.failure is not None:
            return _MISSING
        atom = self._plan.atoms[node]
        assert atom is not None
        index = atom.save_as[name]
        if index is None:
            return detail.results
        try:
            return detail.results[index]
        except (LookupError, TypeError):
            return _MISSING

    def _sources(self, name: str) -> list[Any]:
        values = []
        value = self._store_value(name)
        if value is not _MISSING:
            values.append(value)
        if self._plan is not None:
            for node in self._plan.providers.get(name, ()):
                value = self._provided(node, name)
                if value is not _MISSING:
                    values.append(value)
        return values

    def fetch(self, name: str, many_handler: Callable[[list[Any]], Any] | None = None) -> Any:
        """The value named ``name``: a store value first, else an atom's provided result."""
        if self._plan is None:
            self._ensure_plan_known()  # a record loaded to be read: its results count
        values = self._sources(name)
        if not values:
            raise NotFoundError(
                f"no value named {name!r} in flow {self.flow_name!r}: {self._why_missing(name)}"
            )
        if many_handler is not None:
            return many_handler(values)
        return values[0]

    def _why_missing(self, name: str) -> str:
        """Why ``name`` has no value yet: not produced, produced without it, or no provider."""
        self._ensure_plan_known()
        plan = self._plan
        providers = plan.providers.get(name, ()) if plan is not None else ()
        if not providers:
            return (
                "nothing provides it (no atom of the flow provides it and the store has no "
                "such key)"
            )
        reasons = []
        for node in providers:
            detail = self.details[node]
            atom = plan.atoms[node] if plan is not None else None
            if detail is None or atom is None:
                continue
            if detail.failure is not None:
                reasons.append(f"{detail.name!r} failed")
            elif detail.state not in _READABLE:
                reasons.append(f"{detail.name!r} has not produced it yet (it is {detail.state})")
            else:
                index = atom.save_as[name]
                reasons.append(
                    f"{detail.name!r} returned {short_repr(detail.results, 120)}, which has no "
                    f"{'index' if isinstance(index, int) else 'key'} {index!r}"
                )
        return "; ".join(reasons) or "its providers have not produced it yet"

    def fetch_all(self, many_handler: Callable[[list[Any]], Any] | None = None) -> dict[str, Any]:
        """Every named value; a name with several values maps to their list.

        Store values come first (recorded, then transient), then atom results, as
        :meth:`fetch` orders them. Linear in names + providers.
        """
        if self._plan is None:
            self._ensure_plan_known()  # a record loaded to be read: its results count
        injected, transient = self._flow_detail.injected, self._transient
        stored = {**injected, **transient}  # a transient value wins, as in fetch()
        plan = self._plan
        if many_handler is None and plan is not None:
            return self._fetch_all_fast(stored, plan)
        names = dict.fromkeys(injected)
        names.update(dict.fromkeys(transient))
        if plan is not None:
            names.update(dict.fromkeys(plan.providers))
        found: dict[str, Any] = {}
        for name in names:
            values = self._sources(name)
            if not values:
                continue
            if many_handler is not None:
                found[name] = many_handler(values)
            else:
                found[name] = values[0] if len(values) == 1 else values
        return found

    def _fetch_all_fast(self, stored: dict[str, Any], plan: Plan) -> dict[str, Any]:
        """fetch_all() without a handler: one pass over the store, one over the providers.

        The same values in the same order as the general path (store names first,
        then provided names; a name's store value before its atom results), without
        building a list of sources per name: this is what ``tideflow.run()`` returns.
        """
        found = stored  # a fresh dict: recorded names first, then transient-only ones
        several: set[str] = set()  # names whose value in ``found`` is a list of values
        details, atoms = self.details, plan.atoms
        for name, nodes in plan.providers.items():
            for node in nodes:
                detail = details[node]
                if detail is None or detail.state not in _READABLE or detail.failure is not None:
                    continue
                index = atoms[node].save_as[name]  # type: ignore[union-attr]
                if index is None:
                    value = detail.results
                else:
                    try:
                        value = detail.results[index]
                    except (LookupError, TypeError):
                        continue
                if name in several:
                    found[name].append(value)
                elif name in found:
                    found[name] = [found[name], value]
                    several.add(name)
                else:
                    found[name] = value
        return found

    def fetch_mapped_args(
        self,
        args_mapping: Mapping[str, str],
        atom_name: str | None = None,
        scope_walker: Any = None,
        optional_args: Iterable[str] | None = None,
    ) -> dict[str, Any]:
        """Fill parameters from values by name (TaskFlow's helper; the engine binds at compile)."""
        optional = set(optional_args or ())
        own = self._atom_args.get(atom_name, {}) if atom_name else {}
        kwargs = {}
        for param, symbol in args_mapping.items():
            if symbol in own:
                kwargs[param] = own[symbol]
                continue
            values = self._sources(symbol)
            if values:
                kwargs[param] = values[-1] if self._store_value(symbol) is _MISSING else values[0]
            elif symbol not in optional:
                raise NotFoundError(f"no value named {symbol!r} for parameter {param!r}")
        return kwargs

    def bind(
        self, node: int, atom_inject: Mapping[str, Any] | None, bindings: Sequence[Binding]
    ) -> dict[str, Any]:
        """Fill an atom's parameters from its compiled bindings.

        Order: values given to this atom (``inject_atom_args``, then its ``inject``),
        then the store, then the provider chosen at compile time.
        """
        kwargs: dict[str, Any] = {}
        details = self.details
        own = self._atom_args.get(details[node].name) if self._atom_args else None  # type: ignore[union-attr]
        injected = self._flow_detail.injected
        transient = self._transient
        for param, symbol, provider, index, optional in bindings:
            if own is not None and symbol in own:
                kwargs[param] = own[symbol]
            elif atom_inject is not None and symbol in atom_inject:
                kwargs[param] = atom_inject[symbol]
            elif transient and symbol in transient:
                kwargs[param] = transient[symbol]
            elif symbol in injected:
                kwargs[param] = injected[symbol]
            elif provider >= 0:
                results = details[provider].results  # type: ignore[union-attr]
                if index is None:
                    kwargs[param] = results
                    continue
                try:
                    kwargs[param] = results[index]
                except (LookupError, TypeError) as exc:
                    name = details[node].name  # type: ignore[union-attr]
                    source = details[provider].name  # type: ignore[union-attr]
                    raise NotFoundError(
                        f"atom {name!r} needs {symbol!r}, expected at index {index!r} of the "
                        f"result of {source!r}, but that result is {results!r}",
                        cause=exc,
                    ) from exc
            elif not optional:
                name = details[node].name  # type: ignore[union-attr]
                raise MissingRequirementError(
                    f"atom {name!r} requires {symbol!r}, and nothing provides it: pass it in "
                    "store= or inject it",
                    atom=name,
                    missing=[symbol],
                    flow=self.flow_name,
                )
        return kwargs

    def injected_atom_args(self, atom_name: str) -> Mapping[str, Any]:
        """Values given to one atom with :meth:`inject_atom_args`."""
        return self._atom_args.get(atom_name, {})


def check_same_flow(flow_detail: FlowDetail, plan: Plan) -> None:
    """Refuse to resume a run with a flow that is not the one it recorded.

    The rule: a record that has made no progress (flow and atoms all PENDING) adopts
    the flow as it is now. A record with progress must match: the same atom names, and
    for each atom the same major version (a minor bump is compatible and adopted).
    Anything else is a FlowChangedError listing every difference; the record is left
    as it was.
    """
    recorded = {d.name: d for d in flow_detail}
    progressed = flow_detail.state is not FlowState.PENDING or any(
        d.state is not AtomState.PENDING for d in recorded.values()
    )
    if not progressed:
        return
    atoms = plan.atoms
    now = {a.name: a for a in (atoms[n] for n in plan.atom_nodes) if a is not None}
    differences = [f"atom {name!r} was added" for name in now if name not in recorded]
    differences += [f"atom {name!r} was removed" for name in recorded if name not in now]
    for name, atom in now.items():
        detail = recorded.get(name)
        if detail is None or detail.version is None or atom.version is None:
            continue
        if _major(detail.version) != _major(atom.version):
            differences.append(
                f"atom {name!r} changed version {_dotted(detail.version)} -> "
                f"{_dotted(atom.version)} (another major version)"
            )
    if differences:
        raise FlowChangedError(
            f"flow record {flow_detail.name!r} ({flow_detail.uuid}) was recorded for another "
            f"version of the flow, and its run has made progress ({flow_detail.state}): "
            + "; ".join(differences)
            + ". Resume it with the flow it was recorded for, or run the new flow in a new "
            "flow record (load it without flow_detail=).",
            differences,
        )


def _major(version: Any) -> str:
    """The major part of a version given as a tuple (1, 0) or a string '1.0'."""
    return str(version).split(".")[0] if isinstance(version, str) else str(next(iter(version)))


def _dotted(version: Any) -> str:
    return version if isinstance(version, str) else ".".join(map(str, version))
