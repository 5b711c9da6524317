"""data: datastores, assets, copy plans

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "copy_watermarks",
        sa.Column("key", sa.String(length=256), nullable=False),
        sa.Column("watermark", sa.String(length=64), nullable=False),
        sa.Column("asset_name", sa.String(length=256), nullable=True),
        sa.Column("asset_version", sa.String(length=64), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_copy_watermarks")),
    )
    op.create_table(
        "datastores",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("tags", sa.Text(), nullable=True),
        sa.Column("settings", sa.Text(), nullable=False),
        sa.Column("credentials", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_datastores")),
        sa.UniqueConstraint("name", name=op.f("uq_datastores_name")),
    )
    op.create_table(
        "copy_items",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("modified", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("digest", sa.String(length=80), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_copy_items_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_copy_items")),
        sa.UniqueConstraint("job_id", "path", name=op.f("uq_copy_items_job_id_path")),
    )
    with op.batch_alter_table("copy_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_copy_items_job_id_status"), ["job_id", "status"], unique=False)

    op.create_table(
        "data_assets",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("tags", sa.Text(), nullable=True),
        sa.Column("manifest_uri", sa.Text(), nullable=True),
        sa.Column("digest", sa.String(length=80), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("file_count", sa.Integer(), nullable=True),
        sa.Column("profile", sa.Text(), nullable=True),
        sa.Column("lifecycle_stage", sa.String(length=32), server_default="active", nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_data_assets_job_id_jobs"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_assets")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_data_assets_name_version")),
    )
    with op.batch_alter_table("data_assets", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_data_assets_name_created_at"), ["name", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("data_assets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_data_assets_name_created_at"))

    op.drop_table("data_assets")
    with op.batch_alter_table("copy_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_copy_items_job_id_status"))

    op.drop_table("copy_items")
    op.drop_table("datastores")
    op.drop_table("copy_watermarks")
