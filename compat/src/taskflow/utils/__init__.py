"""TaskFlow's ``taskflow.utils``: the small helpers TaskFlow programs import."""
