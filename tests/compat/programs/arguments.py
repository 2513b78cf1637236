"""Arguments: provides (name, tuple, set), requires, rebind, inject and store precedence."""

import taskflow.engines
from taskflow import task
from taskflow.patterns import linear_flow as lf


class Pair(task.Task):
    def execute(self):
        return (1, 2)


class Mapping(task.Task):
    def execute(self):
        return {"k1": "v1", "k2": "v2", "extra": 0}


class Show(task.Task):
    def execute(self, a, b=2, *args, **kwargs):
        print(f"  {self.name}: a={a!r} b={b!r} kwargs={sorted(kwargs.items())}")
        return a


flow = lf.Flow("args").add(
    Pair("whole", provides="pair"),
    Pair("split", provides=("p1", "p2")),
    Mapping("keys", provides={"k1", "k2"}),
    Show("plain"),
    Show("rebound_list", rebind=["p1"]),
    Show("rebound_dict", rebind={"a": "k2", "b": "p2"}),
    Show("required_extra", requires=["k1"], inject={"a": "injected"}),
    Show("inject_wins", inject={"a": "own"}),
)
values = taskflow.engines.run(flow, store={"a": "from-store", "unused": 0})
print("values", sorted(values.items()))


# Store beats a preceding provider; inject beats the store.
class Provide(task.Task):
    def execute(self):
        return "from-provider"


flow = lf.Flow("prec").add(Provide("pa", provides="a"), Show("user"))
taskflow.engines.run(flow, store={"a": "from-store"})
flow = lf.Flow("prec2").add(Provide("pa", provides="a"), Show("user"))
taskflow.engines.run(flow)

# Task shapes.
s = Show("shape")
print("requires", sorted(s.requires), "optional", sorted(s.optional))
print("rebind", sorted(s.rebind.items()))
print("provides", sorted(Pair("x", provides=("m", "n")).provides))
print("default name", Show().name)


class WithDefault(task.Task):
    default_provides = "dp"

    def execute(self):
        return 1


print(
    "default_provides", sorted(WithDefault().provides), sorted(WithDefault(provides="o").provides)
)
try:

    class Strict(task.Task):
        def execute(self, a):
            return a

    Strict(rebind={"zz": "y"})
except ValueError:
    print("extra rebind without **kwargs: ValueError")


# A functor task takes its requirements from the function's signature.
def multiply(x, factor=3):
    return x * factor


ft = task.FunctorTask(multiply, provides="product")
print("functor", ft.name.endswith("multiply"), sorted(ft.requires), sorted(ft.optional))
print("functor run", taskflow.engines.run(lf.Flow("f").add(ft), store={"x": 4})["product"])
mt = task.MapFunctorTask(lambda v: v * 10, name="map", requires=["m1", "m2"], provides="mapped")
rt = task.ReduceFunctorTask(
    lambda p, q: p + q, name="reduce", requires=["m1", "m2", "m3"], provides="reduced"
)
out = taskflow.engines.run(lf.Flow("mr").add(mt, rt), store={"m1": 1, "m2": 2, "m3": 3})
print("map/reduce", out["mapped"], out["reduced"])
