"""Which shutdown notice is due on a day: the nearest of 30, 7 and 1 days reached, none before
30 days or from the shutdown day on."""

from __future__ import annotations

import datetime

import pytest

from service.inference.shutdowns import THRESHOLDS, due_threshold, guard_key

SHUTDOWN = datetime.date(2027, 1, 14)


def _days_before(days: int) -> datetime.date:
    return SHUTDOWN - datetime.timedelta(days=days)


@pytest.mark.parametrize(
    ("days_left", "due"),
    [
        (365, None),
        (31, None),
        (30, 30),
        (29, 30),
        (8, 30),
        (7, 7),
        (2, 7),
        (1, 1),
        (0, None),
        (-1, None),
    ],
)
def test_the_nearest_threshold_reached_is_due(days_left: int, due: int | None) -> None:
    assert due_threshold(SHUTDOWN, _days_before(days_left)) == due


def test_the_thresholds_are_30_7_and_1_days() -> None:
    assert THRESHOLDS == (30, 7, 1)


def test_counting_down_day_by_day_reaches_each_threshold_once() -> None:
    due = [due_threshold(SHUTDOWN, _days_before(d)) for d in range(60, -5, -1)]
    firsts = [t for i, t in enumerate(due) if t is not None and (i == 0 or due[i - 1] != t)]
    assert firsts == [30, 7, 1]


def test_a_notice_is_guarded_per_alias_date_and_threshold() -> None:
    one = guard_key("acme", "donkey", SHUTDOWN, 30)
    assert one != guard_key("acme", "donkey", SHUTDOWN, 7)
    assert one != guard_key("acme", "mule", SHUTDOWN, 30)
    assert one != guard_key("globex", "donkey", SHUTDOWN, 30)
    assert one != guard_key("acme", "donkey", SHUTDOWN + datetime.timedelta(days=1), 30)
