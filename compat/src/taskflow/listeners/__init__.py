"""TaskFlow's ``taskflow.listeners``: ready-made observers of an engine's state changes."""
