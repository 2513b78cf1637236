"""The job commands: ``tideflow conductor`` and ``tideflow jobs post|list|show|trash``.

The board is ``--board URL`` or ``$TIDEFLOW_BOARD``; ``conductor`` records runs in
``--store URL`` (default: ``$TIDEFLOW_DB``, else ``./.tideflow/runs.db`` as the other
commands). A mistake (a URL that opens nothing, a factory outside ``--allow``, a job
that does not exist) is one line on stderr and exit code 2, as everywhere in the CLI.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from typing import Any

from rich.table import Table

import tideflow
from tideflow import jobs as tf_jobs
from tideflow.cli._commands import DEFAULT_DB, _console, _one_line, _store_values
from tideflow.cli._load import CommandError

__all__ = ["add_parsers", "conductor", "jobs_list", "jobs_post", "jobs_show", "jobs_trash"]

_OPEN_ERRORS = (tideflow.TideflowError, ValueError, TypeError, ImportError, OSError)
_CLI_OWNER = "tideflow-cli"


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0 seconds")
    return value


def add_parsers(sub: Any, positive: Any) -> None:  # argparse's private types
    """Add ``conductor`` and ``jobs`` to the subcommands ``sub``."""
    board_help = "job board URL (default: $TIDEFLOW_BOARD)"
    option_help = "a board option (table, namespace, max_attempts, ...; VALUE read as JSON)"
    conductor = sub.add_parser("conductor", help="claim jobs from a board and run their flows")
    conductor.add_argument("--board", metavar="URL", help=board_help)
    conductor.add_argument(
        "--board-option", metavar="NAME=VALUE", action="append", help=option_help
    )
    conductor.add_argument(
        "--store",
        metavar="URL",
        help=f"store URL for the runs (default: $TIDEFLOW_DB or {DEFAULT_DB})",
    )
    conductor.add_argument(
        "--allow",
        metavar="PREFIX",
        action="append",
        help="a module prefix whose flow factories may run (repeat for more); required",
    )
    conductor.add_argument("--name", help="the owner name claims are made under (host:pid)")
    conductor.add_argument("--workers", metavar="N", type=positive, help="run N jobs at once")
    conductor.add_argument("--pool", choices=("threads", "processes"), default=None)
    conductor.add_argument("--lease", metavar="S", type=_seconds, default=None)
    conductor.add_argument("--grace", metavar="S", type=float, default=None)
    conductor.add_argument("--max-jobs", metavar="N", type=positive, default=None)
    conductor.add_argument(
        "--claim-ahead",
        metavar="N",
        type=positive,
        default=None,
        help="claim up to N short jobs in one call to the board (default 10; 1: one at a "
        "time); without --workers only",
    )
    conductor.add_argument(
        "--until-idle", action="store_true", help="stop once no job is left to claim"
    )

    jobs = sub.add_parser("jobs", help="post, list, show and trash jobs on a board")
    verbs = jobs.add_subparsers(dest="verb", metavar="VERB", parser_class=type(jobs))
    verbs.required = True
    post = verbs.add_parser("post", help="post a job: a flow factory to call, with arguments")
    post.add_argument("name", metavar="NAME")
    post.add_argument("factory", metavar="FACTORY", help="package.module:function")
    post.add_argument("--arg", metavar="JSON", action="append", help="a positional argument")
    post.add_argument("--kwarg", metavar="NAME=JSON", action="append", help="a keyword argument")
    post.add_argument(
        "--store",
        metavar="NAME=VALUE",
        action="extend",
        nargs="+",
        help="a value the flow requires (VALUE read as JSON when it is JSON, else text)",
    )
    post.add_argument("--priority", metavar="N", type=int, default=0)
    post.add_argument("--board", metavar="URL", help=board_help)
    post.add_argument("--board-option", metavar="NAME=VALUE", action="append", help=option_help)
    post.add_argument(
        "--allow", metavar="PREFIX", action="append", help="the board's allow-list (required)"
    )
    post.add_argument("--json", action="store_true", help="the job as a JSON object")
    listing = verbs.add_parser("list", help="jobs not trashed, in claim order")
    listing.add_argument("--board", metavar="URL", help=board_help)
    listing.add_argument("--board-option", metavar="NAME=VALUE", action="append", help=option_help)
    listing.add_argument("--json", action="store_true", help="a JSON list")
    show = verbs.add_parser("show", help="one job, every field")
    show.add_argument("job", metavar="UUID", help="a job uuid, or a unique start of one")
    show.add_argument("--board", metavar="URL", help=board_help)
    show.add_argument("--board-option", metavar="NAME=VALUE", action="append", help=option_help)
    show.add_argument("--json", action="store_true", help="a JSON object")
    trash = verbs.add_parser("trash", help="move a job that nobody holds to TRASHED")
    trash.add_argument("job", metavar="UUID", help="a job uuid, or a unique start of one")
    trash.add_argument("--board", metavar="URL", help=board_help)
    trash.add_argument("--board-option", metavar="NAME=VALUE", action="append", help=option_help)


# -- opening things -----------------------------------------------------------------------


def _board_url(given: str | None) -> str:
    url = given or os.environ.get("TIDEFLOW_BOARD")
    if not url:
        raise CommandError(
            "no job board: pass --board URL (for example --board sqlite:///jobs.db) "
            "or set TIDEFLOW_BOARD"
        )
    return url


def _board_options(pairs: list[str] | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs or ():
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise CommandError(
                f"--board-option {pair!r}: give NAME=VALUE, for example --board-option table=jobs"
            )
        try:
            options[name] = json.loads(text)
        except ValueError:
            options[name] = text  # not JSON: the text itself
    if "allowed" in options:
        raise CommandError("give the allow-list with --allow PREFIX, not --board-option allowed=")
    return options


@contextlib.contextmanager
def _board(args: argparse.Namespace, allowed: tuple[str, ...] = ()) -> Iterator[Any]:
    url = _board_url(args.board)
    options = _board_options(args.board_option)
    try:
        board = tf_jobs.connect(url, allowed=allowed, **options)
    except _OPEN_ERRORS as exc:
        raise CommandError(f"--board {url}: {_one_line(exc)}") from exc
    try:
        yield board
    except tideflow.StoreError as exc:
        raise CommandError(f"--board {url}: {_one_line(exc)}") from exc
    finally:
        board.close()


def _allowed(given: list[str] | None, command: str) -> tuple[str, ...]:
    if not given:
        raise CommandError(
            f"{command} needs --allow PREFIX: the module prefixes whose flow factories may "
            "run (for example --allow myapp.flows), so a row in a shared database cannot "
            "make a worker import arbitrary code"
        )
    return tuple(given)


def _find(board: Any, given: str) -> Any:  # a Board and its Job
    key = given.strip()
    if not key:
        raise CommandError("give a job uuid (or the start of one): `tideflow jobs list` lists them")
    with contextlib.suppress(tideflow.NotFoundError):
        return board.get(key)
    matches = [job for job in board.iterjobs() if job.uuid.startswith(key)]
    if not matches:
        raise CommandError(
            f"no job {key!r} on {board.url} (consumed, trashed or never posted): "
            "`tideflow jobs list` lists the jobs there"
        )
    if len(matches) > 1:
        raise CommandError(
            f"job uuid {key!r} is ambiguous: {len(matches)} jobs start with it; give more of it"
        )
    return matches[0]


def _job_dict(job: Any) -> dict[str, Any]:  # a Job
    data = dataclasses.asdict(job)
    data["state"] = str(job.state)
    data["args"] = list(job.args)
    return data


def _json_value(text: str, option: str) -> Any:  # any JSON value
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CommandError(f"{option} {text!r}: not JSON ({exc})") from exc


# -- jobs -----------------------------------------------------------------------------------


def jobs_post(args: argparse.Namespace) -> int:
    """``tideflow jobs post NAME FACTORY``: add a job to the board."""
    allowed = _allowed(args.allow, "tideflow jobs post")
    positional = [_json_value(text, "--arg") for text in args.arg or ()]
    keywords: dict[str, Any] = {}
    for pair in args.kwarg or ():
        name, sep, text = pair.partition("=")
        if not sep or not name.strip():
            raise CommandError(f"--kwarg {pair!r}: give NAME=JSON, for example --kwarg n=3")
        keywords[name.strip()] = _json_value(text, "--kwarg")
    values = _store_values(args.store, None)
    with _board(args, allowed) as board:
        try:
            job = board.post(
                args.name,
                args.factory,
                args=positional,
                kwargs=keywords,
                store=values,
                priority=args.priority,
            )
        except (tf_jobs.FactoryNotAllowedError, TypeError, ValueError) as exc:
            raise CommandError(_one_line(exc)) from exc
    if args.json:
        print(json.dumps(_job_dict(job)))
    else:
        print(job.uuid)
    return 0


def jobs_list(args: argparse.Namespace) -> int:
    """``tideflow jobs list``: the jobs not trashed, in the order they would be claimed."""
    with _board(args) as board:
        found = list(board.iterjobs())
    if args.json:
        print(json.dumps([_job_dict(job) for job in found]))
        return 0
    console = _console()
    if not found:
        console.print(f"no jobs on {board.url}")
        return 0
    now = time.time()
    table = Table(caption="job uuids may be abbreviated to any unique start")
    for column in ("job", "name", "factory", "state", "owner", "lease", "token", "attempts"):
        table.add_column(column, no_wrap=True)
    for job in found:
        left = "-"
        if job.lease_expires is not None:
            remaining = job.lease_expires - now
            left = f"{remaining:.1f} s" if remaining > 0 else "ran out"
        table.add_row(
            job.uuid[:8],
            job.name,
            job.factory,
            str(job.state),
            job.owner or "-",
            left,
            str(job.token),
            str(job.attempts),
        )
    console.print(table)
    return 0


def jobs_show(args: argparse.Namespace) -> int:
    """``tideflow jobs show UUID``: one job's every field."""
    with _board(args) as board:
        job = _find(board, args.job)
    data = _job_dict(job)
    if args.json:
        print(json.dumps(data))
        return 0
    width = max(len(key) for key in data)
    for key, value in data.items():
        shown = value if isinstance(value, str) else json.dumps(value)
        print(f"{key:<{width}}  {shown}")
    return 0


def jobs_trash(args: argparse.Namespace) -> int:
    """``tideflow jobs trash UUID``: claim a job nobody holds, and trash it."""
    with _board(args) as board:
        job = _find(board, args.job)
    # the claim checks the factory against the board's allow-list: this board allows
    # exactly that job's module (nothing is imported here)
    module = job.factory.partition(":")[0]
    with _board(args, (module,) if module else ()) as board:
        try:
            claimed = board.claim(job, _CLI_OWNER, lease=30.0)
            board.trash(claimed, _CLI_OWNER, claimed.token)
        except (tf_jobs.JobClaimedError, tf_jobs.LeaseLostError) as exc:
            raise CommandError(
                f"{_one_line(exc)} (a job a conductor holds is trashed once that conductor "
                "lets it go: stop it, or wait for its run to end)"
            ) from exc
        except tf_jobs.FactoryNotAllowedError as exc:
            raise CommandError(_one_line(exc)) from exc
    print(f"trashed job {job.uuid} ({job.name})")
    return 0


# -- the conductor ------------------------------------------------------------------------


def conductor(args: argparse.Namespace) -> int:
    """``tideflow conductor``: claim and run jobs until stopped (SIGTERM or Ctrl-C stop it
    cleanly: running jobs finish within --grace seconds, else are suspended and given
    back; a second signal gives them back at once)."""
    import logging  # noqa: PLC0415  # only this command logs

    from tideflow.conductors import (  # noqa: PLC0415
        DEFAULT_GRACE,
        Conductor,
        PooledConductor,
        stop_on_signals,
    )

    allowed = _allowed(args.allow, "tideflow conductor")
    board_url = _board_url(args.board)
    store_url = args.store or os.environ.get("TIDEFLOW_DB")
    if not store_url:
        path = os.path.join(os.getcwd(), DEFAULT_DB)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        store_url = f"sqlite:///{path}"
    if args.pool is not None and args.workers is None:
        raise CommandError(f"--pool {args.pool} runs jobs on --workers N of them: give --workers")
    if args.claim_ahead is not None and args.workers is not None:
        raise CommandError(
            "--claim-ahead is for a conductor running one job at a time: drop it, or "
            "--workers (a pool's threads claim a job each; its processes claim ahead)"
        )
    grace = DEFAULT_GRACE if args.grace is None else args.grace
    if grace < 0:
        raise CommandError(f"--grace {args.grace}: give 0 or more seconds")
    name = args.name or f"{socket.gethostname()}:{os.getpid()}"
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # flow modules beside the command, as python -m
    options: dict[str, Any] = {
        "allowed": allowed,
        "board_options": _board_options(args.board_option),
    }
    if args.lease is not None:
        options["lease"] = args.lease
    try:
        if args.workers is None:
            if args.claim_ahead is not None:
                options["claim_ahead"] = args.claim_ahead
            made: Any = Conductor(name, board_url, store_url, **options)
        else:
            made = PooledConductor(
                name,
                board_url,
                store_url,
                workers=args.workers,
                pool=args.pool or "threads",
                **options,
            )
    except _OPEN_ERRORS as exc:
        raise CommandError(_one_line(exc)) from exc
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log = logging.getLogger("tideflow.conductors")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    pool = f", {args.workers} {args.pool or 'threads'}" if args.workers else ""
    print(
        f"conductor {name!r}: board {board_url}, store {store_url}, allowed {list(allowed)}"
        f"{pool} (SIGTERM or Ctrl-C stops it)",
        file=sys.stderr,
        flush=True,
    )
    try:
        with made, stop_on_signals(made, grace):
            dispatched = made.run(max_jobs=args.max_jobs, until_idle=args.until_idle)
    finally:
        log.removeHandler(handler)
    stats = made.statistics()
    print(
        f"conductor {name!r} stopped: {dispatched} jobs dispatched, {stats.consumed} consumed, "
        f"{stats.abandoned} abandoned, {stats.trashed} trashed, {stats.dropped} dropped",
        file=sys.stderr,
        flush=True,
    )
    return 0
