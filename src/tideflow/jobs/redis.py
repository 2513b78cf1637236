"""The Redis job board: the SQL board's contract on one Redis server.

``RedisBoard("redis://127.0.0.1:6379/0", allowed=("myapp.flows",))`` keeps its jobs
under the key prefix ``namespace`` (default ``tideflow``)::

    {ns}:job:{uuid}   a hash per job: the Job's fields (values as codec text), plus
                      ``rank``, the job's place in the orderings below
    {ns}:seq          the posting counter ("age")
    {ns}:order        sorted set of the jobs not trashed       (score -priority, member rank)
    {ns}:free         sorted set of the jobs a claim may take  (score -priority, member rank)
    {ns}:leases       sorted set of the live claims             (score lease end, member rank)
    {ns}:trashed      sorted set of the trashed jobs' uuids     (score when trashed)
    {ns}:wake         pub/sub channel: a job became free

A rank is ``'%020d:uuid'`` of the posting counter, so members of equal score (equal
priority) sort oldest first: ``ZRANGE`` gives priority-then-age order at once.

- **Atomic steps.** Every change is one Lua script (redis-py ``register_script``): the
  claim checks state, lease and factory and takes the job in one step, so of racing
  claimers exactly one wins; owner calls (renew, consume, abandon, trash) compare owner,
  token and state and write in the same step (compare-and-set on the fencing token).
- **The clock** is the Redis server's (``TIME`` inside each script), so conductors on
  machines with skewed clocks agree on when a lease ends.
- **Leases that run out** are moved from ``leases`` to ``free`` by the next script that
  looks for free jobs (the job hash keeps state CLAIMED, as a SQL row does, so the old
  owner may still renew until someone claims it). The hash is the truth; the sorted sets
  are its indexes, kept in step inside the same scripts.
- **Attempts** count abandons and claims that take over a run-out lease; the
  ``max_attempts``-th moves the job to TRASHED (see :mod:`tideflow.jobs.base`).
- **wait()** subscribes to ``{ns}:wake`` (published on post and on an abandon that
  frees a job) before it looks, so a post between the look and the sleep still wakes
  it; it also wakes when the earliest lease runs out, and every ``poll_interval``
  seconds in case a message was lost. Each waiting thread keeps its subscribed
  connection between waits (until :meth:`RedisBoard.close`); one that fails is
  dropped, that wait raises StoreError, and the next subscribes anew.
- **Listings** (``iterjobs``, and ``wait`` while anyone listens for POSTED/REMOVAL)
  are one script each: a consistent snapshot, which holds the server for as long as
  it takes to read every job (fine for thousands, not for millions).
- **Fencing.** A run's writes go to a SQL store, which cannot check a Redis token in
  its own transaction; :meth:`RedisBoard.current_token` tells whether a token is
  still current, and every owner call is refused once it is not.

Redis Cluster is not supported: the scripts reach keys they find in the sorted sets.
The ``redis`` package is needed only here: ``pip install 'tideflow[redis]'``.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
import uuid as uuidlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final, NoReturn

from tideflow.errors import StoreError
from tideflow.jobs._common import (
    Sightings,
    check_allowed,
    check_claim_next,
    check_consumed,
    check_max_attempts,
    check_seconds,
    check_who,
    config_options,
    encode_post,
    exhausted_error,
    held_error,
    lost_error,
    missing_error,
    new_notifier,
    trashed_error,
    uuid_of,
)
from tideflow.jobs.base import (
    DEFAULT_LEASE,
    DEFAULT_MAX_ATTEMPTS,
    Job,
    JobState,
    Settled,
    check_factory,
)
from tideflow.persistence.codec import Codec, codec_named

__all__ = ["RedisBoard"]

#: Keyword options of :class:`RedisBoard` (besides ``connection``, the URL).
OPTIONS: Final = (
    "allowed",
    "codec",
    "connect_timeout",
    "max_attempts",
    "namespace",
    "poll_interval",
    "socket_timeout",
)

INSTALL: Final = "pip install 'tideflow[redis]'"
_SCHEMES: Final = ("redis", "rediss")
_NAMESPACE: Final = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
#: Free jobs claim_next looks at past those whose factory this board may not run.
_CLAIM_SCAN: Final = 32
_DOING: Final = {
    "renew": "renewing the lease of",
    "consume": "consuming",
    "abandon": "abandoning",
    "release": "releasing",
    "trash": "trashing",
}

# Every script starts with ARGV[1] = the key prefix ("{namespace}:").
_PRELUDE: Final = """
local P = ARGV[1]
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function fmt(x) return string.format('%.6f', x) end
local function jkey(uuid) return P .. 'job:' .. uuid end
local function uuid_of(rank) return string.sub(rank, 22) end
-- claims whose lease ran out become free (the hash keeps state CLAIMED)
local function sweep(t)
  for _, rank in ipairs(redis.call('ZRANGEBYSCORE', P .. 'leases', '-inf', '(' .. fmt(t))) do
    redis.call('ZREM', P .. 'leases', rank)
    local prio = redis.call('HGET', jkey(uuid_of(rank)), 'priority')
    if prio then redis.call('ZADD', P .. 'free', -tonumber(prio), rank) end
  end
end
local function allowed(factory, first)
  local module = string.match(factory, '^([^:]*):') or factory
  for i = first, #ARGV do
    local p = ARGV[i]
    if module == p or string.sub(module, 1, #p + 1) == p .. '.' then return true end
  end
  return false
end
local function to_trash(key, uuid, rank, t, attempts)
  redis.call('HSET', key, 'state', 'TRASHED', 'owner', '', 'lease_expires', '',
             'attempts', attempts, 'updated_at', fmt(t))
  redis.call('ZREM', P .. 'order', rank)
  redis.call('ZREM', P .. 'free', rank)
  redis.call('ZREM', P .. 'leases', rank)
  redis.call('ZADD', P .. 'trashed', fmt(t), uuid)
end
-- claim a free job, or trash it when taking over its run-out lease is its last attempt
local function take(key, uuid, who, lease, max_attempts, t)
  local h = redis.call('HMGET', key, 'state', 'attempts', 'rank')
  local attempts = tonumber(h[2])
  if h[1] == 'CLAIMED' then
    attempts = attempts + 1
    if attempts >= max_attempts then
      to_trash(key, uuid, h[3], t, attempts)
      return false
    end
  end
  local ends = fmt(t + lease)
  redis.call('HSET', key, 'state', 'CLAIMED', 'owner', who, 'lease_expires', ends,
             'attempts', attempts, 'updated_at', fmt(t))
  redis.call('HINCRBY', key, 'token', 1)
  redis.call('ZREM', P .. 'free', h[3])
  redis.call('ZADD', P .. 'leases', ends, h[3])
  return true
end
-- a consumed job: gone from the board
local function forget(key, rank)
  redis.call('DEL', key)
  redis.call('ZREM', P .. 'order', rank)
  redis.call('ZREM', P .. 'free', rank)
  redis.call('ZREM', P .. 'leases', rank)
end
-- claim the first free job whose factory is allowed (prefixes from ARGV[first] on),
-- looking past at most scan others' jobs; trashes run-out last attempts on the way
-- -> {'claimed'|'none', hashes of the jobs trashed on the way..., the claimed job's hash}
local function claim_next(who, lease, max_attempts, scan, first)
  local t = now()
  sweep(t)
  local out = {'none'}
  local skipped = 0
  while skipped < scan do
    local ranks = redis.call('ZRANGE', P .. 'free', skipped, skipped)
    if #ranks == 0 then break end
    local uuid = uuid_of(ranks[1])
    local key = jkey(uuid)
    local factory = redis.call('HGET', key, 'factory')
    if not factory then
      redis.call('ZREM', P .. 'free', ranks[1])  -- a stale index entry
    elseif not allowed(factory, first) then
      skipped = skipped + 1  -- another conductor's job: leave it to them
    else
      local ok = take(key, uuid, who, lease, max_attempts, t)
      table.insert(out, redis.call('HGETALL', key))
      if ok then
        out[1] = 'claimed'
        return out
      end
    end
  end
  return out
end
"""

# ARGV: prefix, uuid, name, factory, args, kwargs, store, details, priority
_POST: Final = """
local uuid = ARGV[2]
local t = fmt(now())
local seq = redis.call('INCR', P .. 'seq')
local rank = string.format('%020d', seq) .. ':' .. uuid
local key = jkey(uuid)
redis.call('HSET', key, 'uuid', uuid, 'name', ARGV[3], 'factory', ARGV[4], 'args', ARGV[5],
           'kwargs', ARGV[6], 'store', ARGV[7], 'details', ARGV[8], 'priority', ARGV[9],
           'rank', rank, 'state', 'UNCLAIMED', 'owner', '', 'lease_expires', '', 'token', 0,
           'attempts', 0, 'created_at', t, 'updated_at', t)
redis.call('ZADD', P .. 'order', -tonumber(ARGV[9]), rank)
redis.call('ZADD', P .. 'free', -tonumber(ARGV[9]), rank)
redis.call('PUBLISH', P .. 'wake', uuid)
return redis.call('HGETALL', key)
"""

# ARGV: prefix, what ('all' | 'free' | 'none')
# -> {free jobs, ms until the next lease ends (-1: none), job hashes...}
_LOOK: Final = """
local t = now()
sweep(t)
local out = {redis.call('ZCARD', P .. 'free'), -1}
local next_end = redis.call('ZRANGE', P .. 'leases', 0, 0, 'WITHSCORES')
if #next_end > 0 then out[2] = math.ceil((tonumber(next_end[2]) - t) * 1000) end
if ARGV[2] ~= 'none' then
  local set = ARGV[2] == 'free' and 'free' or 'order'
  for _, rank in ipairs(redis.call('ZRANGE', P .. set, 0, -1)) do
    local fields = redis.call('HGETALL', jkey(uuid_of(rank)))
    if #fields > 0 then table.insert(out, fields) end
  end
end
return out
"""

# ARGV: prefix, uuid, who, lease, max_attempts, allowed prefixes...
# -> {'claimed'|'exhausted', hash} | {'missing'} | {'trashed'} | {'held', owner, token, ms}
#    | {'refused', factory}
_CLAIM: Final = """
local uuid = ARGV[2]
local key = jkey(uuid)
local h = redis.call('HMGET', key, 'state', 'lease_expires', 'owner', 'token', 'factory')
if not h[1] then return {'missing'} end
if h[1] == 'TRASHED' then return {'trashed'} end
local t = now()
if h[1] == 'CLAIMED' and tonumber(h[2]) >= t then
  return {'held', h[3], h[4], tostring(math.floor((tonumber(h[2]) - t) * 1000))}
end
if not allowed(h[5], 6) then return {'refused', h[5]} end
local ok = take(key, uuid, ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), t)
return {ok and 'claimed' or 'exhausted', redis.call('HGETALL', key)}
"""

# ARGV: prefix, who, lease, max_attempts, scan, allowed prefixes...
# -> {'claimed'|'none', hashes of the jobs trashed on the way..., the claimed job's hash}
_CLAIM_NEXT: Final = """
return claim_next(ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), 6)
"""

# ARGV: prefix, uuid, who, token, lease, max_attempts, scan, allowed prefixes...
# -> as _CLAIM_NEXT once the job is consumed | {'missing'} | {'lost', state, owner, token}
_CONSUME_AND_CLAIM_NEXT: Final = """
local key = jkey(ARGV[2])
local h = redis.call('HMGET', key, 'state', 'owner', 'token', 'rank')
if not h[1] then return {'missing'} end
if h[1] ~= 'CLAIMED' or h[2] ~= ARGV[3] or h[3] ~= ARGV[4] then
  return {'lost', h[1], h[2], h[3]}
end
forget(key, h[4])
return claim_next(ARGV[3], tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), 8)
"""

# ARGV: prefix, who, lease, max_attempts, scan, limit, pairs, (uuid, token) * pairs,
#       allowed prefixes...
# -> {uuids whose consume was refused, hashes of the jobs claimed or trashed on the way...}
_CONSUME_AND_CLAIM: Final = """
local who, pairs = ARGV[2], tonumber(ARGV[7])
local lost = {}
for i = 0, pairs - 1 do
  local uuid, token = ARGV[8 + 2 * i], ARGV[9 + 2 * i]
  local key = jkey(uuid)
  local h = redis.call('HMGET', key, 'state', 'owner', 'token', 'rank')
  if h[1] == 'CLAIMED' and h[2] == who and h[3] == token then
    forget(key, h[4])
  else
    table.insert(lost, uuid)
  end
end
local out = {lost}
local claimed, limit = 0, tonumber(ARGV[6])
while claimed < limit do
  local got = claim_next(who, tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]),
                         8 + 2 * pairs)
  for i = 2, #got do table.insert(out, got[i]) end
  if got[1] ~= 'claimed' then break end
  claimed = claimed + 1
end
return out
"""

# ARGV: prefix, uuid, who, token, operation, lease, max_attempts
# -> {'ok', hash (none after consume)} | {'missing'} | {'lost', state, owner, token}
_OWNER: Final = """
local uuid = ARGV[2]
local key = jkey(uuid)
local h = redis.call('HMGET', key, 'state', 'owner', 'token', 'rank', 'attempts', 'priority')
if not h[1] then return {'missing'} end
if h[1] ~= 'CLAIMED' or h[2] ~= ARGV[3] or h[3] ~= ARGV[4] then
  return {'lost', h[1], h[2], h[3]}
end
local op, rank, t = ARGV[5], h[4], now()
if op == 'renew' then
  local ends = fmt(t + tonumber(ARGV[6]))
  redis.call('HSET', key, 'lease_expires', ends, 'updated_at', fmt(t))
  redis.call('ZREM', P .. 'free', rank)
  redis.call('ZADD', P .. 'leases', ends, rank)
elseif op == 'consume' then
  forget(key, rank)
  return {'ok'}
elseif op == 'release' then
  redis.call('HSET', key, 'state', 'UNCLAIMED', 'owner', '', 'lease_expires', '',
             'updated_at', fmt(t))
  redis.call('ZREM', P .. 'leases', rank)
  redis.call('ZADD', P .. 'free', -tonumber(h[6]), rank)
  redis.call('PUBLISH', P .. 'wake', uuid)
elseif op == 'trash' then
  to_trash(key, uuid, rank, t, tonumber(h[5]))
else -- abandon
  local attempts = tonumber(h[5]) + 1
  if attempts >= tonumber(ARGV[7]) then
    to_trash(key, uuid, rank, t, attempts)
  else
    redis.call('HSET', key, 'state', 'UNCLAIMED', 'owner', '', 'lease_expires', '',
               'attempts', attempts, 'updated_at', fmt(t))
    redis.call('ZREM', P .. 'leases', rank)
    redis.call('ZADD', P .. 'free', -tonumber(h[6]), rank)
    redis.call('PUBLISH', P .. 'wake', uuid)
  end
end
return {'ok', redis.call('HGETALL', key)}
"""


def _check_token(token: object) -> None:
    """TypeError unless ``token`` is a claim's fencing token (an int)."""
    if isinstance(token, bool) or not isinstance(token, int):
        raise TypeError(f"token= takes the int fencing token of a claim, got {token!r}")


class RedisBoard:
    """A job board on a Redis server: ``redis://host:port/db`` (``rediss://`` for TLS).

    Options (keyword-only), as :class:`~tideflow.jobs.sql.SqlBoard`'s where they share a
    name: ``allowed`` (module prefixes whose flow factories may be posted and claimed;
    none by default), ``max_attempts`` (default 5), ``codec`` ('json' or 'pickle'),
    ``poll_interval`` (the longest :meth:`wait` sleeps between looks when no message
    wakes it; default 1 s); and ``namespace`` (the key prefix, default ``tideflow``:
    boards with different namespaces on one server never see each other's jobs),
    ``connect_timeout`` and ``socket_timeout`` (seconds, for the connection).
    """

    def __init__(
        self,
        url: str,
        *,
        allowed: Sequence[str] = (),
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        namespace: str = "tideflow",
        poll_interval: float = 1.0,
        codec: str | Codec = "json",
        connect_timeout: float = 10.0,
        socket_timeout: float = 30.0,
    ) -> None:
        scheme = url.partition("://")[0] if isinstance(url, str) else ""
        if scheme not in _SCHEMES:
            raise ValueError(
                f"a Redis job board needs a redis://host:port/db or rediss:// URL, got {url!r}"
            )
        self.allowed: tuple[str, ...] = check_allowed(allowed)
        self.max_attempts = check_max_attempts(max_attempts)
        if not isinstance(namespace, str) or not _NAMESPACE.fullmatch(namespace):
            raise ValueError(
                "namespace= takes a key prefix of 1 to 100 letters, digits and _ . : -, "
                f"got {namespace!r}"
            )
        check_seconds("poll_interval", poll_interval, positive=True)
        check_seconds("connect_timeout", connect_timeout, positive=True)
        check_seconds("socket_timeout", socket_timeout, positive=True)
        try:
            import redis  # noqa: PLC0415  # optional: only this board needs it
        except ImportError as exc:
            raise ImportError(
                f"the Redis job board needs the 'redis' package, which is not installed "
                f"({exc}): {INSTALL}"
            ) from exc
        self.url = url
        self.namespace = namespace
        self.poll_interval = float(poll_interval)
        self.codec: Codec = codec_named(codec)
        self.shown = re.sub(r"://[^@/]*@", "://", url)  # no user or password in messages
        self._prefix = namespace + ":"
        self._redis_errors: tuple[type[BaseException], ...] = (redis.exceptions.RedisError,)
        try:
            self._client: Any = redis.Redis.from_url(
                url,
                decode_responses=True,
                socket_connect_timeout=float(connect_timeout),
                socket_timeout=float(socket_timeout),
            )
        except ValueError as exc:
            raise ValueError(f"{self.shown!r} is not a Redis URL: {exc}") from exc
        register = self._client.register_script
        self._post = register(_PRELUDE + _POST)
        self._look = register(_PRELUDE + _LOOK)
        self._claim = register(_PRELUDE + _CLAIM)
        self._claim_next = register(_PRELUDE + _CLAIM_NEXT)
        self._consume_and_claim = register(_PRELUDE + _CONSUME_AND_CLAIM_NEXT)
        self._consume_and_claim_many = register(_PRELUDE + _CONSUME_AND_CLAIM)
        self._owner = register(_PRELUDE + _OWNER)
        #: POSTED and REMOVAL, as :mod:`tideflow.jobs.base` says.
        self.notifier = new_notifier()
        self._sightings = Sightings(self.notifier)
        self._lock = threading.Lock()
        self._pubsubs: dict[int, tuple[int, Any]] = {}  # thread -> (pid, its PubSub)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RedisBoard:
        """The board ``config["connection"]`` names, with the other keys as options."""
        url, options = config_options(config, "Redis", "redis://127.0.0.1:6379/0", OPTIONS)
        return cls(url, **options)

    def __repr__(self) -> str:
        return f"<RedisBoard {self.shown} namespace={self.namespace}>"

    def close(self) -> None:
        """Close the board's connections (a later call opens new ones)."""
        with self._lock:
            held, self._pubsubs = list(self._pubsubs.values()), {}
        for _, pubsub in held:
            with contextlib.suppress(*self._redis_errors):
                pubsub.close()
        self._client.close()

    # -- posting and reading -----------------------------------------------------------

    def post(
        self,
        name: str,
        factory: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        store: Mapping[str, Any] | None = None,
        priority: int = 0,
        details: Mapping[str, Any] | None = None,
    ) -> Job:
        """Add a job; returns it as stored (FactoryNotAllowedError if ``factory`` is
        outside the allow-list)."""
        fields = encode_post(
            self.codec,
            self.allowed,
            f"the job board {self.shown}",
            name,
            factory,
            args,
            kwargs,
            store,
            priority,
            details,
        )
        argv = [str(uuidlib.uuid4())]
        argv += [fields[k] for k in ("name", "factory", "args", "kwargs", "store", "details")]
        argv.append(str(priority))
        posted = self._job(self._run(f"posting job {name!r}", self._post, argv))
        self._sightings.saw((posted,))
        return posted

    def get(self, job: Job | str) -> Job:
        """The job as the board holds it now (NotFoundError if it was consumed or never
        posted)."""
        key = uuid_of(job)
        fields = self._call(
            f"reading job {key}", lambda: self._client.hgetall(self._prefix + "job:" + key)
        )
        if not fields:
            self._sightings.gone(key)
            raise missing_error(self.shown, key)
        found = self._job(fields)
        self._sightings.saw((found,))
        return found

    def iterjobs(self, only_unclaimed: bool = False) -> Iterator[Job]:
        """Jobs not trashed, highest priority first, then in posting order. With
        ``only_unclaimed``, only those a claim would take now (lease run out included).
        The listing is one snapshot, read in one step when iteration starts."""
        _, _, jobs = self._look_at("free" if only_unclaimed else "all")
        self._sightings.saw(jobs, complete=not only_unclaimed)
        yield from jobs

    def _look_at(self, what: str) -> tuple[int, float | None, list[Job]]:
        """How many jobs are free, seconds until the next lease ends, and the jobs
        ``what`` names ('all', 'free' or 'none')."""
        out = self._run("listing jobs", self._look, [what])
        ends = None if int(out[1]) < 0 else int(out[1]) / 1000
        return int(out[0]), ends, [self._job(fields) for fields in out[2:]]

    def wait(self, timeout: float | None = None) -> bool:
        """Return True as soon as a job could be claimed, False after ``timeout`` seconds
        (None: wait as long as it takes). Woken by a post or an abandon on any machine
        at once, by a lease running out when it does."""
        if timeout is not None:
            check_seconds("timeout", timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        pubsub = self._subscribed()  # before the first look: a post after it wakes us
        while True:
            self._listen(pubsub, 0.0, drain=True)  # what came before this look is seen by it
            listing = self._sightings.listening()
            free, ends, jobs = self._look_at("all" if listing else "none")
            if listing:
                self._sightings.saw(jobs, complete=True)
            if free:
                return True
            pause = self.poll_interval
            if ends is not None:
                pause = min(pause, ends + 0.001)
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                pause = min(pause, left)
            self._listen(pubsub, pause)

    def _subscribed(self) -> Any:
        """This thread's pub/sub connection, subscribed to the wake channel (kept between
        waits, so a post while the thread is busy wakes its next wait at once)."""
        me = threading.get_ident()
        held = self._pubsubs.get(me)
        if held is not None and held[0] == os.getpid():
            return held[1]
        pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        self._call("waiting for jobs", lambda: pubsub.subscribe(self._prefix + "wake"))
        with self._lock:
            self._pubsubs[me] = (os.getpid(), pubsub)
        return pubsub

    def _listen(self, pubsub: Any, seconds: float, drain: bool = False) -> None:
        """Return at the first wake message or after ``seconds``; with ``drain``, read
        every message already there without waiting."""
        try:
            while pubsub.get_message(timeout=seconds) is not None and drain:
                pass
        except self._redis_errors as exc:
            with self._lock:
                self._pubsubs.pop(threading.get_ident(), None)  # the next wait subscribes anew
            with contextlib.suppress(*self._redis_errors):
                pubsub.close()
            raise self._store_error("waiting for jobs", exc) from exc

    # -- claims --------------------------------------------------------------------------

    def claim(self, job: Job | str, who: str, lease: float = DEFAULT_LEASE) -> Job:
        """Make ``who`` the owner for ``lease`` seconds; the Job returned holds the new
        fencing token. JobClaimedError if another owner's lease is live, if the job is
        trashed, or if taking over its run-out lease was its last attempt (the job is
        then trashed); FactoryNotAllowedError if its factory is outside the allow-list."""
        key = uuid_of(job)
        check_who(who)
        check_seconds("lease", lease, positive=True)
        argv = [key, who, repr(float(lease)), str(self.max_attempts), *self.allowed]
        out = self._run(f"claiming job {key}", self._claim, argv)
        status = out[0]
        if status == "missing":
            self._sightings.gone(key)
            raise missing_error(self.shown, key)
        if status == "trashed":
            raise trashed_error(self.shown, key)
        if status == "held":
            raise held_error(self.shown, key, out[1], int(out[2]), int(out[3]) / 1000)
        if status == "refused":
            check_factory(out[1], self.allowed, f"the job board {self.shown}")
            self._unexpected(out)  # the script and check_factory disagree
        taken = self._job(out[1])
        self._sightings.saw((taken,))
        if status == "exhausted":
            raise exhausted_error(self.shown, taken, self.max_attempts)
        return taken

    def claim_next(self, who: str, lease: float = DEFAULT_LEASE) -> Job | None:
        """Claim the first job a claim can take (highest priority, then oldest) whose
        factory this board allows; None if there is none. A job whose run-out lease was
        its last attempt is trashed on the way (see :mod:`tideflow.jobs.base`)."""
        check_claim_next(who, lease, self.allowed, self.shown)
        argv = [who, repr(float(lease)), str(self.max_attempts), str(_CLAIM_SCAN), *self.allowed]
        out = self._run("claiming the next job", self._claim_next, argv)
        jobs = [self._job(fields) for fields in out[1:]]
        self._sightings.saw(jobs)
        return jobs[-1] if out[0] == "claimed" else None

    def renew(self, job: Job | str, who: str, token: int, lease: float = DEFAULT_LEASE) -> Job:
        """Extend the lease to ``lease`` seconds from now, if ``token`` is still the job's
        current claim (LeaseLostError otherwise: stop working on the job)."""
        check_seconds("lease", lease, positive=True)
        left = self._owner_call("renew", job, who, token, "renew the lease of", lease)
        assert left is not None  # only consume leaves nothing
        return left

    def consume(self, job: Job | str, who: str, token: int) -> None:
        """Remove a finished job from the board (LeaseLostError if the claim was lost)."""
        self._owner_call("consume", job, who, token, "consume")

    def consume_and_claim_next(
        self, job: Job | str, who: str, token: int, lease: float = DEFAULT_LEASE
    ) -> Job | None:
        """:meth:`consume` the finished ``job``, then :meth:`claim_next` for ``who``, in
        one script (both happen, or neither): the next job claimed, or None if none is
        free. LeaseLostError (and nothing claimed) if the claim on ``job`` was lost."""
        key = uuid_of(job)
        check_claim_next(who, lease, self.allowed, self.shown)
        _check_token(token)
        argv = [key, who, str(token), repr(float(lease)), str(self.max_attempts)]
        argv += [str(_CLAIM_SCAN), *self.allowed]
        doing = f"consuming job {key} and claiming the next"
        out = self._run(doing, self._consume_and_claim, argv)
        self._raise_if_lost(out, key, who, token, "consume")
        self._sightings.gone(key)
        jobs = [self._job(fields) for fields in out[1:]]
        self._sightings.saw(jobs)
        return jobs[-1] if out[0] == "claimed" else None

    def consume_and_claim(
        self,
        consumed: Sequence[tuple[Job | str, int]],
        who: str,
        lease: float = DEFAULT_LEASE,
        limit: int = 1,
    ) -> Settled:
        """Consume every finished job of ``consumed`` (pairs of a job and its claim's
        fencing token) whose claim is still current, and claim up to ``limit`` more jobs
        for ``who``, in one script: the jobs claimed, in claim order, and the uuids whose
        consume was refused (the claim was lost: their new owner consumes them)."""
        check_claim_next(who, lease, self.allowed, self.shown)
        pairs = check_consumed(consumed, limit)
        argv = [who, repr(float(lease)), str(self.max_attempts), str(_CLAIM_SCAN), str(limit)]
        argv.append(str(len(pairs)))
        for key, token in pairs:
            argv += [key, str(token)]
        argv += self.allowed
        doing = f"consuming {len(pairs)} jobs and claiming up to {limit}"
        out = self._run(doing, self._consume_and_claim_many, argv)
        lost = [str(key) for key in out[0]]
        for key, _ in pairs:
            if key not in lost:
                self._sightings.gone(key)
        jobs = [self._job(fields) for fields in out[1:]]
        self._sightings.saw(jobs)
        return Settled([job for job in jobs if job.state is JobState.CLAIMED], lost)

    def release(self, job: Job | str, who: str, token: int) -> Job:
        """Give back a job claimed ahead and never started: UNCLAIMED again at once,
        without counting an attempt (nothing of it ran). LeaseLostError if the claim
        was lost. Returns the job as left."""
        left = self._owner_call("release", job, who, token, "release")
        assert left is not None
        return left

    def abandon(self, job: Job | str, who: str, token: int) -> Job:
        """Give the job back for another claim and count an attempt; the
        ``max_attempts``-th attempt moves it to TRASHED. Returns the job as left."""
        left = self._owner_call("abandon", job, who, token, "abandon")
        assert left is not None
        return left

    def trash(self, job: Job | str, who: str, token: int) -> Job:
        """Move the job to TRASHED: kept for inspection, never claimed again."""
        left = self._owner_call("trash", job, who, token, "trash")
        assert left is not None
        return left

    def _owner_call(
        self, operation: str, job: Job | str, who: str, token: int, doing: str, lease: float = 0
    ) -> Job | None:
        key = uuid_of(job)
        _check_token(token)
        argv = [key, str(who), str(token), operation, repr(float(lease)), str(self.max_attempts)]
        out = self._run(f"{_DOING[operation]} job {key}", self._owner, argv)
        self._raise_if_lost(out, key, who, token, doing)
        if len(out) < 2:
            self._sightings.gone(key)
            return None
        left = self._job(out[1])
        self._sightings.saw((left,))
        return left

    def _raise_if_lost(
        self, out: Sequence[Any], key: str, who: str, token: int, doing: str
    ) -> None:
        """LeaseLostError if an owner script answered 'missing' or 'lost' (``doing``: what
        the owner could not do)."""
        if out[0] not in ("missing", "lost"):
            return
        now = None if out[0] == "missing" else (out[1], out[2] or None, int(out[3]))
        if now is None or now[0] == JobState.TRASHED:
            self._sightings.gone(key)
        raise lost_error(self.shown, key, who, token, doing, now)

    def current_token(self, job: Job | str) -> int | None:
        """The fencing token of the job's claim while it is CLAIMED (a run-out lease
        included, until another claim replaces it); None if it is unclaimed, trashed or
        gone. A snapshot: the claim may be replaced right after it is read."""
        key = uuid_of(job)
        state, token = self._call(
            f"reading the fencing token of job {key}",
            lambda: self._client.hmget(self._prefix + "job:" + key, "state", "token"),
        )
        return int(token) if state == JobState.CLAIMED else None

    # -- helpers -------------------------------------------------------------------------

    def _call(self, doing: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except self._redis_errors as exc:
            raise self._store_error(doing, exc) from exc

    def _store_error(self, doing: str, exc: BaseException) -> StoreError:
        return StoreError(
            f"job board {self.shown}: {doing} failed: {exc}; check that the Redis server "
            "is running and reachable, then retry (a write whose answer was lost may "
            "have been made: read the job back before repeating it)",
            cause=exc,
        )

    def _run(self, doing: str, script: Any, argv: Sequence[str]) -> Any:
        return self._call(doing, lambda: script(args=[self._prefix, *argv]))

    def _unexpected(self, out: object) -> NoReturn:
        from tideflow.errors import InternalError  # noqa: PLC0415  # only on this path

        raise InternalError(f"job board {self.shown}: a script answered {out!r}")

    def _job(self, fields: Sequence[str] | Mapping[str, str]) -> Job:
        if not isinstance(fields, Mapping):
            fields = dict(zip(fields[::2], fields[1::2], strict=True))
        loads = self.codec.loads
        expires = fields["lease_expires"]
        return Job(
            uuid=fields["uuid"],
            name=fields["name"],
            factory=fields["factory"],
            args=tuple(loads(fields["args"])),
            kwargs=loads(fields["kwargs"]),
            store=loads(fields["store"]),
            priority=int(fields["priority"]),
            details=loads(fields["details"]),
            state=JobState(fields["state"]),
            owner=fields["owner"] or None,
            lease_expires=float(expires) if expires else None,
            token=int(fields["token"]),
            attempts=int(fields["attempts"]),
            created_at=float(fields["created_at"]),
            updated_at=float(fields["updated_at"]),
        )
