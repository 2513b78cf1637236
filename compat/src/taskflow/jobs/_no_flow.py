"""The flow factory named by jobs posted without a flow to run (no logbook, or no factory).

tideflow's boards keep a flow factory with every job; a TaskFlow job posted without a
logbook (for a program's own workers, which claim and consume it themselves) is given
this one. Conductors never import it: the conductors of this package run only the
factories of the board's ``allowed`` prefixes, which never hold this module, so they
trash such a job, as TaskFlow's conductors do with a job that has no logbook.
"""


def no_flow_to_run() -> None:
    """Nothing: the job was posted without a flow (see the module docstring)."""
