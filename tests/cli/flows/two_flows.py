"""Two flows and no way to tell which one is meant."""

import tideflow

first = tideflow.LinearFlow("first").add(tideflow.task(name="a")(lambda: 1)())
second = tideflow.LinearFlow("second").add(tideflow.task(name="b")(lambda: 2)())
