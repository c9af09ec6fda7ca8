"""Cron rules: what a person may write, when a rule fires (across DST switches) and its words."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from django.core.exceptions import ValidationError

from dashboard.recurring.cron import rule_check, rule_words

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)


def refusal(expression: str, zone: str = "Europe/Berlin") -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        rule_check(expression=expression, time_zone=zone, now=NOW)
    return caught.value.message_dict


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("0 9 * * 1-5", "At 09:00, Monday through Friday"),
        ("*/15 * * * *", "Every 15 minutes"),
        ("30 8 1 * *", "At 08:30, on day 1 of the month"),
    ],
)
def test_a_rule_reads_in_words(expression, words) -> None:
    assert rule_words(expression) == words


def test_every_weekday_at_nine_in_berlin_fires_at_nine_berlin_time() -> None:
    rule = rule_check(expression="0 9 * * mon-fri", time_zone="Europe/Berlin", now=NOW)
    fires = rule.upcoming(NOW, 5)
    # Monday 1 March 2027 12:00 UTC: the next weekday 09:00 CET (08:00 UTC) is Tuesday.
    assert [fire.isoformat() for fire in fires] == [
        "2027-03-02T08:00:00+00:00",
        "2027-03-03T08:00:00+00:00",
        "2027-03-04T08:00:00+00:00",
        "2027-03-05T08:00:00+00:00",
        "2027-03-08T08:00:00+00:00",
    ]


def test_across_the_spring_switch_the_local_time_is_kept_and_a_skipped_time_fires_once() -> None:
    nine = rule_check(expression="0 9 * * *", time_zone="Europe/Berlin", now=NOW)
    before = datetime(2027, 3, 27, 0, 0, tzinfo=UTC)
    # 09:00 CET is 08:00 UTC; from Sunday 28 March 09:00 CEST is 07:00 UTC.
    assert [fire.hour for fire in nine.upcoming(before, 3)] == [8, 7, 7]
    # 02:30 does not exist on 28 March: it fires at 03:00 CEST, once; the quarter hours
    # inside the skipped hour fire once between them, at 03:00.
    early = rule_check(expression="*/30 2 * * *", time_zone="Europe/Berlin", now=NOW)
    fires = list(
        early.fires_between(
            datetime(2027, 3, 28, 0, tzinfo=UTC), datetime(2027, 3, 28, 6, tzinfo=UTC)
        )
    )
    assert [fire.isoformat() for fire in fires] == ["2027-03-28T01:00:00+00:00"]


def test_across_the_autumn_switch_a_repeated_local_time_fires_once() -> None:
    rule = rule_check(expression="30 2 * * *", time_zone="Europe/Berlin", now=NOW)
    fires = list(
        rule.fires_between(
            datetime(2027, 10, 30, 0, tzinfo=UTC), datetime(2027, 11, 1, 0, tzinfo=UTC)
        )
    )
    # 30 October 02:30 CEST (00:30 UTC); 31 October 02:30 happens twice: the first one only.
    assert [fire.isoformat() for fire in fires] == [
        "2027-10-30T00:30:00+00:00",
        "2027-10-31T00:30:00+00:00",
    ]


def test_a_day_of_the_month_or_a_weekday_is_enough_when_both_are_given() -> None:
    rule = rule_check(expression="0 12 13 * fri", time_zone="UTC", now=NOW)
    assert rule.fires_on(date(2027, 3, 13))  # a Saturday, the 13th
    assert rule.fires_on(date(2027, 3, 5))  # a Friday
    assert not rule.fires_on(date(2027, 3, 6))


def test_names_of_months_and_weekdays_are_accepted() -> None:
    rule = rule_check(expression="0 9 * jul,aug wed", time_zone="UTC", now=NOW)
    assert rule.months == frozenset({7, 8}) and rule.weekdays == frozenset({3})


def test_29_february_is_a_rule_that_fires_every_four_years() -> None:
    rule = rule_check(expression="0 9 29 2 *", time_zone="UTC", now=NOW)
    assert rule.next_after(NOW) == datetime(2028, 2, 29, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "zone", "field", "words"),
    [
        ("0 9 30 2 *", "UTC", "cron", "never fires"),
        ("0 9 31 4,6,9,11 *", "UTC", "cron", "never fires"),
        ("0 0 9 * * 1-5", "UTC", "cron", "no seconds field"),
        ("*/10 * * * * *", "UTC", "cron", "no seconds field"),
        ("0 9 * *", "UTC", "cron", "five fields"),
        ("61 9 * * *", "UTC", "cron", "not a valid cron rule"),
        ("*/0 * * * *", "UTC", "cron", "not a valid cron rule"),
        ("0 9 L * *", "UTC", "cron", "not accepted"),
        ("0 9 * * 5#2", "UTC", "cron", "not accepted"),
        ("0 9 1W * *", "UTC", "cron", "not accepted"),
        ("0 9 * * 5L", "UTC", "cron", "not accepted"),
        ("@daily", "UTC", "cron", "five fields"),
        ("", "UTC", "cron", "Give a cron rule"),
        ("0 9 * * *", "Mars/Olympus", "time_zone", "Unknown time zone"),
        ("0 9 * * *", "../etc/passwd", "time_zone", "Unknown time zone"),
    ],
)
def test_bad_rules_are_refused_with_a_clear_reason(expression, zone, field, words) -> None:
    errors = refusal(expression, zone)
    assert words in " ".join(errors[field])
