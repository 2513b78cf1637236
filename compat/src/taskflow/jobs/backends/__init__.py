"""TaskFlow's ``taskflow.jobs.backends``: find a job board by its configuration.

``fetch(name, conf, persistence=None)`` returns a :class:`taskflow.jobs.base.JobBoard`
over one of tideflow's boards. The boards that exist, and their ``conf``:

- Redis, TaskFlow's form: ``{'board': 'redis', 'host': '127.0.0.1', 'port': 6379,
  'db': 0, 'username': ..., 'password': ..., 'ssl': False, 'namespace': 'taskflow'}``
  (``socket_timeout`` and ``socket_connect_timeout`` too), or ``'redis://host:port/db'``.
- SQL (SQLite, PostgreSQL, MariaDB/MySQL): by URL, ``{'board': 'sql', 'url':
  'postgresql://user@host/db'}``, ``{'board': 'sqlite:///jobs.db'}`` or the URL alone
  (``'table'``, ``'pool_size'``, ``'busy_timeout'``, ``'connect_timeout'`` are the SQL
  board's options).

ZooKeeper (``'zookeeper'``, ``'zake'``) and etcd boards are not provided: their
configurations get :class:`~taskflow.exceptions.NotFound` naming the boards above. A
URL form may carry options in its query, as TaskFlow's (``'redis://h:6379/0?namespace=x'``).

Keys tideflow adds (in ``conf``, or as keywords of ``fetch``): ``'allowed'``, the module
prefixes whose flow factories jobs may name and conductors may run (a list, or text
separated by commas; without it, the ``TIDEFLOW_ALLOWED`` environment variable, so a
TaskFlow program runs unchanged), ``'lease'`` (seconds a claim holds unless renewed),
``'max_attempts'`` and ``'poll_interval'``. TaskFlow's Redis client keys that change
nothing here are ignored (``encoding``, ``encoding_errors``, ``retry_on_timeout``,
``health_check_interval``); those that would need what the board cannot do (a Unix
socket, client certificates, Sentinel) and unknown keys are refused with a TypeError
naming the closest known one; so is ``client=`` (the board opens its own connections).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any, Final
from urllib.parse import parse_qsl, quote

from taskflow import exceptions as exc
from taskflow.jobs.base import JobBoard
from tideflow._options import closest
from tideflow.jobs import DEFAULT_LEASE

__all__ = ["ALLOWED_ENV", "BACKEND_NAMESPACE", "BOARDS", "backend", "fetch"]

BACKEND_NAMESPACE: Final = "taskflow.jobboards"
#: The environment variable read for ``allowed`` when the configuration has none.
ALLOWED_ENV: Final = "TIDEFLOW_ALLOWED"
#: What the error for a board that does not exist names.
BOARDS: Final = (
    "'redis' ({'board': 'redis', 'host': ..., 'port': ..., 'namespace': ...}, or "
    "'redis://host:port/db') and the SQL boards by URL ({'board': 'sql', 'url': "
    "'postgresql://user@host/db'}, {'board': 'sqlite:///jobs.db'}, or the URL alone; "
    "MariaDB/MySQL too)"
)

_SQL_SCHEMES: Final = frozenset({"sqlite", "postgresql", "postgres", "mysql", "mariadb"})
_REDIS_SCHEMES: Final = frozenset({"redis", "rediss"})
_ELSEWHERE: Final = {
    "zookeeper": "TaskFlow's ZooKeeper board",
    "zake": "TaskFlow's in-memory ZooKeeper fake",
    "kazoo": "TaskFlow's ZooKeeper board",
    "etcd": "TaskFlow's etcd board",
}
#: Keys every board takes: tideflow's, for the adapter or the board.
_COMMON: Final = frozenset({"board", "allowed", "lease", "max_attempts", "poll_interval"})
_REDIS_URL_KEYS: Final = frozenset({"host", "port", "db", "username", "password", "ssl"})
_REDIS_OPTIONS: Final = {
    "namespace": "namespace",
    "socket_timeout": "socket_timeout",
    "socket_connect_timeout": "connect_timeout",
}
_REDIS_IGNORED: Final = frozenset(
    {"encoding", "encoding_errors", "retry_on_timeout", "health_check_interval"}
)
_REDIS_REFUSED: Final = {
    "unix_socket_path": "a Unix socket (give host and port)",
    "sentinel": "Redis Sentinel (give the master's host and port)",
    "sentinel_fallbacks": "Redis Sentinel (give the master's host and port)",
    "sentinel_kwargs": "Redis Sentinel (give the master's host and port)",
    "ssl_keyfile": "client certificates (ssl=True verifies the server only)",
    "ssl_certfile": "client certificates (ssl=True verifies the server only)",
    "ssl_cert_reqs": "TLS settings beyond ssl=True",
    "ssl_ca_certs": "TLS settings beyond ssl=True",
}
_SQL_OPTIONS: Final = frozenset({"url", "table", "pool_size", "busy_timeout", "connect_timeout"})
#: Options given as numbers, which a URL's query gives as text.
_NUMBERS: Final = ("max_attempts", "poll_interval")


def fetch(
    name: str,
    conf: str | Mapping[str, Any],
    namespace: str = BACKEND_NAMESPACE,
    **kwargs: Any,
) -> JobBoard:
    """The job board ``conf`` names (see the module docstring), not yet connected.

    Keywords: ``persistence`` (where jobs' logbooks are kept), ``allowed`` (tideflow's,
    over the configuration's). ``namespace`` is accepted and ignored: boards are not
    looked up through entry points here.
    """
    del namespace
    persistence = kwargs.pop("persistence", None)
    allowed_kw = kwargs.pop("allowed", None)
    if "client" in kwargs:
        raise TypeError(
            "client= is not supported: tideflow's boards open their own connections from "
            "the configuration (host, port, ...), with leases and fencing of their own"
        )
    if kwargs:
        raise TypeError(f"fetch() got unexpected keyword arguments {sorted(kwargs)}")
    config = _as_dict(conf)
    kind = config.get("board")
    if not isinstance(kind, str) or not kind:
        raise ValueError(
            f"a job board's configuration names its board, got {dict(config)!r}: the boards "
            f"are {BOARDS}"
        )
    scheme = kind.partition("://")[0].partition("+")[0].lower() if "://" in kind else kind
    allowed = _allowed(allowed_kw if allowed_kw is not None else config.get("allowed"))
    lease = config.get("lease", DEFAULT_LEASE)
    common: dict[str, Any] = {k: _number(config[k]) for k in _NUMBERS if k in config}
    if scheme == "redis" and "://" not in kind:
        url, options = _redis(config)
    elif scheme in _REDIS_SCHEMES:
        url, options = kind, _options(config, "Redis board", _REDIS_OPTIONS)
    elif scheme == "sql" or scheme in _SQL_SCHEMES:
        given = kind if "://" in kind else config.get("url")
        if not isinstance(given, str) or "://" not in given:
            raise ValueError(
                "{'board': 'sql'} takes the database's URL as 'url', for instance "
                f"{{'board': 'sql', 'url': 'postgresql://user@host/db'}}, got {given!r}"
            )
        url = given
        options = _options(config, "SQL board", {k: k for k in _SQL_OPTIONS - {"url"}})
        options.update({k: _number(v) for k, v in options.items() if k != "table"})
    else:
        what = _ELSEWHERE.get(scheme, f"a board named {kind!r}")
        raise exc.NotFound(
            f"Could not find jobboard {kind}: {what} is not provided by tideflow; the "
            f"boards are {BOARDS}"
        )
    return JobBoard(
        name,
        config,
        url=url,
        options={**options, **common},
        allowed=allowed,
        lease=_seconds("lease", lease),
        persistence=persistence,
    )


@contextlib.contextmanager
def backend(
    name: str, conf: str | Mapping[str, Any], namespace: str = BACKEND_NAMESPACE, **kwargs: Any
) -> Iterator[JobBoard]:
    """Fetch a board, connect it, and close it when the block ends."""
    board = fetch(name, conf, namespace=namespace, **kwargs)
    board.connect()
    with contextlib.closing(board):
        yield board


def _as_dict(conf: str | Mapping[str, Any]) -> dict[str, Any]:
    """TaskFlow's two forms: a dict with 'board', or a URI whose query holds options."""
    if isinstance(conf, Mapping):
        return dict(conf)
    if not isinstance(conf, str):
        raise TypeError(f"a job board's configuration is a dict or a URL, got {conf!r}")
    if "://" not in conf:
        return {"board": conf}
    url, _, query = conf.partition("?")  # not urlsplit: it would drop sqlite:////'s slashes
    config: dict[str, Any] = dict(parse_qsl(query))
    config["board"] = url
    return config


def _allowed(value: Any) -> tuple[str, ...]:
    if value is None:
        value = os.environ.get(ALLOWED_ENV, "")
    if isinstance(value, str):
        return tuple(p.strip() for p in value.split(",") if p.strip())
    if isinstance(value, list | tuple) and all(isinstance(p, str) and p for p in value):
        return tuple(value)
    raise TypeError(
        f"'allowed' takes module prefixes, as a list (['myapp.flows']) or text separated by "
        f"commas, got {value!r}"
    )


def _number(value: Any) -> Any:
    """A number a URL's query gave as text ('5', '0.5'), as a number; else unchanged."""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return int(value)
        with contextlib.suppress(ValueError):
            return float(value)
    return value


def _seconds(option: str, value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not seconds > 0:
        raise ValueError(f"'{option}' takes a number of seconds, more than 0, got {value!r}")
    return seconds


def _options(config: Mapping[str, Any], board: str, known: Mapping[str, str]) -> dict[str, Any]:
    """The tideflow board options of ``config`` (keys ``known`` maps to them)."""
    options: dict[str, Any] = {}
    for key, value in config.items():
        if key in _COMMON or (key == "url" and "url" not in known):
            continue
        if key in known:
            options[known[key]] = value
            continue
        names = sorted(_COMMON | set(known))
        raise TypeError(
            f"unknown option {key!r} for the {board}: {closest(str(key), names)}the options "
            f"it understands are {names}"
        )
    return options


def _redis(config: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """TaskFlow's Redis keys as a redis:// URL and the Redis board's options."""
    rest: dict[str, Any] = {"namespace": "taskflow"}  # TaskFlow's default namespace
    for key, value in config.items():
        if key in _REDIS_REFUSED:
            raise TypeError(
                f"the Redis board's key {key!r} asks for {_REDIS_REFUSED[key]}, which "
                "tideflow's Redis board does not support"
            )
        if key in _REDIS_IGNORED or key in _REDIS_URL_KEYS:
            continue
        rest[key] = value
    options = _options(rest, "Redis board", _REDIS_OPTIONS)
    for option in ("socket_timeout", "connect_timeout"):
        if option in options:
            options[option] = _seconds(option, options[option])
    ssl = str(config.get("ssl", "")).strip().lower() in ("1", "t", "true", "on", "y", "yes")
    user = config.get("username")
    password = config.get("password")
    auth = ""
    if user or password:
        auth = quote(str(user or ""), safe="")
        if password:
            auth += ":" + quote(str(password), safe="")
        auth += "@"
    host = str(config.get("host") or "localhost")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    port = int(config.get("port") or 6379)
    db = int(config.get("db") or 0)
    return f"{'rediss' if ssl else 'redis'}://{auth}{host}:{port}/{db}", options
