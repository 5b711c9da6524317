"""Schedules and triggers: what creates jobs without a person typing ``keel job create``.

spec.py        schedule YAML (Azure ML's cron and recurrence, plus Keel's trigger types)
timing.py      time zones, instants, durations, cron (croniter) and recurrence (rrule)
windows.py     tumbling windows and their dependencies
due.py         when a clock schedule is due, and catch-up after downtime
records.py     schedules as rows, and the due index
fires.py       fires, claimed once under UNIQUE (schedule, fire key), moved by compare-and-set
jobs.py        the job a fire creates, with its ${{trigger.*}} values
progress.py    moving claimed fires along: submit, release windows, record endings
launch.py      detached runners, each fire run exactly once
storage.py     storage events: checkpoints, listings, folder notifications
completions.py job completions another schedule follows
events.py      signed events from outside; routes.py is their HTTP route
operations.py  what the CLI does: create, enable, trigger, backfill, rerun a window…
loop.py        the scheduler loop (``keel scheduler``, ``keel up``)
"""
