"""Benchmarks of tideflow against TaskFlow 6.5, measured side by side: ``python -m bench``."""
