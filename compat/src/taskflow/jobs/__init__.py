"""TaskFlow's ``taskflow.jobs``: job boards (see :mod:`taskflow.jobs.base`)."""
