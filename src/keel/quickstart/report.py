"""What the quickstart prints at the end: the comparison, and where things live."""

from __future__ import annotations

from typing import Any

from keel.workspace import Workspace


def print_comparison(console: Any, results: dict[str, tuple[str, dict[str, float]]], best: str) -> None:
    from rich.table import Table

    table = Table(title="Validation scores (higher AUC is better)", title_justify="left")
    table.add_column("Model", no_wrap=True)
    for column in ("AUC", "Accuracy", "F1", "Log loss", "Train s"):
        table.add_column(column, justify="right", no_wrap=True)
    ranked = sorted(results.items(), key=lambda item: -item[1][1]["valid_auc"])
    for name, (_job, scores) in ranked:
        style = "bold green" if name == best else None
        table.add_row(
            name,
            f"{scores['valid_auc']:.4f}",
            f"{scores['valid_accuracy']:.4f}",
            f"{scores['valid_f1']:.4f}",
            f"{scores['valid_log_loss']:.4f}",
            f"{scores['train_seconds']:.1f}",
            style=style,
        )
    console.print(table)


def print_sweep(console: Any, workspace: Workspace, sweep_name: str) -> None:
    from rich.table import Table

    from keel.tracking.jobs import get_job
    from keel.tracking.search import search_jobs

    sweep = get_job(workspace.store, sweep_name)
    trials = sorted(search_jobs(workspace.store, parent_id=sweep.id).jobs, key=lambda job: job.id)
    table = Table(
        title=f"Sweep {sweep_name}: best trial {sweep.tags.get('keel.best_trial', '-')}", title_justify="left"
    )
    for column in ("Trial", "max_depth", "min_samples_leaf", "valid AUC", "Status"):
        table.add_column(column, no_wrap=True)
    for trial in trials:
        auc = trial.metrics.get("valid_auc")
        mark = " ★" if trial.tags.get("keel.best_trial") == "true" else ""
        table.add_row(
            trial.display_name or trial.name,
            trial.params.get("max_depth", ""),
            trial.params.get("min_samples_leaf", ""),
            f"{auc.last:.4f}{mark}" if auc else "",
            trial.status.label,
        )
    console.print(table)


def print_locations(
    console: Any, workspace: Workspace, parent: str, children: list[str], stage: Any = None
) -> None:
    config = workspace.config
    where = "--workspace " + str(config.root) if config.source != "default" else ""
    prefix = f"keel {where} ".replace("  ", " ")
    console.print("[bold]Where everything lives[/bold]")
    console.print(f"  metadata   {workspace.store.url}")
    console.print(f"  artifacts  {config.artifacts_url}")
    console.print("[bold]Look around[/bold]")
    console.print(f"  {prefix}job list --experiment quickstart-flights")
    console.print(f"  {prefix}job show {parent}")
    console.print(f"  {prefix}job compare {' '.join(children)}")
    if stage is not None:
        console.print(
            f"  {prefix}job show {stage.rerun}      # the rerun: every step says where it was reused from"
        )
        console.print(f"  {prefix}job create -f {stage.folder / 'pipeline.yml'} --stream")
    best_first = "--order-by 'max(metrics.valid_auc) DESC'"
    console.print(f"  {prefix}job list {best_first} --filter \"params.model != ''\"")
    console.print(
        f"  {prefix}server   # then MLFLOW_TRACKING_URI=http://127.0.0.1:5000 for the MLflow client"
    )
