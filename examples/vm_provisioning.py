"""Provision a virtual machine: parallel branches in a graph flow, and a decider.

The graph flow works out its own order from what each task requires and provides:
reserving an IP address, creating a volume and fetching the image do not depend on
each other, so the parallel engine runs them at once; booting waits for all three.
A decider on a link from ``plan`` to ``assign-floating-ip`` lets the public
address (and the DNS record after it) happen only for a machine that asked to be
public; otherwise both are IGNOREd and the run still succeeds.

Run it with ``python examples/vm_provisioning.py`` (a public and a private machine),
or with the command: ``tideflow run examples/vm_provisioning.py`` (add
``--store public=false`` for a private one). The command finds the flow through
this module's ``make_flow()`` function, the convention every example follows.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import tideflow

#: Seconds each step pretends to take, so a live view has something to show.
STEP = 0.2
#: (step, started, ended) of each branch run in this process, to show they overlapped.
BRANCHES: list[tuple[str, float, float]] = []


_PRINTING = threading.Lock()


def say(line: str) -> None:
    """Print one line; branches on worker threads never print into each other's lines."""
    with _PRINTING:
        print(line, flush=True)


def work(step: str) -> None:
    began = time.monotonic()
    time.sleep(STEP)
    BRANCHES.append((step, began, time.monotonic()))


class PlanMachine(tideflow.Task):
    """Decide the machine's shape from the request."""

    default_provides = "spec"

    def execute(self, name: str = "web-1", public: bool = True, size: str = "m1.small") -> Any:
        say(f"  plan {name}: {size}, {'public' if public else 'private'}")
        return {"name": name, "size": size, "public": public}


class ReserveAddress(tideflow.Task):
    default_provides = "ip"

    def execute(self, spec: dict[str, Any]) -> str:
        work(self.name)
        say("  reserve private address 10.0.0.12")
        return "10.0.0.12"

    def revert(self, result: Any, **kwargs: Any) -> None:
        say(f"  release address {result}")


class CreateVolume(tideflow.Task):
    default_provides = "volume"

    def execute(self, spec: dict[str, Any]) -> str:
        work(self.name)
        say(f"  create volume vol-{spec['name']} (20 GB)")
        return f"vol-{spec['name']}"

    def revert(self, result: Any, **kwargs: Any) -> None:
        say(f"  delete volume {result}")


class FetchImage(tideflow.Task):
    default_provides = "image"

    def execute(self, spec: dict[str, Any]) -> str:
        work(self.name)
        say("  fetch image debian-12")
        return "debian-12"


class Boot(tideflow.Task):
    default_provides = "vm"

    def execute(self, spec: dict[str, Any], ip: str, volume: str, image: str) -> str:
        time.sleep(STEP)
        say(f"  boot {spec['name']} from {image} on {volume} at {ip}")
        return f"vm-{spec['name']}"

    def revert(self, result: Any, **kwargs: Any) -> None:
        say(f"  destroy {result}")


class AssignFloatingIp(tideflow.Task):
    default_provides = "public_ip"

    def execute(self, vm: str) -> str:
        say(f"  assign public address 203.0.113.7 to {vm}")
        return "203.0.113.7"


class RegisterDns(tideflow.Task):
    def execute(self, spec: dict[str, Any], public_ip: str) -> str:
        record = f"{spec['name']}.example.org"
        say(f"  register {record} -> {public_ip}")
        return record


def wants_public(history: dict[str, Any]) -> bool:
    """The decider: a public address only for a machine planned public."""
    return bool(history["plan"]["public"])


def make_flow() -> tideflow.GraphFlow:
    """The provisioning graph; edges come from requires/provides, plus one decided link."""
    plan = PlanMachine("plan")
    floating = AssignFloatingIp("assign-floating-ip")
    flow = tideflow.GraphFlow("provision-vm").add(
        plan,
        ReserveAddress("reserve-address"),
        CreateVolume("create-volume"),
        FetchImage("fetch-image"),
        Boot("boot"),
        floating,
        RegisterDns("register-dns"),
    )
    # the decider sees plan's result; when it says no, assign-floating-ip is IGNOREd and,
    # by depth ALL (the default), register-dns after it too
    flow.link(plan, floating, decider=wants_public)
    return flow


def provision(**store: Any) -> None:
    engine = tideflow.load(make_flow(), store=store, engine="parallel", max_workers=4)
    BRANCHES.clear()
    engine.run()
    # the three branches ran at once: each started before any other had ended
    overlapped = max(s for _, s, _ in BRANCHES) < min(e for _, _, e in BRANCHES)
    print(f"  {len(BRANCHES)} branches overlapped: {overlapped}")
    names = [
        "reserve-address",
        "create-volume",
        "fetch-image",
        "assign-floating-ip",
        "register-dns",
    ]
    states = {name: str(engine.storage.get_atom_state(name)) for name in names}
    print(f"  states: {states}")
    print(f"done: {engine.storage.fetch('vm')}")


if __name__ == "__main__":
    print("a public machine:")
    provision(name="web-1", public=True)
    print("a private machine:")
    provision(name="db-1", public=False)
