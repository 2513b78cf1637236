"""The Notifier type on its own: ANY, ordering, filters, errors, register_deregister."""

from taskflow.types import notifier


def cb(name):
    def call(event, *args, details=None, **kwargs):
        print(f"  {name} got {event} args={args} details={details} kwargs={kwargs}")

    return call


n = notifier.Notifier()
print("ANY", notifier.Notifier.ANY)
specific = cb("specific")
anything = cb("any")
n.register("e1", specific)
n.register(notifier.Notifier.ANY, anything)
n.register("e1", cb("bound"), args=[1], kwargs={"k": 2})
n.register("e1", cb("filtered"), details_filter=lambda d: d.get("pass"))
print("len", len(n))
n.notify("e1", {"pass": False})
n.notify("e2", {"x": 1})
print("is_registered", n.is_registered("e1", specific), n.is_registered("e2", specific))
try:
    n.register("e1", specific)
except ValueError:
    print("twice: ValueError")
try:
    n.register("e1", "not callable")
except ValueError:
    print("not callable: ValueError")
print("deregister", n.deregister("e1", specific), n.deregister("e1", specific))


def broken(event, details):
    raise RuntimeError("listener bug")


n.register("e3", broken)
n.register("e3", cb("after-broken"))
n.notify("e3", {})
print("survived a raising listener")
print("deregister_event", n.deregister_event("e3"))

temp = cb("temporary")
with notifier.register_deregister(n, "e4", temp):
    print("inside", n.is_registered("e4", temp))
    n.notify("e4", {})
print("outside", n.is_registered("e4", temp))
with notifier.register_deregister(n, "e4"):
    print("no callback: nothing registered", n.is_registered("e4", temp))

r = notifier.RestrictedNotifier(["a", "b"])
r.register("a", cb("ra"))
try:
    r.register("c", cb("rc"))
except ValueError:
    print("restricted: ValueError")
r.register(notifier.Notifier.ANY, cb("rany"))
r2 = notifier.RestrictedNotifier(["a"], allow_any=False)
try:
    r2.register(notifier.Notifier.ANY, cb("nope"))
except ValueError:
    print("restricted without any: ValueError")
r.notify("a", {"v": 1})
