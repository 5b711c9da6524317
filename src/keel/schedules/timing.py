"""Clock arithmetic for schedules: time zones, instants, durations, cron and recurrence.

Instants are integer milliseconds since the epoch (UTC), as everywhere in Keel's
store. Cron expressions are croniter's (five fields, or six with seconds first);
recurrences are dateutil's ``rrule``. Both are evaluated in the schedule's time zone,
so "02:30 every day" follows daylight saving time. Time zones are IANA names or the
Windows names Azure ML's YAML uses ("Pacific Standard Time").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MS_PER = {"second": 1_000, "minute": 60_000, "hour": 3_600_000, "day": 86_400_000, "week": 604_800_000}
# Names Azure ML's time-zone table spells differently from the Windows registry.
_AZURE_ALIASES = {"Türkiye Standard Time": "Turkey Standard Time", "UTC": "UTC"}
_TIMESPAN = re.compile(r"^(-)?(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})$")
_ISO_DURATION = re.compile(r"^(-)?P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


class TimingError(ValueError):
    """A time, duration, time zone or expression that cannot be understood."""


@lru_cache(maxsize=256)
def time_zone(name: str | None) -> tzinfo:
    """An IANA zone, or the zone a Windows name (as Azure ML writes them) stands for."""
    if not name or name.upper() in ("UTC", "Z", "ETC/UTC"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        pass
    from tzlocal.windows_tz import win_tz

    iana = win_tz.get(_AZURE_ALIASES.get(name, name))
    if iana is None:
        raise TimingError(
            f"unknown time zone {name!r}; expected an IANA name such as 'Europe/Paris' "
            "or a Windows name such as 'Pacific Standard Time'"
        )
    return ZoneInfo(iana)


def parse_instant(value: Any, zone: tzinfo = UTC) -> int:
    """An ISO 8601 date or date-time as milliseconds; without an offset it is in ``zone``."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        text = str(value).strip()
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise TimingError(f"{text!r} is not an ISO 8601 date-time (e.g. 2024-05-01T06:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return to_ms(moment)


def to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def from_ms(ms: int, zone: tzinfo = UTC) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(zone)


def iso(ms: int) -> str:
    """UTC, second precision unless there are milliseconds: ``2024-05-01T06:00:00Z``."""
    moment = from_ms(ms)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if ms % 1000:
        text += f".{ms % 1000:03d}"
    return text + "Z"


def parse_duration(value: Any) -> int:
    """Milliseconds from seconds (a number), ``[-][d.]hh:mm:ss`` (as Data Factory writes
    timespans) or ISO 8601 (``PT1H``, ``-P1D``)."""
    if isinstance(value, bool):
        raise TimingError(f"expected a duration, got {value!r}")
    if isinstance(value, int | float):
        return int(value * 1000)
    text = str(value).strip()
    match = _TIMESPAN.match(text)
    if match:
        sign, days, hours, minutes, seconds = match.groups()
        total = int(days or 0) * 86_400 + int(hours) * 3_600 + int(minutes) * 60 + int(seconds)
        return -total * 1000 if sign else total * 1000
    match = _ISO_DURATION.match(text)
    if match and text not in ("P", "-P", "PT", "-PT"):
        sign, days, hours, minutes, seconds = match.groups()
        total = int(days or 0) * 86_400 + int(hours or 0) * 3_600 + int(minutes or 0) * 60
        total_ms = total * 1000 + int(float(seconds or 0) * 1000)
        return -total_ms if sign else total_ms
    raise TimingError(f"{text!r} is not a duration; expected seconds, hh:mm:ss, d.hh:mm:ss or PT1H")


# -- cron --------------------------------------------------------------------------------


def check_cron(expression: str) -> None:
    """Raise :class:`TimingError` unless croniter accepts the expression."""
    from croniter import croniter

    fields = expression.split()
    if len(fields) not in (5, 6) or not croniter.is_valid(expression, second_at_beginning=len(fields) == 6):
        raise TimingError(
            f"{expression!r} is not a valid cron expression; expected five fields "
            "(minute hour day-of-month month day-of-week), or six with seconds first"
        )


@dataclass(frozen=True)
class Cron:
    """Occurrences of a cron expression in a time zone."""

    expression: str
    zone: tzinfo

    def next_after(self, ms: int) -> int:
        """The first occurrence strictly after ``ms``."""
        from croniter import croniter

        six = len(self.expression.split()) == 6
        start = from_ms(ms, self.zone)
        found = croniter(self.expression, start, second_at_beginning=six).get_next(datetime)
        return to_ms(found)


# -- recurrence --------------------------------------------------------------------------

_FREQUENCIES = ("minute", "hour", "day", "week", "month")
# dateutil's frequency constants (YEARLY=0 … SECONDLY=6), by Azure ML's names.
_RRULE_FREQUENCIES: dict[str, Literal[1, 2, 3, 4, 5]] = {
    "month": 1,
    "week": 2,
    "day": 3,
    "hour": 4,
    "minute": 5,
}
WEEK_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True)
class Recurrence:
    """Azure ML's recurrence: every ``interval`` ``frequency`` from ``start``, optionally at
    given hours, minutes, week days and month days, in a time zone."""

    frequency: str
    interval: int
    start: int
    zone: tzinfo
    hours: tuple[int, ...] = ()
    minutes: tuple[int, ...] = ()
    week_days: tuple[str, ...] = ()
    month_days: tuple[int, ...] = ()

    def next_after(self, ms: int) -> int | None:
        """The first occurrence strictly after ``ms`` (None if the rule has no more)."""
        start = from_ms(self.start, self.zone).replace(tzinfo=None)
        after = from_ms(ms, self.zone).replace(tzinfo=None)
        rule = self._rule(self._rebased(start, after))
        found = rule.after(after, inc=False)
        while found is not None:
            instant = to_ms(found.replace(tzinfo=self.zone))
            if instant > ms:  # a wall time repeated by a DST change can map back in time
                return instant
            found = rule.after(found, inc=False)
        return None

    def _rule(self, start: datetime) -> Any:
        from dateutil import rrule

        frequency = _RRULE_FREQUENCIES[self.frequency]
        days = [
            (rrule.MO, rrule.TU, rrule.WE, rrule.TH, rrule.FR, rrule.SA, rrule.SU)[WEEK_DAYS.index(d)]
            for d in self.week_days
        ]
        options: dict[str, Any] = {"dtstart": start, "interval": self.interval, "cache": False}
        if self.hours:
            options["byhour"] = self.hours
        if self.minutes or self.hours:  # a pattern names wall-clock times: on the minute
            options["byminute"] = self.minutes or (0,)
            options["bysecond"] = 0
        if days:
            options["byweekday"] = days
        if self.month_days:
            options["bymonthday"] = self.month_days
        return rrule.rrule(frequency, **options)

    def _rebased(self, start: datetime, after: datetime) -> datetime:
        """``start`` moved forward by whole periods to just before ``after``, so a rule that
        began years ago is not walked from its first occurrence (same occurrences)."""
        if after <= start or self.frequency == "month":  # months are few: walking them is cheap
            return start
        period = timedelta(milliseconds=MS_PER[self.frequency] * self.interval)
        whole = max(0, (after - start) // period - 1)
        return start + whole * period


def check_recurrence(frequency: str, hours: tuple[int, ...], minutes: tuple[int, ...]) -> None:
    if frequency not in _FREQUENCIES:
        raise TimingError(f"frequency {frequency!r}: expected one of {', '.join(_FREQUENCIES)}")
    if any(not 0 <= h <= 23 for h in hours):
        raise TimingError("hours must be between 0 and 23")
    if any(not 0 <= m <= 59 for m in minutes):
        raise TimingError("minutes must be between 0 and 59")
