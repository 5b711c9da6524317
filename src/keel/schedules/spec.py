"""Schedule YAML: Azure ML's ``cron`` and ``recurrence`` triggers plus Keel's own types.

    name: nightly
    trigger: {type: cron, expression: "0 2 * * *", time_zone: "Pacific Standard Time"}
    create_job: ./pipeline.yml          # or {type: pipeline, job: ./x.yml, inputs: …},
                                        # an inline job, or azureml:<job name>

Each trigger type is a strict model; :func:`parse_schedule` checks a document (shape,
cron expression, time zone, start before end, durations) and reports problems with
the file, line and field. Whether the job itself is valid is checked by
:mod:`keel.schedules.jobs` against the real resolver.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from keel.schedules import timing
from keel.specs.checks import File, first_problem
from keel.specs.source import Source, read_yaml
from keel.tracking.validation import text_values

CATCHUP = ("all", "latest", "none")
TRIGGER_TYPES = ("cron", "recurrence", "tumbling_window", "storage_event", "event", "job_completed")
CLOCK_TYPES = ("cron", "recurrence", "tumbling_window")
_NAME = re.compile(r"^[A-Za-z0-9][\w\-]{0,254}$")
IntList = int | list[int]
# YAML reads an unquoted 2024-05-01 (or 2024-05-01T06:00:00Z) as a date (or date-time).
Instant = str | datetime | date


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class ScheduleDoc(_Model):
    """The top level of a schedule file."""

    schema_: str | None = Field(default=None, alias="$schema")
    name: str
    display_name: str | None = None
    description: str | None = None
    tags: dict[str, str | int | float | bool | None] | None = None
    properties: dict[str, Any] | None = None
    trigger: dict[str, Any]
    create_job: str | dict[str, Any]
    catchup: Literal["all", "latest", "none"] | None = None
    is_enabled: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                "a schedule name is letters, digits, '_' and '-', starting with a letter or digit"
            )
        return value


class _ClockFields(_Model):
    start_time: Instant | None = None
    end_time: Instant | None = None
    time_zone: str | None = Field(default=None, alias="timezone")


class CronTrigger(_ClockFields):
    type: Literal["cron"]
    expression: str


class RecurrencePattern(_Model):
    hours: IntList | None = None
    minutes: IntList | None = None
    week_days: str | list[str] | None = Field(default=None, alias="weekdays")
    month_days: IntList | None = None


class RecurrenceTrigger(_ClockFields):
    type: Literal["recurrence"]
    frequency: Literal["minute", "hour", "day", "week", "month"]
    interval: int = Field(ge=1)
    schedule: RecurrencePattern | None = Field(default=None, alias="pattern")


class WindowRetry(_Model):
    count: int = Field(default=0, ge=0, le=100)
    interval_seconds: float = Field(default=30, ge=0)


class WindowDependency(_Model):
    """``schedule`` omitted (or ``type: self``): this schedule's own earlier windows."""

    type: Literal["self", "schedule"] | None = None
    schedule: str | None = None
    offset: str | int | float
    size: str | int | float | None = None


class TumblingWindowTrigger(_Model):
    type: Literal["tumbling_window"]
    # "second" is Keel's: windows of seconds, for fast loops and for testing.
    frequency: Literal["second", "minute", "hour", "day"]
    interval: int = Field(default=1, ge=1)
    start_time: Instant
    end_time: Instant | None = None
    delay: str | int | float | None = None
    max_concurrency: int = Field(default=1, ge=1, le=50)
    retry: WindowRetry | None = None
    depends_on: list[WindowDependency] = Field(default_factory=list)


def _created_only() -> list[Literal["created", "deleted"]]:
    return ["created"]


class StorageEventTrigger(_Model):
    type: Literal["storage_event"]
    datastore: str | None = None
    path: str | None = None
    path_begins_with: str | None = None
    path_ends_with: str | None = None
    events: list[Literal["created", "deleted"]] = Field(default_factory=_created_only, min_length=1)
    ignore_empty: bool = True
    poll_interval_seconds: float = Field(default=10, gt=0)


class EventTrigger(_Model):
    type: Literal["event"]
    secret: str | None = None
    subject_begins_with: str | None = None
    subject_ends_with: str | None = None
    event_types: list[str] | None = None


class JobCompletedTrigger(_Model):
    type: Literal["job_completed"]
    schedule: str | None = None
    pipeline: str | None = None
    status: (
        Literal["completed", "failed", "canceled", "any"]
        | list[Literal["completed", "failed", "canceled", "any"]]
    ) = "completed"


TRIGGER_MODELS: dict[str, type[_Model]] = {
    "cron": CronTrigger,
    "recurrence": RecurrenceTrigger,
    "tumbling_window": TumblingWindowTrigger,
    "storage_event": StorageEventTrigger,
    "event": EventTrigger,
    "job_completed": JobCompletedTrigger,
}
MODELS: list[type[BaseModel]] = [
    ScheduleDoc,
    *TRIGGER_MODELS.values(),
    RecurrencePattern,
    WindowRetry,
    WindowDependency,
]


@dataclass(frozen=True)
class ScheduleDefinition:
    """A checked schedule: its trigger as plain settings (stored as JSON) and its job as written."""

    name: str
    trigger_type: str
    trigger: dict[str, Any]
    create_job: str | dict[str, Any]
    catchup: str
    base_dir: Path
    source_file: str
    display_name: str | None = None
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    enabled: bool = True
    secret: str | None = field(default=None, repr=False)


def read_schedule(path: str | Path) -> ScheduleDefinition:
    """Read and check a schedule file; problems name the file, line and field."""
    file = Path(path).expanduser().resolve()
    raw = read_yaml(file)
    return parse_schedule(raw, File(Source(file, raw), file.parent))


def parse_schedule(raw: Any, file: File) -> ScheduleDefinition:
    """Check a parsed schedule document (``file.base`` is the folder paths are relative to)."""
    doc = _validate(ScheduleDoc, raw, file, ())
    kind = doc.trigger.get("type")
    model = TRIGGER_MODELS.get(str(kind))
    if model is None:
        raise file.error(
            ("trigger", "type"),
            f"unknown trigger type {kind!r}",
            hint=f"expected one of {', '.join(TRIGGER_TYPES)}",
        )
    trigger = _validate(model, doc.trigger, file, ("trigger",))
    settings = _settings(trigger, file)
    secret = settings.pop("secret", None)
    return ScheduleDefinition(
        name=doc.name,
        trigger_type=str(kind),
        trigger=settings,
        create_job=raw["create_job"],  # as read, with its lines (pydantic's copy has none)
        catchup=doc.catchup or ("all" if kind == "tumbling_window" else "latest"),
        base_dir=file.base or Path.cwd(),
        source_file=file.source.file,
        display_name=doc.display_name,
        description=doc.description,
        tags=text_values(doc.tags),
        enabled=doc.is_enabled,
        secret=secret,
    )


def _validate(model: type[Any], raw: Any, file: File, where: tuple[str, ...]) -> Any:
    if not isinstance(raw, dict):
        raise file.error(where, f"expected a mapping, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise first_problem(exc, model, file, where) from None


def _settings(trigger: Any, file: File) -> dict[str, Any]:
    """The trigger's settings with times as milliseconds and durations as milliseconds."""
    at = ("trigger",)
    if isinstance(trigger, CronTrigger | RecurrenceTrigger):
        return _clock_settings(trigger, file)
    if isinstance(trigger, TumblingWindowTrigger):
        return _window_settings(trigger, file)
    if isinstance(trigger, StorageEventTrigger):
        if (trigger.datastore is None) == (trigger.path is None):
            raise file.error(at, "give either a datastore or a local folder path to watch")
        return trigger.model_dump(exclude_none=True)
    if isinstance(trigger, JobCompletedTrigger):
        if (trigger.schedule is None) == (trigger.pipeline is None):
            raise file.error(at, "give either the schedule or the pipeline whose jobs to follow")
        statuses = [trigger.status] if isinstance(trigger.status, str) else list(trigger.status)
        return {**trigger.model_dump(exclude_none=True), "status": statuses}
    return dict(trigger.model_dump(exclude_none=True))


def _clock_settings(trigger: CronTrigger | RecurrenceTrigger, file: File) -> dict[str, Any]:
    at = ("trigger",)
    zone = _zone(trigger.time_zone, file)
    start = _instant(trigger.start_time, zone, file, "start_time")
    end = _instant(trigger.end_time, zone, file, "end_time")
    if start is not None and end is not None and end <= start:
        raise file.error((*at, "end_time"), "the end time is not after the start time")
    settings: dict[str, Any] = {
        "type": trigger.type,
        "time_zone": trigger.time_zone or "UTC",
        "start": start,
        "end": end,
    }
    if isinstance(trigger, CronTrigger):
        try:
            timing.check_cron(trigger.expression)
        except timing.TimingError as exc:
            raise file.error((*at, "expression"), str(exc)) from None
        return {**settings, "expression": trigger.expression}
    pattern = trigger.schedule or RecurrencePattern()
    hours, minutes = _ints(pattern.hours), _ints(pattern.minutes)
    days = [pattern.week_days] if isinstance(pattern.week_days, str) else list(pattern.week_days or [])
    days = [day.lower() for day in days]
    unknown = [day for day in days if day not in timing.WEEK_DAYS]
    if unknown:
        raise file.error(
            (*at, "schedule", "week_days"),
            f"unknown week day {unknown[0]!r}",
            hint=f"expected {', '.join(timing.WEEK_DAYS)}",
        )
    try:
        timing.check_recurrence(trigger.frequency, tuple(hours), tuple(minutes))
    except timing.TimingError as exc:
        raise file.error((*at, "schedule"), str(exc)) from None
    month_days = _ints(pattern.month_days)
    if any(not 1 <= d <= 31 for d in month_days):
        raise file.error((*at, "schedule", "month_days"), "month days must be between 1 and 31")
    return {
        **settings,
        "frequency": trigger.frequency,
        "interval": trigger.interval,
        "hours": hours,
        "minutes": minutes,
        "week_days": days,
        "month_days": month_days,
    }


def _window_settings(trigger: TumblingWindowTrigger, file: File) -> dict[str, Any]:
    at = ("trigger",)
    start = _instant(trigger.start_time, UTC, file, "start_time") or 0
    end = _instant(trigger.end_time, UTC, file, "end_time")
    if end is not None and end <= start:
        raise file.error((*at, "end_time"), "the end time is not after the start time")
    length = timing.MS_PER[trigger.frequency] * trigger.interval
    delay = _duration(trigger.delay, file, (*at, "delay")) if trigger.delay is not None else 0
    if delay < 0:
        raise file.error((*at, "delay"), "the delay cannot be negative")
    dependencies = []
    for index, dependency in enumerate(trigger.depends_on):
        where = (*at, "depends_on", index)
        offset = _duration(dependency.offset, file, (*where, "offset"))
        size = _duration(dependency.size, file, (*where, "size")) if dependency.size is not None else None
        own = dependency.schedule is None or dependency.type == "self"
        if own and offset >= 0:
            raise file.error(
                (*where, "offset"),
                "a dependency on the schedule's own windows needs a negative offset (an earlier window)",
            )
        if size is not None and size <= 0:
            raise file.error((*where, "size"), "the size must be positive")
        if dependency.type == "schedule" and dependency.schedule is None:
            raise file.error(where, "a dependency of type schedule names the schedule it waits for")
        dependencies.append(
            {"schedule": None if own else dependency.schedule, "offset": offset, "size": size}
        )
    retry = trigger.retry or WindowRetry()
    return {
        "type": trigger.type,
        "frequency": trigger.frequency,
        "interval": trigger.interval,
        "length": length,
        "start": start,
        "end": end,
        "delay": delay,
        "max_concurrency": trigger.max_concurrency,
        "retry_count": retry.count,
        "retry_interval": int(retry.interval_seconds * 1000),
        "depends_on": dependencies,
    }


def _zone(name: str | None, file: File) -> Any:
    try:
        return timing.time_zone(name)
    except timing.TimingError as exc:
        raise file.error(("trigger", "time_zone"), str(exc)) from None


def _instant(value: Instant | None, zone: Any, file: File, key: str) -> int | None:
    if value is None:
        return None
    try:
        return timing.parse_instant(value, zone)
    except timing.TimingError as exc:
        raise file.error(("trigger", key), str(exc)) from None


def _duration(value: Any, file: File, where: tuple[str | int, ...]) -> int:
    try:
        return timing.parse_duration(value)
    except timing.TimingError as exc:
        raise file.error(where, str(exc)) from None


def _ints(value: int | list[int] | None) -> list[int]:
    if value is None:
        return []
    return [value] if isinstance(value, int) else sorted(set(value))
