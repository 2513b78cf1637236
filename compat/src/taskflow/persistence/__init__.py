"""TaskFlow's ``taskflow.persistence``: record models and the stores that keep them."""
