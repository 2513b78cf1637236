"""A Python file with no flow in it."""

ANSWER = 42
