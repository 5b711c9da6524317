"""``keel quickstart``: the end-to-end demo on the embedded workspace.

1. Tracking: load real flights data, train three models as child jobs of one
   parent job, logging params, learning curves and model files; compare them.
2. Data: monthly files land in a "source" datastore; a pipeline copies them in,
   joins and cleans them with DuckDB, and registers a versioned, profiled asset.
3. Pipelines: an Azure ML YAML pipeline (prepare → train → evaluate) reads that
   asset; a small sweep; a rerun where every step is reused.
4. Models: the sweep's best model is registered with its lineage (alias
   ``champion``); a batch endpoint scores December, a month no training job saw,
   and the lineage from the raw files to the predictions is printed.
5. Serving: ``keel up`` serves the champion as an online endpoint with two
   deployments (blue/green, 90/10); live traffic, latency, the split observed and
   the data collected, then all traffic moves to green under load without a failure.
6. Automation: a daily tumbling window backfills December's first days, a storage
   event scores each file dropped into "incoming", and a release pipeline waits at an
   approval step (approved by the quickstart) before the challenger takes production.
Later stages (monitoring) extend this module.
"""

from __future__ import annotations

import time
from typing import Any

from keel.workspace import Workspace

EXPERIMENT = "quickstart-flights"


def run_quickstart(workspace: Workspace, *, rows: int) -> None:
    from rich.console import Console

    from keel.quickstart import automation, flights, pipelines, report, scoring, serving
    from keel.tracking import sdk

    console = Console(soft_wrap=True)
    started = time.perf_counter()
    sdk.set_workspace(workspace.config.root if workspace.config.is_embedded else None)
    console.rule("[bold]Keel quickstart[/bold]: will this flight arrive more than 15 minutes late?")
    console.print(f"workspace: {workspace.config.root}")
    with console.status("loading NYC flights 2013…"):
        everything = flights.load_flights()
        later = everything["month"] == flights.HOLDOUT_MONTH  # held out: only the batch endpoint sees it
        seen = everything[~later]
        sample = flights.sample_arrived(seen, rows=rows)
        frame = flights.features(sample)
        data = flights.split(frame)
    console.rule("[bold]1. Tracking[/bold]: three models, logged as they learn", align="left")
    late_share = float(frame[flights.TARGET].mean())
    console.print(f"data: {data.rows:,} flights ({late_share:.0%} late), {len(flights.FEATURES)} features")
    parent, results = compare_three_models(console, data)
    console.rule("[bold]2. Data[/bold]: a verified copy, a DuckDB transform, a versioned asset", align="left")
    raw = seen.sample(n=min(int(rows * 1.05), len(seen)), random_state=13)  # cancelled ones too
    airlines = flights.load_airlines()
    folder, data_job = pipelines.run_data_stage(workspace, console, raw, airlines, everything[later])
    console.rule("[bold]3. Pipelines[/bold]: training reads the asset; a sweep; a rerun", align="left")
    stage = pipelines.run_stage(workspace, console, folder, data_job)
    report.print_sweep(console, workspace, stage.sweep)
    console.rule("[bold]4. Models[/bold]: register the best, score unseen flights in batch", align="left")
    scored = scoring.run_scoring_stage(workspace, console, folder, stage.sweep)
    report.print_lineage(console, workspace, scored.predictions)
    console.rule(
        "[bold]5. Serving[/bold]: an online endpoint, live traffic, a blue/green shift", align="left"
    )
    served = serving.run_serving_stage(workspace, console, stage.folder, scored.features)
    console.rule(
        "[bold]6. Automation[/bold]: backfill by schedule, file triggers, an approval gate", align="left"
    )
    automated = automation.run_automation_stage(workspace, console, stage.folder, pipeline=stage.pipeline)
    children = [job for job, _ in results.values()]
    report.print_locations(
        console, workspace, parent, children, stage=stage, scored=scored, served=served, automated=automated
    )
    console.print(f"[dim]quickstart finished in {time.perf_counter() - started:.1f} s[/dim]")


def compare_three_models(console: Any, data: Any) -> tuple[str, dict[str, tuple[str, dict[str, float]]]]:
    """Stage 1: each model a child job of one parent; returns the parent's name and each model's
    job and scores."""
    from keel.quickstart import flights, report
    from keel.quickstart.training import TRAINERS, train_and_log
    from keel.tracking import sdk

    results: dict[str, tuple[str, dict[str, float]]] = {}
    with sdk.start_run(experiment=EXPERIMENT, display_name="compare three models") as parent:
        parent.log_params({"rows": data.rows, "late_minutes": flights.LATE_MINUTES})
        for name in TRAINERS:
            status = console.status(f"training {name.replace('_', ' ')}…")
            with status, sdk.start_run(display_name=name) as child:
                scores = train_and_log(child, name, data)
            results[name] = (child.name, scores)
            console.print(f"  trained {name:<20} valid AUC {scores['valid_auc']:.3f}  job {child.name}")
        best = max(results, key=lambda n: results[n][1]["valid_auc"])
        parent.log_metric("best_valid_auc", results[best][1]["valid_auc"])
        parent.set_tag("best_model", best)
    report.print_comparison(console, results, best)
    return parent.name, results
