"""TaskFlow's ``taskflow.conductors``: conductors (see :mod:`taskflow.conductors.base`)."""
