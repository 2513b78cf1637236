"""tideflow: reliable task execution.

Split work into tasks with ``execute()`` and ``revert()``, compose them into linear,
unordered and graph flows, and run them with an engine that passes named values
between them, reports every state change, records progress, and on failure reverts
what already ran, in reverse order.
"""

from __future__ import annotations

from tideflow import errors, events, retry, states
from tideflow._engine import Engine
from tideflow._flow import Flow, GraphFlow, LinearFlow, TargetedFlow, UnorderedFlow
from tideflow._helpers import (
    connect,
    flow_from_detail,
    load,
    load_from_detail,
    load_from_factory,
    resume,
    run,
    run_async,
    save_factory_details,
)
from tideflow._notifier import Notifier, RestrictedNotifier
from tideflow._storage import Storage
from tideflow._task import (
    Atom,
    FunctorTask,
    MapFunctorTask,
    ReduceFunctorTask,
    Task,
    TaskFactory,
    task,
)
from tideflow.errors import (
    AmbiguousProviderError,
    AtomReusedError,
    CompilationError,
    CycleError,
    DefinitionError,
    DependencyError,
    DuplicateAtomError,
    ExecutionError,
    FlowChangedError,
    InternalError,
    InvalidArgumentError,
    InvalidStateError,
    MissingRequirementError,
    NotFoundError,
    NotInFlowError,
    RecordFormatError,
    RunOwnedError,
    StoreError,
    StoreVersionError,
    TideflowError,
    UnstorableValueError,
)
from tideflow.events import AtomEvent, FlowEvent
from tideflow.failure import Failure, WrappedFailure
from tideflow.retry import (
    AlwaysRevert,
    AlwaysRevertAll,
    Backoff,
    Decision,
    ExponentialBackoff,
    FixedBackoff,
    ForEach,
    History,
    ParameterizedForEach,
    Retry,
    Times,
)
from tideflow.states import AtomState, EngineState, FlowState, Intention

__version__ = "0.1.0"

__all__ = [
    "AlwaysRevert",
    "AlwaysRevertAll",
    "AmbiguousProviderError",
    "Atom",
    "AtomEvent",
    "AtomReusedError",
    "AtomState",
    "Backoff",
    "CompilationError",
    "CycleError",
    "Decision",
    "DefinitionError",
    "DependencyError",
    "DuplicateAtomError",
    "Engine",
    "EngineState",
    "ExecutionError",
    "ExponentialBackoff",
    "Failure",
    "FixedBackoff",
    "Flow",
    "FlowChangedError",
    "FlowEvent",
    "FlowState",
    "ForEach",
    "FunctorTask",
    "GraphFlow",
    "History",
    "Intention",
    "InternalError",
    "InvalidArgumentError",
    "InvalidStateError",
    "LinearFlow",
    "MapFunctorTask",
    "MissingRequirementError",
    "NotFoundError",
    "NotInFlowError",
    "Notifier",
    "ParameterizedForEach",
    "RecordFormatError",
    "ReduceFunctorTask",
    "RestrictedNotifier",
    "Retry",
    "RunOwnedError",
    "Storage",
    "StoreError",
    "StoreVersionError",
    "TargetedFlow",
    "Task",
    "TaskFactory",
    "TideflowError",
    "Times",
    "UnorderedFlow",
    "UnstorableValueError",
    "WrappedFailure",
    "connect",
    "errors",
    "events",
    "flow_from_detail",
    "load",
    "load_from_detail",
    "load_from_factory",
    "resume",
    "retry",
    "run",
    "run_async",
    "save_factory_details",
    "states",
    "task",
]
