"""POSTED and REMOVAL on every board, as tideflow.jobs.base says: POSTED when a board
object first meets a job (posting or reading it), REMOVAL when a job it announced leaves
the board (consumed, trashed, or found gone)."""

from __future__ import annotations

import time

import pytest
from board_support import FACTORY, Heard

from tideflow.jobs import POSTED, REMOVAL, Job, LeaseLostError


def _listen(board) -> Heard:
    heard = Heard()
    board.notifier.register(POSTED, heard)
    board.notifier.register(REMOVAL, heard)
    return heard


def test_own_posts_consumes_and_trashes(board):
    heard = _listen(board)
    job = board.post("a", FACTORY)
    assert heard.take() == [("POSTED", "a", "UNCLAIMED")]
    claimed = board.claim(job, "w")
    assert board.get(job).token == 1
    assert list(board.iterjobs()) == [board.get(job)]
    assert heard.take() == []  # met once, announced once
    board.consume(job, "w", claimed.token)
    assert heard.take() == [("REMOVAL", "a", "CLAIMED")]
    b = board.post("b", FACTORY)
    board.trash(b, "w", board.claim(b, "w").token)
    assert heard.take() == [("POSTED", "b", "UNCLAIMED"), ("REMOVAL", "b", "TRASHED")]
    assert list(board.iterjobs()) == []
    assert heard.take() == []


def test_details_carry_the_job(board):
    got = []
    board.notifier.register("*", lambda event, details: got.append((event, details)))
    job = board.post("a", FACTORY, args=(1,))
    assert got == [("POSTED", {"job": job})]
    assert isinstance(got[0][1]["job"], Job)


def test_another_boards_jobs_when_read_and_when_gone(make, board):
    heard = _listen(board)
    other = make()
    x = other.post("x", FACTORY, priority=1)
    y = other.post("y", FACTORY)
    assert heard.take() == []  # not read yet
    assert [j.name for j in board.iterjobs()] == ["x", "y"]
    assert heard.take() == [("POSTED", "x", "UNCLAIMED"), ("POSTED", "y", "UNCLAIMED")]
    other.consume(x, "o", other.claim(x, "o").token)
    assert [j.name for j in board.iterjobs(only_unclaimed=True)] == ["y"]
    assert heard.take() == []  # a listing of free jobs cannot tell claimed from gone
    assert [j.name for j in board.iterjobs()] == ["y"]
    assert heard.take() == [("REMOVAL", "x", "UNCLAIMED")]  # as this board last read it
    other.trash(y, "o", other.claim(y, "o").token)
    assert board.get(y).name == "y"
    assert heard.take() == [("REMOVAL", "y", "TRASHED")]


def test_a_job_found_gone_by_get_or_an_owner_call(make, board):
    heard = _listen(board)
    other = make()
    a = board.post("a", FACTORY)
    b = board.post("b", FACTORY)
    claimed = board.claim(b, "w", lease=0.1)
    heard.take()
    other.consume(a, "o", other.claim(a, "o").token)
    with pytest.raises(Exception, match="no job with uuid"):
        board.get(a)
    assert heard.take() == [("REMOVAL", "a", "UNCLAIMED")]
    time.sleep(0.2)
    other.consume(b, "o", other.claim(b, "o").token)
    with pytest.raises(LeaseLostError, match="was consumed"):
        board.renew(b, "w", claimed.token)
    assert heard.take() == [("REMOVAL", "b", "CLAIMED")]


def test_wait_reports_while_someone_listens(make, board):
    other = make()
    other.post("before", FACTORY)
    heard = _listen(board)
    assert board.wait(5)
    assert heard.take() == [("POSTED", "before", "UNCLAIMED")]
    job = other.post("later", FACTORY)
    assert board.wait(5)
    assert heard.take() == [("POSTED", "later", "UNCLAIMED")]
    other.consume(job, "o", other.claim(job, "o").token)
    assert board.wait(5)  # "before" is still free
    assert heard.take() == [("REMOVAL", "later", "UNCLAIMED")]


def test_nothing_is_tracked_while_nobody_listens(board):
    board.post("quiet", FACTORY)
    assert list(board.iterjobs())
    heard = _listen(board)
    assert heard.take() == []
    assert [j.name for j in board.iterjobs()] == ["quiet"]
    assert heard.take() == [("POSTED", "quiet", "UNCLAIMED")]  # met anew
    board.notifier.deregister(POSTED, heard)
    board.notifier.deregister(REMOVAL, heard)
    assert len(board.notifier) == 0
    unheard = board.post("unheard", FACTORY)
    claimed = board.claim(unheard, "w")
    board.notifier.register(REMOVAL, heard)
    board.consume(unheard, "w", claimed.token)
    assert heard.take() == []  # met while nobody listened: no REMOVAL without a POSTED
    job = board.claim_next("w")
    assert job is not None
    assert job.name == "quiet"
    board.consume(job, "w", job.token)
    assert heard.take() == [("REMOVAL", "quiet", "CLAIMED")]  # met (unheard) by claim_next


def test_trashing_by_attempts_is_a_removal(make):
    board = make(max_attempts=1)
    heard = _listen(board)
    job = board.post("once", FACTORY)
    board.abandon(job, "w", board.claim(job, "w").token)
    assert heard.take() == [("POSTED", "once", "UNCLAIMED"), ("REMOVAL", "once", "TRASHED")]
    again = board.post("again", FACTORY)
    board.claim(again, "w", lease=0.1)
    time.sleep(0.2)
    assert board.claim_next("w2") is None
    assert heard.take() == [("POSTED", "again", "UNCLAIMED"), ("REMOVAL", "again", "TRASHED")]


def test_only_the_two_events_can_be_registered(board):
    with pytest.raises(ValueError, match="did you mean 'POSTED'"):
        board.notifier.register("POSTD", print)


def test_a_listener_may_use_the_board(make, board):
    """Events are sent after the board's transaction: a callback can call the board."""
    names = []

    def look(event, details):
        names.append((event, [j.name for j in board.iterjobs()]))

    board.notifier.register("*", look)
    job = board.post("a", FACTORY)
    board.consume(job, "w", board.claim(job, "w").token)
    other = make()
    b = other.post("b", FACTORY)
    board.get(b)
    other.consume(b, "o", other.claim(b, "o").token)
    with pytest.raises(Exception, match="no job with uuid"):
        board.claim(b, "w")
    assert names == [("POSTED", ["a"]), ("REMOVAL", []), ("POSTED", ["b"]), ("REMOVAL", [])]
