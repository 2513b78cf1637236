"""Parallel engines on executors the program brings: futurist and concurrent.futures."""

import concurrent.futures
import threading

import futurist

import taskflow.engines
from taskflow import task
from taskflow.patterns import linear_flow as lf
from taskflow.patterns import unordered_flow as uf

barrier = threading.Barrier(3, timeout=10)


class Meet(task.Task):
    """Only finishes if all three siblings run at the same time."""

    def execute(self):
        barrier.wait()
        return threading.current_thread() is not threading.main_thread()


class Sum(task.Task):
    def execute(self, r1, r2, r3):
        return [r1, r2, r3]


def make(name):
    return lf.Flow(name).add(
        uf.Flow(f"{name}-par").add(
            Meet("m1", provides="r1"), Meet("m2", provides="r2"), Meet("m3", provides="r3")
        ),
        Sum("sum", provides="all"),
    )


for label, executor in (
    ("futurist", futurist.ThreadPoolExecutor(max_workers=3)),
    ("concurrent.futures", concurrent.futures.ThreadPoolExecutor(max_workers=3)),
):
    barrier.reset()
    engine = taskflow.engines.load(make(label), engine="parallel", executor=executor)
    engine.run()
    print(
        label,
        "in worker threads",
        engine.storage.fetch("all"),
        "flow",
        engine.storage.get_flow_state(),
    )
    # The program's own executor is left running for it to shut down.
    print(label, "still usable", executor.submit(lambda: 7).result())
    executor.shutdown()

barrier.reset()
engine = taskflow.engines.load(make("workers"), engine="parallel", max_workers=3)
engine.run()
print("max_workers", engine.storage.fetch("all"), engine.options)

barrier.reset()
engine = taskflow.engines.load(
    make("threaded"), engine="parallel", executor="threaded", max_workers=3
)
engine.run()
print("executor string", engine.storage.fetch("all"), sorted(engine.options))

print("default options", taskflow.engines.load(lf.Flow("o")).options)
print("unknown option kept", taskflow.engines.load(lf.Flow("o"), bogus_opt=1).options)
try:
    taskflow.engines.load(lf.Flow("o"), engine="parallel", executor="nope")
except ValueError:
    print("unknown executor string: ValueError")
