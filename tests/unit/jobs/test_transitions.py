"""The one table of a job's moves (`service.jobs.records.TRANSITIONS`): what it allows, read
as the rules it is meant to keep."""

from __future__ import annotations

from typing import get_args

import pytest

from service.jobs.records import RANK, TERMINAL, TRANSITIONS, JobStatus

STATUSES: tuple[str, ...] = get_args(JobStatus)
UNFINISHED = [s for s in STATUSES if s not in TERMINAL]


def reachable(start: str) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for after in TRANSITIONS[todo.pop()]:  # type: ignore[index]
            if after not in seen:
                seen.add(after)
                todo.append(after)
    return seen


def test_the_table_has_a_row_for_every_status_and_names_only_statuses() -> None:
    assert set(TRANSITIONS) == set(STATUSES)
    assert all(set(moves) <= set(STATUSES) for moves in TRANSITIONS.values())
    assert set(RANK) == set(STATUSES)


@pytest.mark.parametrize("status", sorted(TERMINAL))
def test_a_finished_job_never_changes_again(status: JobStatus) -> None:
    assert TRANSITIONS[status] == frozenset()


@pytest.mark.parametrize("status", UNFINISHED)
def test_an_unfinished_job_can_always_fail_or_be_cancelled(status: JobStatus) -> None:
    assert {"failed", "cancelled"} <= TRANSITIONS[status]


def test_every_status_is_reached_from_pending_and_only_uploading_leaves_it_for_work() -> None:
    assert reachable("pending") == set(STATUSES)
    assert TRANSITIONS["pending"] == {"uploading", "failed", "cancelled"}


def test_no_job_stays_where_it_is_or_goes_back() -> None:
    for status, moves in TRANSITIONS.items():
        assert status not in moves
        assert all(RANK[after] > RANK[status] for after in moves), status


def test_only_a_finished_upload_reaches_the_upstream_statuses() -> None:
    upstream = {"validating_files", "queued", "running", "succeeded"}
    assert not upstream & TRANSITIONS["pending"]
    assert upstream <= TRANSITIONS["uploading"]
