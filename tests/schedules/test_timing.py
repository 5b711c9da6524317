"""Cron and recurrence occurrences, time zones, durations and instants."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from keel.schedules.timing import (
    Cron,
    Recurrence,
    TimingError,
    check_cron,
    iso,
    parse_duration,
    parse_instant,
    time_zone,
)


def ms(text: str) -> int:
    return parse_instant(text)


def test_a_cron_expression_fires_in_its_time_zone_across_daylight_saving() -> None:
    cron = Cron("30 2 * * *", time_zone("America/New_York"))
    first = cron.next_after(ms("2024-03-09T00:00:00Z"))
    second = cron.next_after(first)
    third = cron.next_after(second)
    # 02:30 does not exist on 10 March in New York: it fires at 03:00 EDT, then 02:30 again.
    assert [iso(t) for t in (first, second, third)] == [
        "2024-03-09T07:30:00Z",
        "2024-03-10T07:00:00Z",
        "2024-03-11T06:30:00Z",
    ]


def test_six_fields_put_seconds_first() -> None:
    cron = Cron("*/15 * * * * *", UTC)
    assert iso(cron.next_after(ms("2024-01-01T00:00:01Z"))) == "2024-01-01T00:00:15Z"


@pytest.mark.parametrize("expression", ["61 * * * *", "* * *", "every minute", "* * * * * * *", "0 25 * * *"])
def test_invalid_cron_expressions_are_refused(expression: str) -> None:
    with pytest.raises(TimingError, match="not a valid cron expression"):
        check_cron(expression)


def test_windows_names_as_azure_writes_them_map_to_iana_zones() -> None:
    assert time_zone("Pacific Standard Time") == ZoneInfo("America/Los_Angeles")
    assert time_zone("Türkiye Standard Time") == ZoneInfo("Europe/Istanbul")
    assert time_zone("Europe/Paris") == ZoneInfo("Europe/Paris")
    assert time_zone(None) is UTC
    with pytest.raises(TimingError, match="unknown time zone 'Mars/Olympus'"):
        time_zone("Mars/Olympus")


def test_a_daily_recurrence_at_given_hours_and_minutes() -> None:
    rule = Recurrence("day", 1, ms("2024-07-10T10:00:00Z"), UTC, hours=(4, 11), minutes=(0, 30))
    moments, t = [], ms("2024-07-10T10:00:00Z")
    for _ in range(5):
        t = rule.next_after(t)
        moments.append(iso(t))
    assert moments == [
        "2024-07-10T11:00:00Z",
        "2024-07-10T11:30:00Z",
        "2024-07-11T04:00:00Z",
        "2024-07-11T04:30:00Z",
        "2024-07-11T11:00:00Z",
    ]


def test_a_weekly_recurrence_on_week_days_every_other_week() -> None:
    rule = Recurrence("week", 2, ms("2024-01-01T09:00:00Z"), UTC, hours=(9,), week_days=("monday", "friday"))
    moments, t = [], ms("2024-01-01T08:00:00Z")
    for _ in range(4):
        t = rule.next_after(t)
        moments.append(iso(t)[:10])
    assert moments == ["2024-01-01", "2024-01-05", "2024-01-15", "2024-01-19"]


def test_a_rule_started_long_ago_gives_the_same_occurrences_as_walking_it() -> None:
    from dateutil import rrule

    start = datetime(2020, 1, 1, 0, 7)
    rule = Recurrence("minute", 7, parse_instant(start.isoformat()), UTC)
    after = datetime(2024, 5, 5, 13, 1, 30)
    walked = rrule.rrule(rrule.MINUTELY, interval=7, dtstart=start).after(after)
    assert rule.next_after(parse_instant(after.isoformat())) == parse_instant(walked.isoformat())


def test_without_a_pattern_a_recurrence_counts_from_its_start() -> None:
    rule = Recurrence("hour", 3, ms("2024-01-01T01:15:00Z"), UTC)
    assert iso(rule.next_after(ms("2024-01-01T02:00:00Z"))) == "2024-01-01T04:15:00Z"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (90, 90_000),
        ("00:15:00", 900_000),
        ("1.02:00:00", 93_600_000),
        ("-01:00:00", -3_600_000),
        ("PT1H30M", 5_400_000),
        ("-P1D", -86_400_000),
        (0.5, 500),
    ],
)
def test_durations_in_seconds_timespans_or_iso(text: object, expected: int) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["soon", "1:2", "P", True])
def test_bad_durations_are_refused(text: object) -> None:
    with pytest.raises(TimingError):
        parse_duration(text)


def test_instants_without_an_offset_are_in_the_given_zone() -> None:
    assert (
        iso(parse_instant("2024-07-10T10:00:00", ZoneInfo("America/Los_Angeles"))) == "2024-07-10T17:00:00Z"
    )
    assert iso(parse_instant("2024-07-10")) == "2024-07-10T00:00:00Z"
    with pytest.raises(TimingError, match="not an ISO 8601"):
        parse_instant("next tuesday")
