"""Schedule YAML: every bad input is a clear error naming the file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.errors import InvalidInput
from keel.schedules.spec import read_schedule
from tests.schedules.conftest import write


def schedule_file(tmp_path: Path, trigger: str, extra: str = "") -> Path:
    return write(
        tmp_path, "schedule.yml", f"name: nightly\ntrigger:\n{trigger}create_job: ./job.yml\n{extra}"
    )


def test_an_azure_ml_cron_schedule_reads_with_its_defaults(tmp_path: Path) -> None:
    path = schedule_file(
        tmp_path,
        '  type: cron\n  expression: "0 * * * *"\n  start_time: "2022-07-10T10:00:00"\n'
        '  time_zone: "Pacific Standard Time"\n',
    )
    definition = read_schedule(path)
    assert definition.trigger_type == "cron"
    assert definition.catchup == "latest"
    assert definition.trigger["start"] == 1_657_472_400_000  # 10:00 in Los Angeles is 17:00 UTC
    assert definition.base_dir == tmp_path


@pytest.mark.parametrize(
    ("trigger", "line", "message"),
    [
        (
            '  type: cron\n  expression: "61 * * * *"\n',
            4,
            "trigger.expression: '61 * * * *' is not a valid cron",
        ),
        (
            "  type: cron\n  expression: '* * * * *'\n  time_zone: Nowhere/Land\n",
            5,
            "trigger.time_zone: unknown time zone 'Nowhere/Land'",
        ),
        (
            "  type: cron\n  expression: '* * * * *'\n  start_time: 2024-02-01\n  end_time: 2024-01-01\n",
            6,
            "trigger.end_time: the end time is not after the start time",
        ),
        ("  type: recurrence\n  frequency: fortnight\n  interval: 1\n", 4, "trigger.frequency"),
        (
            "  type: recurrence\n  frequency: day\n  interval: 1\n  schedule:\n    hours: [25]\n",
            6,
            "hours must be between 0 and 23",
        ),
        (
            "  type: tumbling_window\n  frequency: hour\n  start_time: 2024-01-01\n  depends_on:\n"
            "    - offset: '01:00:00'\n",
            7,
            "needs a negative offset",
        ),
        (
            "  type: tumbling_window\n  frequency: hour\n  start_time: 2024-01-01\n  delay: soon\n",
            6,
            "trigger.delay: 'soon' is not a duration",
        ),
        ("  type: storage_event\n", 2, "give either a datastore or a local folder path"),
        (
            "  type: job_completed\n  schedule: a\n  pipeline: b\n",
            2,
            "give either the schedule or the pipeline",
        ),
        ("  type: telepathy\n", 3, "unknown trigger type 'telepathy'"),
        ("  type: cron\n  expression: '* * * * *'\n  colour: red\n", 5, "unknown field 'colour'"),
    ],
)
def test_bad_triggers_name_file_line_and_field(tmp_path: Path, trigger: str, line: int, message: str) -> None:
    path = schedule_file(tmp_path, trigger)
    with pytest.raises(InvalidInput) as caught:
        read_schedule(path)
    assert str(caught.value).startswith(f"{path}:{line}: ")
    assert message in str(caught.value)


def test_a_bad_catchup_and_a_missing_job_are_located(tmp_path: Path) -> None:
    path = schedule_file(tmp_path, "  type: cron\n  expression: '* * * * *'\n", "catchup: sometimes\n")
    with pytest.raises(InvalidInput, match=r"schedule.yml:6: catchup"):
        read_schedule(path)
    missing = write(tmp_path, "other.yml", "name: x\ntrigger: {type: cron, expression: '* * * * *'}\n")
    with pytest.raises(InvalidInput, match="'create_job' is required"):
        read_schedule(missing)


def test_tumbling_windows_default_to_catching_up_everything(tmp_path: Path) -> None:
    path = schedule_file(
        tmp_path,
        "  type: tumbling_window\n  frequency: hour\n  interval: 2\n  start_time: 2024-01-01T00:00:00Z\n"
        "  delay: '00:10:00'\n  max_concurrency: 3\n  retry: {count: 2, interval_seconds: 5}\n"
        "  depends_on:\n    - {offset: '-02:00:00'}\n"
        "    - {schedule: upstream, offset: 0, size: '04:00:00'}\n",
    )
    definition = read_schedule(path)
    assert definition.catchup == "all"
    trigger = definition.trigger
    assert (trigger["length"], trigger["delay"], trigger["retry_count"]) == (7_200_000, 600_000, 2)
    assert trigger["depends_on"] == [
        {"schedule": None, "offset": -7_200_000, "size": None},
        {"schedule": "upstream", "offset": 0, "size": 14_400_000},
    ]
