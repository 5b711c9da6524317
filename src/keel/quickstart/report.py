"""What the quickstart prints: the comparison, the sweep, the lineage, and where things live."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from keel.workspace import Workspace

if TYPE_CHECKING:
    from rich.tree import Tree

    from keel.data.lineage import Hop
    from keel.models.registry import ModelVersion

_JOB_OUTPUT = re.compile(r"^azureml://jobs/([^/]+)/outputs/([^/]+)$")


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


def print_lineage(console: Any, workspace: Workspace, predictions: str) -> None:
    """The predictions ← the batch job ← its input and its model ← … ← the raw files, as one tree.

    The hops are the registries' own lineage (of the data version, and of the model
    version the batch job read); this only draws them: each node is what a job read,
    and the job that made it, whose own inputs hang below."""
    from rich.tree import Tree

    from keel.data.assets import resolve_asset
    from keel.data.lineage import lineage

    asset = resolve_asset(workspace, f"azureml:{predictions}")
    top = f"[bold]Lineage[/bold]: predictions {predictions}"
    if asset.job_name is not None:
        top += f" ← {_job_label(workspace, asset.job_name)}"
    tree = Tree(top)
    _draw(workspace, tree, lineage(workspace, asset))
    console.print(tree, soft_wrap=False)  # a long path folds inside the tree instead of running off it


def _draw(workspace: Workspace, top: Tree, hops: list[Hop]) -> None:
    """Hops come depth first, so each hangs under the latest node drawn one level up."""
    from keel.models.lineage import model_lineage

    nodes = {0: top}
    for hop in hops:
        model = _model_named(workspace, hop.source) if hop.produced_by is None else None
        node = nodes[hop.depth].add(_hop_label(workspace, hop, model))
        nodes[hop.depth + 1] = node
        if model is not None and model.job_name is not None:
            _draw(workspace, node, model_lineage(workspace, model))


def _model_named(workspace: Workspace, source: str) -> ModelVersion | None:
    """The model version an input names, if it is one (a batch job reads its model as an input)."""
    from keel.errors import KeelError
    from keel.models.registry import resolve_model

    if not source.startswith("azureml:") or source.startswith("azureml://"):
        return None
    try:
        return resolve_model(workspace, source)
    except KeelError:
        return None  # a data asset version, not a model


def _hop_label(workspace: Workspace, hop: Hop, model: ModelVersion | None) -> str:
    """``input ← what was read ← the job that made it``, said as briefly as it can be."""
    from rich.markup import escape

    from keel.models.aliases import aliases_of

    read = f"{escape(hop.input)} ← "
    if model is not None:
        aliases = aliases_of(workspace, model.name)
        pointing = [f"@{alias}" for alias, version in aliases.items() if version == model.version]
        made = f" ← {_job_label(workspace, model.job_name)}" if model.job_name else ""
        return read + f"{escape(hop.source)} [dim]({', '.join([model.type, *pointing])})[/dim]{made}"
    if hop.produced_by is None:
        raw = hop.source.startswith("azureml://datastores/")
        return read + escape(hop.source) + (" [green](raw)[/green]" if raw else "")
    output = _JOB_OUTPUT.match(hop.source)
    if output is not None and output.group(1) == hop.produced_by:  # the job's name once is enough
        return read + f"output {escape(output.group(2))} of {_job_label(workspace, hop.produced_by)}"
    return read + f"{escape(hop.source)} ← {_job_label(workspace, hop.produced_by)}"


def _job_label(workspace: Workspace, name: str) -> str:
    from rich.markup import escape

    from keel.tracking.jobs import get_job

    job = get_job(workspace.store, name)
    what = job.step_name or job.display_name
    return f"[cyan]{job.type}[/cyan] " + (f"{escape(what)} [dim]{name}[/dim]" if what else name)


def print_locations(
    console: Any,
    workspace: Workspace,
    parent: str,
    children: list[str],
    *,
    stage: Any = None,
    scored: Any = None,
    served: Any = None,
    automated: Any = None,
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
    if scored is not None:
        _print_scoring_commands(console, prefix, scored)
    if served is not None:
        _print_serving_commands(console, prefix, served)
    if automated is not None:
        _print_automation_commands(console, prefix, automated)
    best_first = "--order-by 'max(metrics.valid_auc) DESC'"
    console.print(f"  {prefix}job list {best_first} --filter \"params.model != ''\"")
    console.print(
        f"  {prefix}server   # then MLFLOW_TRACKING_URI=http://127.0.0.1:5000 for the MLflow client"
    )


def _print_scoring_commands(console: Any, prefix: str, scored: Any) -> None:
    from keel.quickstart.scoring import ALIAS, ENDPOINT, MODEL

    name = scored.features.partition(":")[0]
    console.print(f"  {prefix}model show {MODEL}@{ALIAS}      # files, signature, aliases, lineage")
    console.print(f"  {prefix}batch-endpoint invoke --name {ENDPOINT} --input azureml:{name}@latest --stream")
    console.print(f"  {prefix}batch-endpoint show-job {scored.batch_job}   # every mini-batch")
    console.print(f"  {prefix}data show {scored.predictions}")


def _print_serving_commands(console: Any, prefix: str, served: Any) -> None:
    name = served.endpoint
    console.print(f"  {prefix}up      # serve the endpoints again (they live in the store)")
    console.print(f"  {prefix}online-endpoint invoke --name {name} --request-file {served.request_file}")
    console.print(f"  {prefix}online-endpoint show --name {name}")
    console.print(f"  {prefix}online-deployment get-logs --endpoint-name {name} --name green")


def _print_automation_commands(console: Any, prefix: str, automated: Any) -> None:
    from keel.quickstart.automation import INCOMING, WINDOWS

    console.print(f"  {prefix}schedule show {WINDOWS}      # its windows and their jobs")
    console.print(f"  {prefix}schedule show {INCOMING}")
    console.print(f"  {prefix}scheduler      # run the schedules (keel up runs them too)")
    console.print(f"  {prefix}approval show {automated.approval_id}      # who decided, when, and why")
    console.print(f"  {prefix}job show {automated.release}")
