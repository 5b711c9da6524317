"""``keel quickstart``: the end-to-end demo on the embedded workspace.

1. Tracking: load real flights data, train three models as child jobs of one
   parent job, logging params, learning curves and model files; compare them.
2. Pipelines: the same question as an Azure ML YAML pipeline (prepare → train →
   evaluate) over monthly files, a small sweep, and a rerun where every step is
   reused.
Later stages (data assets, registry, endpoints, schedules) extend this module.
"""

from __future__ import annotations

import time

from keel.workspace import Workspace

EXPERIMENT = "quickstart-flights"


def run_quickstart(workspace: Workspace, *, rows: int) -> None:
    from rich.console import Console

    from keel.quickstart import flights, pipelines, report
    from keel.quickstart.training import TRAINERS, train_and_log
    from keel.tracking import sdk

    console = Console(soft_wrap=True)
    started = time.perf_counter()
    sdk.set_workspace(workspace.config.root if workspace.config.is_embedded else None)
    console.rule("[bold]Keel quickstart[/bold]: will this flight arrive more than 15 minutes late?")
    console.print(f"workspace: {workspace.config.root}")
    with console.status("loading NYC flights 2013…"):
        sample = flights.sample_arrived(flights.load_flights(), rows=rows)
        frame = flights.features(sample)
        data = flights.split(frame)
    console.rule("[bold]1. Tracking[/bold]: three models, logged as they learn", align="left")
    late_share = float(frame[flights.TARGET].mean())
    console.print(f"data: {data.rows:,} flights ({late_share:.0%} late), {len(flights.FEATURES)} features")
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
    console.rule("[bold]2. Pipelines[/bold]: the same work as Azure ML YAML, then a sweep", align="left")
    stage = pipelines.run_stage(workspace, console, sample)
    report.print_sweep(console, workspace, stage.sweep)
    report.print_locations(console, workspace, parent.name, [job for job, _ in results.values()], stage)
    console.print(f"[dim]quickstart finished in {time.perf_counter() - started:.1f} s[/dim]")
