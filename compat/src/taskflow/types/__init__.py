"""TaskFlow's ``taskflow.types``: failures and notifiers."""
