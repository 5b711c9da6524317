"""The metadata schema, one definition for SQLite and PostgreSQL.

Times are integer milliseconds since the epoch (what the MLflow API speaks).
Metric points refer to keys by integer id so the big table stays narrow; a summary
row per (job, key) is kept current on every write so that filtering and sorting
jobs by a metric never reads the history. A NULL metric value means NaN: SQLite
cannot store NaN, and one convention on both databases keeps the code single.

Alembic migrations in ``keel/store/migrations`` must produce exactly this schema;
a test compares the two.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# Widest values the tracking API accepts (the same limits MLflow documents).
NAME_LENGTH = 256
KEY_LENGTH = 250
PARAM_VALUE_LENGTH = 6000
TAG_VALUE_LENGTH = 8000

experiments = Table(
    "experiments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(NAME_LENGTH), nullable=False, unique=True),
    Column("artifact_location", Text, nullable=True),
    Column("lifecycle_stage", String(32), nullable=False, server_default="active"),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

experiment_tags = Table(
    "experiment_tags",
    metadata,
    Column(
        "experiment_id",
        Integer,
        ForeignKey("experiments.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("key", String(KEY_LENGTH), primary_key=True),
    Column("value", Text, nullable=False),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(NAME_LENGTH), nullable=False, unique=True),
    Column("display_name", String(NAME_LENGTH), nullable=True),
    Column("experiment_id", Integer, ForeignKey("experiments.id"), nullable=False),
    Column("parent_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=True),
    Column("type", String(32), nullable=False, server_default="run"),
    Column("status", String(32), nullable=False),
    Column("status_reason", Text, nullable=True),
    Column("description", Text, nullable=True),
    Column("user_id", String(NAME_LENGTH), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("start_time", BigInteger, nullable=True),
    Column("end_time", BigInteger, nullable=True),
    Column("heartbeat_at", BigInteger, nullable=True),
    Column("hostname", String(NAME_LENGTH), nullable=True),
    Column("process_id", Integer, nullable=True),
    Column("lifecycle_stage", String(32), nullable=False, server_default="active"),
    Column("artifact_location", Text, nullable=False),
    # Jobs Keel runs (commands, pipeline steps, sweeps): what ran and whether it was reused.
    Column("step_name", String(NAME_LENGTH), nullable=True),
    Column("spec", Text, nullable=True),
    Column("cache_key", String(64), nullable=True),
    Column("reused_from_id", Integer, ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True),
    Column("reuse_note", Text, nullable=True),
    Column("exit_code", Integer, nullable=True),
    Column("environment", Text, nullable=True),
    Column("compute", String(NAME_LENGTH), nullable=True),
    Index(None, "experiment_id", "start_time"),
    Index(None, "status", "heartbeat_at"),
    Index(None, "parent_id"),
    Index(None, "cache_key", "status"),
)

job_params = Table(
    "job_params",
    metadata,
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(KEY_LENGTH), primary_key=True),
    Column("value", Text, nullable=False),
    Index(None, "key", "job_id"),
)

job_tags = Table(
    "job_tags",
    metadata,
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(KEY_LENGTH), primary_key=True),
    Column("value", Text, nullable=False),
    Index(None, "key", "job_id"),
)

metric_keys = Table(
    "metric_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(KEY_LENGTH), nullable=False, unique=True),
)

metrics = Table(
    "metrics",
    metadata,
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("key_id", Integer, ForeignKey("metric_keys.id"), nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("value", Float(precision=53), nullable=True),
    Index(None, "job_id", "key_id", "step"),
)

metric_summaries = Table(
    "metric_summaries",
    metadata,
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("key_id", Integer, ForeignKey("metric_keys.id"), primary_key=True),
    Column("point_count", BigInteger, nullable=False),
    Column("first_step", BigInteger, nullable=False),
    Column("last_step", BigInteger, nullable=False),
    Column("last_timestamp", BigInteger, nullable=False),
    Column("last_value", Float(precision=53), nullable=True),
    Column("min_value", Float(precision=53), nullable=True),
    Column("min_step", BigInteger, nullable=True),
    Column("max_value", Float(precision=53), nullable=True),
    Column("max_step", BigInteger, nullable=True),
    Index(None, "key_id", "last_value"),
    Index(None, "key_id", "min_value"),
    Index(None, "key_id", "max_value"),
)

job_inputs = Table(
    "job_inputs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(NAME_LENGTH), nullable=False),
    Column("type", String(32), nullable=False),
    Column("uri", Text, nullable=True),
    Column("digest", String(NAME_LENGTH), nullable=True),
    Column("source_type", String(64), nullable=True),
    Column("schema", Text, nullable=True),
    Column("profile", Text, nullable=True),
    Column("tags", Text, nullable=True),
    Column("value", Text, nullable=True),  # a literal input's value, as JSON
    UniqueConstraint("job_id", "name", "digest"),
)

job_outputs = Table(
    "job_outputs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(NAME_LENGTH), nullable=False),
    Column("type", String(32), nullable=False),
    # Data outputs: where the committed content lives (relative to the artifact root)
    # and its content digest; literal outputs: their value as JSON.
    Column("uri", Text, nullable=True),
    Column("digest", String(80), nullable=True),
    Column("value", Text, nullable=True),
    UniqueConstraint("job_id", "name"),
)

components = Table(
    "components",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(NAME_LENGTH), nullable=False),
    Column("version", String(64), nullable=False),
    Column("spec", Text, nullable=False),
    Column("digest", String(80), nullable=False),
    Column("description", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("name", "version"),
)

content_digests = Table(
    "content_digests",
    metadata,
    # Content hashes of local files and folders, remembered by (host, path, size, mtime)
    # so unchanged data is not read again to compute a reuse key.
    Column("host", String(NAME_LENGTH), primary_key=True),
    Column("path", Text, primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("mtime_ns", BigInteger, nullable=False),
    Column("digest", String(80), nullable=False),
)

logged_models = Table(
    "logged_models",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(NAME_LENGTH), nullable=False),
    Column("experiment_id", Integer, ForeignKey("experiments.id"), nullable=False),
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True),
    Column("model_type", String(NAME_LENGTH), nullable=True),
    Column("status", String(32), nullable=False),
    Column("status_message", Text, nullable=True),
    Column("artifact_location", Text, nullable=False),
    Column("lifecycle_stage", String(32), nullable=False, server_default="active"),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("params", Text, nullable=True),
    Column("tags", Text, nullable=True),
    Column("metrics", Text, nullable=True),
    Index(None, "experiment_id", "created_at"),
)

# -- data: datastores, versioned data assets, copy plans -----------------------------------

datastores = Table(
    "datastores",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(NAME_LENGTH), nullable=False, unique=True),
    Column("type", String(32), nullable=False),
    Column("description", Text, nullable=True),
    Column("tags", Text, nullable=True),
    # Where it points (account, container, bucket, endpoint, folder…), as JSON: no secrets.
    Column("settings", Text, nullable=False),
    # Credentials, encrypted with the workspace key, or a reference to environment variables.
    Column("credentials", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

data_assets = Table(
    "data_assets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(NAME_LENGTH), nullable=False),
    Column("version", String(64), nullable=False),
    Column("type", String(32), nullable=False),
    # Where the data is: a datastore URI (a reference, or the snapshot Keel uploaded).
    Column("path", Text, nullable=False),
    Column("description", Text, nullable=True),
    Column("tags", Text, nullable=True),
    # The manifest (files, sizes, stamps, hashes) lives in the artifact store; its digest
    # is the version's content digest, which reuse keys and lineage use.
    Column("manifest_uri", Text, nullable=True),
    Column("digest", String(80), nullable=True),
    Column("size", BigInteger, nullable=True),
    Column("file_count", Integer, nullable=True),
    Column("profile", Text, nullable=True),
    Column("lifecycle_stage", String(32), nullable=False, server_default="active"),
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("name", "version"),
    Index(None, "name", "created_at"),
)

copy_items = Table(
    "copy_items",
    metadata,
    # A copy job's plan, written before the first byte moves, so a resume copies only
    # what is not done.
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("path", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("modified", String(64), nullable=True),
    Column("status", String(16), nullable=False),
    Column("digest", String(80), nullable=True),
    Column("error", Text, nullable=True),
    UniqueConstraint("job_id", "path"),
    Index(None, "job_id", "status"),
)

copy_watermarks = Table(
    "copy_watermarks",
    metadata,
    # Incremental copies: how far a source has been copied, advanced in the same
    # transaction that records the new data version.
    Column("key", String(NAME_LENGTH), primary_key=True),
    Column("watermark", String(64), nullable=False),
    Column("asset_name", String(NAME_LENGTH), nullable=True),
    Column("asset_version", String(64), nullable=True),
    Column("updated_at", BigInteger, nullable=False),
)
