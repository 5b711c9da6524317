"""jobs runner: outputs, components, reuse

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "components",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(length=80), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_components")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_components_name_version")),
    )
    op.create_table(
        "content_digests",
        sa.Column("host", sa.String(length=256), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.String(length=80), nullable=False),
        sa.PrimaryKeyConstraint("host", "path", name=op.f("pk_content_digests")),
    )
    op.create_table(
        "job_outputs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("uri", sa.Text(), nullable=True),
        sa.Column("digest", sa.String(length=80), nullable=True),
        sa.Column("value", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_outputs_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_outputs")),
        sa.UniqueConstraint("job_id", "name", name=op.f("uq_job_outputs_job_id_name")),
    )
    with op.batch_alter_table("job_inputs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("value", sa.Text(), nullable=True))

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("step_name", sa.String(length=256), nullable=True))
        batch_op.add_column(sa.Column("spec", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("cache_key", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("reused_from_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("reuse_note", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("exit_code", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("environment", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("compute", sa.String(length=256), nullable=True))
        batch_op.create_index(batch_op.f("ix_jobs_cache_key_status"), ["cache_key", "status"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_jobs_reused_from_id_jobs"),
            "jobs",
            ["reused_from_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_jobs_reused_from_id_jobs"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_jobs_cache_key_status"))
        batch_op.drop_column("compute")
        batch_op.drop_column("environment")
        batch_op.drop_column("exit_code")
        batch_op.drop_column("reuse_note")
        batch_op.drop_column("reused_from_id")
        batch_op.drop_column("cache_key")
        batch_op.drop_column("spec")
        batch_op.drop_column("step_name")

    with op.batch_alter_table("job_inputs", schema=None) as batch_op:
        batch_op.drop_column("value")

    op.drop_table("job_outputs")
    op.drop_table("content_digests")
    op.drop_table("components")
