"""The ``tideflow`` command: run a flow and watch it, then list, show, resume and draw runs.

::

    tideflow run FILE.py[:NAME] [--store NAME=VALUE ...] [--store-json FILE]
                 [--engine serial|parallel] [--executor threads|processes|asyncio]
                 [--workers N] [--db URL] [--quiet] [--json]
    tideflow runs [--state S] [--limit N] [--json]
    tideflow show RUN [--json]
    tideflow resume RUN
    tideflow graph FILE.py[:NAME] [--format text|dot|mermaid]
    tideflow validate FILE.py[:NAME]
    tideflow conductor --board URL --allow PREFIX [--store URL] [--workers N]
                       [--pool threads|processes] [--lease S] [--grace S]
                       [--max-jobs N] [--until-idle] [--name NAME]
    tideflow jobs post NAME FACTORY --board URL --allow PREFIX [--arg JSON ...]
                       [--kwarg NAME=JSON ...] [--store NAME=VALUE ...] [--priority N]
    tideflow jobs list|show UUID|trash UUID [--board URL]

Runs are recorded in ``./.tideflow/runs.db`` (SQLite) unless ``--db URL`` or the
``TIDEFLOW_DB`` environment variable name another store; the job commands' board is
``--board URL`` or ``TIDEFLOW_BOARD``. Exit codes: 0 success, 1 the
run failed (or the flow is invalid), 2 a mistake in the command (one line on stderr,
never a traceback), 130 interrupted (Ctrl-C suspends the run; the command that resumes
it is printed). Needs the ``cli`` extra: ``pip install 'tideflow[cli]'`` (rich).
Built on tideflow's public API only.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

__all__ = ["main"]

_USAGE_HINT = "see `tideflow --help`"


class _Parser(argparse.ArgumentParser):
    """argparse, with a mistake reported as one line (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"tideflow: error: {message} ({_USAGE_HINT})\n")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be 1 or more")
    return value


def _add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        metavar="URL",
        help="store URL (default: sqlite in ./.tideflow/runs.db, or $TIDEFLOW_DB)",
    )


def _add_store(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        metavar="NAME=VALUE",
        action="extend",
        nargs="+",
        help="a value the flow requires (VALUE read as JSON when it is JSON, else text)",
    )
    parser.add_argument("--store-json", metavar="FILE", help="values from a JSON object file")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tideflow",
        description=(
            "Run tideflow flows, watch them, and inspect and resume recorded runs; "
            "post jobs to a job board and run conductors that claim them."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    spec_help = "FILE.py, FILE.py:NAME or module:attr (a flow, or a function returning one)"

    run = sub.add_parser("run", help="run a flow with a durable record and live progress")
    run.add_argument("flow", metavar="FILE.py[:NAME]", help=spec_help)
    _add_store(run)
    run.add_argument("--engine", choices=("serial", "parallel"))
    run.add_argument("--executor", metavar="NAME", help="threads, processes, asyncio, ...")
    run.add_argument("--workers", metavar="N", type=_positive)
    _add_db(run)
    _add_output(run)

    runs = sub.add_parser("runs", help="list recorded runs, newest first")
    runs.add_argument("--state", metavar="S", help="only runs in this flow state")
    runs.add_argument("--limit", metavar="N", type=_positive, default=20)
    runs.add_argument("--json", action="store_true", help="a JSON list")
    _add_db(runs)

    show = sub.add_parser("show", help="one run's atoms, results and failures")
    show.add_argument("run", metavar="RUN", help="a run id, or a unique start of one")
    show.add_argument("--json", action="store_true", help="a JSON object")
    _add_db(show)

    resume = sub.add_parser("resume", help="finish a suspended, interrupted or crashed run")
    resume.add_argument("run", metavar="RUN", help="a run id, or a unique start of one")
    _add_db(resume)
    _add_output(resume)

    graph = sub.add_parser("graph", help="draw the compiled flow")
    graph.add_argument("flow", metavar="FILE.py[:NAME]", help=spec_help)
    graph.add_argument("--format", choices=("text", "dot", "mermaid"), default="text")

    validate = sub.add_parser("validate", help="check a flow without running it")
    validate.add_argument("flow", metavar="FILE.py[:NAME]", help=spec_help)
    _add_store(validate)

    from tideflow.cli._jobs import add_parsers  # noqa: PLC0415  # rich is an extra

    add_parsers(sub, _positive)
    return parser


def _add_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress, only the outcome")
    parser.add_argument("--json", action="store_true", help="one JSON event per line")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``tideflow`` command with ``argv`` (default: ``sys.argv[1:]``)."""
    try:
        from tideflow.cli import _commands, _jobs  # noqa: PLC0415  # rich is an extra
        from tideflow.cli._load import CommandError  # noqa: PLC0415
    except ImportError as exc:
        if exc.name != "rich":
            raise
        print(
            "tideflow: error: the command needs rich: pip install 'tideflow[cli]'",
            file=sys.stderr,
        )
        return 2
    args = _parser().parse_args(argv)
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "run": _commands.run,
        "runs": _commands.runs,
        "show": _commands.show,
        "resume": _commands.resume,
        "graph": _commands.graph,
        "validate": _commands.validate,
        "conductor": _jobs.conductor,
        "jobs post": _jobs.jobs_post,
        "jobs list": _jobs.jobs_list,
        "jobs show": _jobs.jobs_show,
        "jobs trash": _jobs.jobs_trash,
    }
    command = args.command if args.command != "jobs" else f"jobs {args.verb}"
    try:
        return commands[command](args)
    except CommandError as exc:
        print(f"tideflow: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tideflow: interrupted", file=sys.stderr)
        return 130
