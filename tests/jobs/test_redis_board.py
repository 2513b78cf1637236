"""What only the Redis board has: an optional package, namespaces, its URL and errors."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from board_support import ALLOWED, ENV, FACTORY, SRC, skip_reason

from tideflow.errors import StoreError
from tideflow.jobs import RedisBoard, connect

_WITHOUT_REDIS = textwrap.dedent(
    """
    import sys
    sys.modules["redis"] = None  # as if the package were not installed
    import tideflow.jobs
    from tideflow.jobs import RedisBoard, connect
    try:
        connect("redis://127.0.0.1:6379/0")
    except ImportError as exc:
        print(exc)
    """
)


def test_tideflow_jobs_imports_without_the_redis_package():
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_REDIS],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC},
        timeout=60,
        check=True,
    )
    assert "the Redis job board needs the 'redis' package" in done.stdout
    assert "pip install 'tideflow[redis]'" in done.stdout


def test_url_and_options_are_checked():
    with pytest.raises(ValueError, match=r"redis://host:port/db or rediss://"):
        RedisBoard("http://127.0.0.1:6379")
    with pytest.raises(ValueError, match="namespace="):
        RedisBoard("redis://127.0.0.1:6379/0", namespace="two words")
    with pytest.raises(ValueError, match="socket_timeout="):
        RedisBoard("redis://127.0.0.1:6379/0", socket_timeout=0)
    with pytest.raises(TypeError, match=r"'namespce'.*did you mean 'namespace'"):
        RedisBoard.from_config({"connection": "redis://127.0.0.1:6379/0", "namespce": "x"})
    board = RedisBoard("redis://user:secret@127.0.0.1:6379/0")
    assert "secret" not in repr(board)
    assert board.shown == "redis://127.0.0.1:6379/0"
    board.close()


def test_a_server_that_does_not_answer_is_a_store_error():
    board = RedisBoard("redis://127.0.0.1:1/0", allowed=ALLOWED, connect_timeout=2)
    try:
        with pytest.raises(StoreError, match=r"posting job 'x' failed.*Redis server is running"):
            board.post("x", FACTORY)
        with pytest.raises(StoreError, match="reading job u1 failed"):
            board.get("u1")
    finally:
        board.close()


@pytest.fixture
def redis_url():
    reason = skip_reason("redis")
    if reason:
        pytest.skip(reason)
    return os.environ[ENV["redis"][0]]


def test_namespaces_keep_boards_apart(redis_url):
    import redis

    names = [f"tideflow-test-ns-{os.getpid()}-{n}" for n in (1, 2)]
    one, two = (connect(redis_url, allowed=ALLOWED, namespace=n) for n in names)
    try:
        job = one.post("mine", FACTORY)
        assert [j.uuid for j in one.iterjobs()] == [job.uuid]
        assert list(two.iterjobs()) == []
        assert two.claim_next("w") is None
        assert not two.wait(0.05)
    finally:
        one.close()
        two.close()
        client = redis.Redis.from_url(redis_url)
        for name in names:
            keys = list(client.scan_iter(match=name + ":*"))
            if keys:
                client.delete(*keys)
        client.close()


def test_leases_are_on_the_server_clock(redis_url):
    import redis

    namespace = f"tideflow-test-clock-{os.getpid()}"
    board = RedisBoard(redis_url, allowed=ALLOWED, namespace=namespace)
    client = redis.Redis.from_url(redis_url)
    try:
        seconds, micros = client.time()
        claimed = board.claim(board.post("j", FACTORY), "w", lease=100)
        assert 0 <= claimed.updated_at - (seconds + micros / 1e6) < 5
        assert claimed.lease_expires == pytest.approx(claimed.updated_at + 100, abs=1e-5)
    finally:
        board.close()
        keys = list(client.scan_iter(match=namespace + ":*"))
        if keys:
            client.delete(*keys)
        client.close()
