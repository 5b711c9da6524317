"""``keel approval``: list, show, approve and reject the approval steps pipelines wait at."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from keel.cli.context import OutputFormat, OutputOption, open_workspace

if TYPE_CHECKING:
    from keel.approvals import Approval
    from keel.workspace import Workspace

app = typer.Typer(help="Approvals: pipeline steps waiting for people to decide.", no_args_is_help=True)

_WEBHOOK_FLUSH_SECONDS = 2.0
IdArgument = Annotated[int, typer.Argument(help="The approval's id (see `keel approval list`).")]
CommentOption = Annotated[str | None, typer.Option("--comment", "-c", help="Why; required to reject.")]
AsOption = Annotated[
    str | None,
    typer.Option("--as", help="Decide as this approver (default: your OS user, which is recorded too)."),
]


def _looked_at(ctx: typer.Context) -> Workspace:
    """Open the workspace and settle approvals whose timeout passed (whoever looks, decides)."""
    from keel.approvals import settle

    workspace = open_workspace(ctx)
    settle(workspace)
    return workspace


@app.command("list")
def list_approvals(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="Decided ones too, not only the pending.")] = False,
    pipeline: Annotated[str | None, typer.Option("--pipeline", help="Only this pipeline job.")] = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """List approvals, newest first (by default the pending ones)."""
    from keel.approvals import PENDING, list_approvals
    from keel.cli.render import format_time, print_json, print_table

    found = list_approvals(_looked_at(ctx).store, status=None if all_ else PENDING, pipeline=pipeline)
    if output == OutputFormat.json:
        print_json([approval.to_dict() for approval in found])
        return
    rows = [
        (
            a.id,
            a.pipeline,
            a.step_name,
            a.status,
            f"{len(a.approved_by)}/{a.min_approvals}",
            ", ".join(a.approvers) or "anyone",
            format_time(a.created_at),
            format_time(a.expires_at),
        )
        for a in found
    ]
    columns = ("ID", "Pipeline", "Step", "Status", "Approved", "Approvers", "Requested", "Times out")
    print_table(columns, rows, empty="no approvals waiting" if not all_ else "no approvals yet")


@app.command("show")
def show(ctx: typer.Context, approval_id: IdArgument, output: OutputOption = OutputFormat.table) -> None:
    """Show one approval: what to check, who may decide, and every decision so far."""
    from keel.approvals import get_approval

    approval = get_approval(_looked_at(ctx).store, approval_id)
    _print(approval, output)


@app.command("approve")
def approve(
    ctx: typer.Context,
    approval_id: IdArgument,
    comment: CommentOption = None,
    as_: AsOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Approve; once enough approvers have, the pipeline resumes."""
    from keel.approvals import approve as approve_request

    workspace = _looked_at(ctx)
    approval = approve_request(workspace, approval_id, by=as_, comment=comment)
    _after_decision(workspace, approval, output)


@app.command("reject")
def reject(
    ctx: typer.Context,
    approval_id: IdArgument,
    comment: CommentOption = None,
    as_: AsOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Reject, saying why (--comment); the pipeline fails at this step."""
    from keel.approvals import reject as reject_request

    workspace = _looked_at(ctx)
    approval = reject_request(workspace, approval_id, by=as_, comment=comment or "")
    _after_decision(workspace, approval, output)


def _after_decision(workspace: Workspace, approval: Approval, output: OutputFormat) -> None:
    from keel.approvals import PENDING
    from keel.webhooks import flush

    flush(workspace, within_seconds=_WEBHOOK_FLUSH_SECONDS)
    if output == OutputFormat.json:
        from keel.cli.render import print_json

        print_json(approval.to_dict())
        return
    if approval.status == PENDING:
        count = f"{len(approval.approved_by)} of {approval.min_approvals}"
        typer.echo(f"approval {approval.id}: {count} approvals so far ({', '.join(approval.approved_by)})")
        return
    typer.echo(f"approval {approval.id}: {approval.status} ({approval.status_reason})")
    what = "resumes" if approval.status == "approved" else "fails at this step"
    typer.echo(f"  pipeline {approval.pipeline} {what}: keel job stream {approval.pipeline}")


def _print(approval: Approval, output: OutputFormat) -> None:
    from keel.cli.render import format_time, print_fields, print_json, print_table

    if output == OutputFormat.json:
        print_json(approval.to_dict())
        return
    print_fields(
        [
            ("Pipeline", approval.pipeline),
            ("Step", f"{approval.step_name} ({approval.job_name})"),
            ("Status", approval.status + (f" ({approval.status_reason})" if approval.status_reason else "")),
            ("Approvers", ", ".join(approval.approvers) or "anyone with access to the workspace"),
            ("Needed", f"{approval.min_approvals} approval(s); {len(approval.approved_by)} so far"),
            ("Instructions", approval.instructions),
            ("Requested", format_time(approval.created_at)),
            ("Times out", _timeout_line(approval)),
            ("Decided", format_time(approval.decided_at)),
        ],
        title=f"Approval {approval.id}",
    )
    rows = [
        (
            d.decision,
            d.decided_by,
            "" if d.os_user == d.decided_by else d.os_user,
            format_time(d.decided_at),
            d.comment,
        )
        for d in approval.decisions
    ]
    if rows:
        print_table(("Decision", "By", "OS user", "When", "Comment"), rows, title="Decisions")


def _timeout_line(approval: Approval) -> str | None:
    from keel.cli.render import format_time

    if approval.expires_at is None:
        return None
    return f"{format_time(approval.expires_at)} (then: {approval.on_timeout})"
