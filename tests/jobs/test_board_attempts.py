"""The attempts rule on every board: a claim that takes over a lease that ran out counts
an attempt of the job (its owner died or hung), as an abandon does, and the
max_attempts-th attempt trashes the job instead of giving it out again."""

from __future__ import annotations

import time

import pytest
from board_support import FACTORY

from tideflow.jobs import JobClaimedError, JobState, LeaseLostError


def _run_out(board, job, who):
    """Claim ``job`` for a moment and let the lease run out (a worker that died)."""
    claimed = board.claim(job, who, lease=0.1)
    time.sleep(0.2)
    return claimed


def test_taking_over_a_lease_that_ran_out_counts_and_the_last_one_trashes(make):
    board = make(max_attempts=2)
    job = board.post("crashes-its-worker", FACTORY)
    first = _run_out(board, job, "w1")
    assert first.attempts == 0  # a fresh job's first claim is no attempt yet
    second = _run_out(board, job, "w2")
    assert (second.owner, second.token, second.attempts) == ("w2", 2, 1)
    with pytest.raises(JobClaimedError, match=r"trashed instead of claimed.*2 failed attempts"):
        board.claim(job, "w3")
    left = board.get(job)
    assert (left.state, left.attempts, left.owner, left.token) == (JobState.TRASHED, 2, None, 2)
    assert board.current_token(job) is None
    with pytest.raises(LeaseLostError, match=r"is TRASHED \(token 2\)"):
        board.renew(job, "w2", 2)  # the hung owner wakes up to find it gone
    assert list(board.iterjobs()) == []
    assert not board.wait(0)
    with pytest.raises(JobClaimedError, match="is trashed; it cannot be claimed"):
        board.claim(job, "w3")


def test_abandons_and_taken_over_leases_count_together(make):
    board = make(max_attempts=3)
    job = board.post("flaky", FACTORY)
    claimed = board.claim(job, "w1")
    assert board.abandon(job, "w1", claimed.token).attempts == 1
    _run_out(board, job, "w2")
    taken = board.claim(job, "w3")
    assert (taken.attempts, taken.token) == (2, 3)
    left = board.abandon(job, "w3", taken.token)
    assert (left.state, left.attempts) == (JobState.TRASHED, 3)


def test_a_lease_renewed_in_time_is_no_attempt(board):
    job = board.post("slow", FACTORY)
    claimed = board.claim(job, "w", lease=0.3)
    for _ in range(3):
        time.sleep(0.1)
        assert board.renew(job, "w", claimed.token, lease=0.3).attempts == 0
    board.renew(job, "w", claimed.token, lease=30)
    with pytest.raises(JobClaimedError, match="claimed by 'w'"):
        board.claim(job, "w2")
    board.consume(job, "w", claimed.token)


def test_claim_next_trashes_an_exhausted_job_and_takes_the_next(make):
    board = make(max_attempts=1)
    doomed = board.post("doomed", FACTORY, priority=5)
    other = board.post("other", FACTORY)
    _run_out(board, doomed, "w1")
    assert [j.name for j in board.iterjobs(only_unclaimed=True)] == ["doomed", "other"]
    taken = board.claim_next("w2")
    assert taken is not None
    assert (taken.uuid, taken.attempts) == (other.uuid, 0)
    assert board.get(doomed).state == JobState.TRASHED
    assert board.claim_next("w3") is None


def test_claim_next_goes_past_many_exhausted_jobs(make):
    board = make(max_attempts=1)
    doomed = [board.post(f"doomed-{i}", FACTORY, priority=1) for i in range(12)]
    last = board.post("last", FACTORY)
    for job in doomed:
        board.claim(job, "w1", lease=0.1)
    time.sleep(0.2)
    taken = board.claim_next("w2")
    assert taken is not None
    assert taken.uuid == last.uuid
    assert {board.get(job).state for job in doomed} == {JobState.TRASHED}
