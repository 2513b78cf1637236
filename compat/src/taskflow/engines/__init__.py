"""TaskFlow's ``taskflow.engines``: load, run and resume flows on tideflow's engine."""

from __future__ import annotations

from taskflow.engines import helpers
from taskflow.engines.helpers import (
    ENGINE_DEFAULT,
    ENGINES_NAMESPACE,
    flow_from_detail,
    load,
    load_from_detail,
    load_from_factory,
    run,
    save_factory_details,
)

__all__ = [
    "ENGINES_NAMESPACE",
    "ENGINE_DEFAULT",
    "flow_from_detail",
    "helpers",
    "load",
    "load_from_detail",
    "load_from_factory",
    "run",
    "save_factory_details",
]
