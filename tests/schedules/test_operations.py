"""Creating schedules: every create_job form, every reference checked, nothing stored on error."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from keel.errors import Conflict, InvalidInput
from keel.schedules import records
from keel.schedules.jobs import resolve
from keel.schedules.operations import create_schedule, delete_schedule, set_enabled
from keel.store.schema import schedules
from keel.workspace import Workspace
from tests.schedules.conftest import ECHO_JOB, write

CRON = "trigger: {type: cron, expression: '0 * * * *'}\n"


def make(workspace: Workspace, folder: Path, body: str, name: str = "s.yml") -> records.Schedule:
    return create_schedule(workspace, write(folder, name, body)).schedule


def test_a_job_file_with_azure_overrides(workspace: Workspace, tmp_path: Path) -> None:
    write(tmp_path, "jobs/job.yml", ECHO_JOB)
    schedule = make(
        workspace,
        tmp_path,
        f"name: hourly\n{CRON}create_job:\n  type: command\n"
        "  job: ./jobs/job.yml\n  inputs: {note: '${{name}} at ${{creation_context.trigger_time}}'}\n"
        "  tags: {team: data}\n  experiment_name: nightly\n",
    )
    assert schedule.next_fire_at is not None and schedule.next_fire_at % 3_600_000 == 0
    job = resolve(
        workspace,
        schedule.create_job,
        {"time": "2024-01-01T00:00:00Z", "schedule": "hourly", "type": "cron"},
        job_name="brave_job",
    )
    assert job.root.inputs["note"].value == "brave_job at 2024-01-01T00:00:00Z"
    assert job.tags == {"team": "data"} and job.experiment_name == "nightly"


def test_an_inline_job_keeps_trigger_values_typed(workspace: Workspace, tmp_path: Path) -> None:
    schedule = make(
        workspace,
        tmp_path,
        "name: on_event\ntrigger: {type: event}\ncreate_job:\n  type: command\n"
        "  command: echo ${{inputs.rows}}\n  inputs:\n    rows: ${{trigger.data.rows}}\n",
    )
    values = {"time": "t", "schedule": "on_event", "type": "event", "data": {"rows": 42}}
    job = resolve(workspace, schedule.create_job, values, job_name="j")
    assert job.root.inputs["rows"].value == 42
    with pytest.raises(InvalidInput, match=r"\$\{\{trigger.data.rows\}\} has no value"):
        resolve(workspace, schedule.create_job, {**values, "data": {}}, job_name="j")


def test_a_registered_job_reference_runs_its_stored_spec_with_new_inputs(
    workspace: Workspace, tmp_path: Path
) -> None:
    from keel.jobs.submit import submit
    from keel.specs import load_job

    spec = load_job(
        write(tmp_path, "job.yml", "type: command\ncommand: echo ${{inputs.day}}\ninputs: {day: monday}\n")
    )
    submit(workspace, spec, name="weekly_report")
    schedule = make(
        workspace,
        tmp_path,
        f"name: weekly\n{CRON}create_job:\n  job: azureml:weekly_report\n"
        "  inputs: {day: '${{trigger.time}}'}\n",
    )
    job = resolve(workspace, schedule.create_job, {"time": "2024-01-01T00:00:00Z"}, job_name="j")
    assert job.root.inputs["day"].value == "2024-01-01T00:00:00Z"
    with pytest.raises(InvalidInput, match="name a job Keel ran"):
        make(workspace, tmp_path, f"name: weekly2\n{CRON}create_job: azureml:no_such_job\n")


def test_a_trigger_value_the_type_never_sets_is_refused(workspace: Workspace, tmp_path: Path) -> None:
    body = (
        f"name: hourly\n{CRON}create_job:\n  type: command\n  command: echo ${{{{inputs.w}}}}\n"
        "  inputs: {w: '${{trigger.window_start}}'}\n"
    )
    with pytest.raises(InvalidInput, match=r"trigger.window_start\}\}, which a cron trigger does not set"):
        make(workspace, tmp_path, body)
    assert records.list_schedules(workspace.store) == []


def test_a_broken_inline_job_is_located_in_the_schedule_file(workspace: Workspace, tmp_path: Path) -> None:
    body = f"name: hourly\n{CRON}create_job:\n  type: command\n  command: echo ${{{{inputs.missing}}}}\n"
    with pytest.raises(InvalidInput, match=r"s.yml:5: command: \$\{\{inputs.missing\}\} names no input"):
        make(workspace, tmp_path, body)
    with pytest.raises(InvalidInput, match="no such file"):
        make(workspace, tmp_path, f"name: hourly\n{CRON}create_job: ./nowhere.yml\n")


def tumbling(name: str, depends: str = "") -> str:
    return (
        f"name: {name}\ntrigger:\n  type: tumbling_window\n  frequency: hour\n  start_time: 2024-01-01\n"
        f"{depends}create_job: ./job.yml\n"
    )


def test_tumbling_dependencies_must_exist_and_form_no_cycle(workspace: Workspace, tmp_path: Path) -> None:
    write(tmp_path, "job.yml", ECHO_JOB)
    on = "  depends_on: [{{schedule: {0}, offset: 0}}]\n"
    with pytest.raises(InvalidInput, match="there is no schedule named 'upstream'"):
        make(workspace, tmp_path, tumbling("downstream", on.format("upstream")))
    make(workspace, tmp_path, tumbling("upstream"))
    make(workspace, tmp_path, tumbling("downstream", on.format("upstream")))
    with pytest.raises(InvalidInput, match="cycle: upstream → downstream → upstream"):
        make(workspace, tmp_path, tumbling("upstream", on.format("downstream")))
    with pytest.raises(Conflict, match="downstream depend on 'upstream'"):
        delete_schedule(workspace, "upstream")
    delete_schedule(workspace, "downstream")
    delete_schedule(workspace, "upstream")


def test_disable_and_enable(workspace: Workspace, tmp_path: Path) -> None:
    write(tmp_path, "job.yml", ECHO_JOB)
    make(workspace, tmp_path, f"name: hourly\n{CRON}create_job: ./job.yml\n")
    assert set_enabled(workspace, "hourly", False).next_fire_at is None
    assert set_enabled(workspace, "hourly", True).next_fire_at is not None


def test_an_event_secret_is_generated_once_and_stored_sealed(workspace: Workspace, tmp_path: Path) -> None:
    write(tmp_path, "job.yml", ECHO_JOB)
    created = create_schedule(
        workspace, write(tmp_path, "e.yml", "name: hook\ntrigger: {type: event}\ncreate_job: ./job.yml\n")
    )
    assert created.secret and len(created.secret) > 30
    with workspace.store.read() as conn:
        stored = conn.execute(select(schedules.c.secret)).scalar_one()
    assert created.secret not in stored
    again = create_schedule(
        workspace, write(tmp_path, "e.yml", "name: hook\ntrigger: {type: event}\ncreate_job: ./job.yml\n")
    )
    assert not again.new
