"""TaskFlow's ``taskflow.patterns``: linear, unordered and graph flows."""
