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
    # No index on status: every plan row changes status once, and a second index
    # doubles the cost of that update; a resume reads its job's rows by (job_id, path).
    UniqueConstraint("job_id", "path"),
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

# -- models: the model registry (registered models, their versions, aliases) ---------------

registered_models = Table(
    "registered_models",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(NAME_LENGTH), nullable=False, unique=True),
    Column("description", Text, nullable=True),
    Column("tags", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("registered_models.id", ondelete="CASCADE"), nullable=False),
    Column("version", String(64), nullable=False),
    Column("type", String(32), nullable=False),
    # The snapshot of the files in the content store, its manifest (per-file hashes) and
    # the manifest's digest: loading checks every file against it before unpickling.
    Column("path", Text, nullable=False),
    Column("manifest_uri", Text, nullable=False),
    Column("digest", String(80), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("file_count", Integer, nullable=False),
    # From the MLmodel file, as JSON: the flavors' settings and the signature.
    Column("flavors", Text, nullable=True),
    Column("signature", Text, nullable=True),
    Column("description", Text, nullable=True),
    Column("tags", Text, nullable=True),
    Column("properties", Text, nullable=True),
    Column("source", Text, nullable=True),  # what was registered: a path, a job output, run files
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True),
    Column("lifecycle_stage", String(32), nullable=False, server_default="active"),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("model_id", "version"),
    Index(None, "job_id"),
)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("model_id", Integer, ForeignKey("registered_models.id", ondelete="CASCADE"), primary_key=True),
    Column("alias", String(NAME_LENGTH), primary_key=True),
    Column("version_id", Integer, ForeignKey("model_versions.id", ondelete="CASCADE"), nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

# -- approvals, webhooks, tokens ----------------------------------------------------------

approvals = Table(
    "approvals",
    metadata,
    # One request per approval step job: a paused pipeline waits on it, holding no process.
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False, unique=True),
    Column("root_job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("step_name", String(NAME_LENGTH), nullable=False),
    Column("approvers", Text, nullable=False),  # JSON list; empty means anyone may decide
    Column("min_approvals", Integer, nullable=False),
    Column("instructions", Text, nullable=True),
    Column("on_timeout", String(16), nullable=False),
    Column("status", String(16), nullable=False),  # pending | approved | rejected | canceled
    Column("status_reason", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=True),
    Column("decided_at", BigInteger, nullable=True),
    # When a runner was last started to resume the pipeline, so lookers do not start many.
    Column("resume_requested_at", BigInteger, nullable=True),
    Index(None, "status", "expires_at"),
    Index(None, "root_job_id"),
)

approval_decisions = Table(
    "approval_decisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("approval_id", Integer, ForeignKey("approvals.id", ondelete="CASCADE"), nullable=False),
    Column("decision", String(16), nullable=False),  # approve | reject
    Column("decided_by", String(NAME_LENGTH), nullable=False),
    Column("os_user", String(NAME_LENGTH), nullable=True),  # who typed it, when --as names another
    Column("comment", Text, nullable=True),
    Column("decided_at", BigInteger, nullable=False),
    UniqueConstraint("approval_id", "decided_by"),
)

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    # Endpoints registered with `keel webhook create` (keel.yaml may name more).
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(NAME_LENGTH), nullable=False, unique=True),
    Column("url", Text, nullable=False),
    Column("events", Text, nullable=False),  # JSON list of event patterns
    Column("secret", Text, nullable=False),  # sealed with the workspace key, or a ${VAR} reference
    Column("created_at", BigInteger, nullable=False),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    # The outbox: an event for an endpoint, kept until delivered or out of attempts, so a
    # crash loses nothing. The endpoint is named, not copied: its secret is read at send time.
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("endpoint", String(NAME_LENGTH), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    Column("status", String(16), nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", BigInteger, nullable=False),
    Column("lease_until", BigInteger, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("delivered_at", BigInteger, nullable=True),
    UniqueConstraint("endpoint", "event_id"),
    Index(None, "status", "next_attempt_at"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    # Workspace API tokens: only a SHA-256 of each is kept (they are long random strings,
    # so a slow hash adds nothing); the token itself is shown once, when created.
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(NAME_LENGTH), nullable=False, unique=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("created_by", String(NAME_LENGTH), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("last_used_at", BigInteger, nullable=True),
)

# -- schedules: triggers, their fires (claimed exactly once), storage checkpoints ----------

schedules = Table(
    "schedules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(NAME_LENGTH), nullable=False, unique=True),
    Column("display_name", String(NAME_LENGTH), nullable=True),
    Column("description", Text, nullable=True),
    Column("tags", Text, nullable=True),
    Column("trigger_type", String(32), nullable=False),
    # The checked trigger, as JSON (no secrets); the job to create, as written, and the
    # folder its relative paths are relative to.
    Column("trigger", Text, nullable=False),
    Column("create_job", Text, nullable=False),
    Column("base_dir", Text, nullable=False),
    Column("source_file", Text, nullable=True),
    Column("catchup", String(16), nullable=False),
    Column("enabled", Integer, nullable=False, server_default="1"),
    # When the clock next makes this schedule due (NULL: the clock never does, e.g. events);
    # a tick reads only rows whose time has come, through the index below.
    Column("next_fire_at", BigInteger, nullable=True),
    # Where an event source was read up to (storage baseline, job-completion cursor), as JSON.
    Column("cursor", Text, nullable=True),
    # The HMAC secret of an event schedule, sealed with the workspace key.
    Column("secret", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index(None, "enabled", "next_fire_at"),
    Index(None, "trigger_type", "enabled"),
)

schedule_fires = Table(
    "schedule_fires",
    metadata,
    # One row per fire, inserted before its job exists: the UNIQUE (schedule, fire key)
    # constraint is the claim, so a fire happens once however many schedulers run. The
    # key is the fire time for clock triggers (a window's start for tumbling windows),
    # the event id, or the file and its stamp. The job's name is chosen with the claim,
    # so a scheduler killed between claim and submit is finished by the next one, once.
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("schedule_id", Integer, ForeignKey("schedules.id", ondelete="CASCADE"), nullable=False),
    Column("fire_key", String(512), nullable=False),
    Column("fire_time", BigInteger, nullable=False),
    Column("window_end", BigInteger, nullable=True),
    Column("kind", String(16), nullable=False),
    # pending | submitting | submitted | started | running | completed | failed | canceled
    # | error | skipped
    Column("state", String(16), nullable=False),
    Column("attempt", Integer, nullable=False, server_default="1"),
    Column("job_name", String(NAME_LENGTH), nullable=True),
    Column("trigger_values", Text, nullable=False),
    Column("not_before", BigInteger, nullable=True),
    Column("lease_until", BigInteger, nullable=True),
    Column("owner", String(NAME_LENGTH), nullable=True),
    Column("error", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger, nullable=True),
    UniqueConstraint("schedule_id", "fire_key"),
    Index(None, "state", "not_before"),
    Index(None, "schedule_id", "fire_time"),
    Index(None, "schedule_id", "finished_at"),
)

schedule_objects = Table(
    "schedule_objects",
    metadata,
    # Storage-event checkpoint: the files a schedule has seen (path and size/mtime or etag),
    # so a listing after downtime finds exactly what was created or deleted meanwhile.
    Column("schedule_id", Integer, ForeignKey("schedules.id", ondelete="CASCADE"), primary_key=True),
    Column("path", Text, primary_key=True),
    Column("stamp", String(256), nullable=False),
)

# -- online endpoints: endpoints, their deployments, the gateway serving them ---------------

online_endpoints = Table(
    "online_endpoints",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(NAME_LENGTH), nullable=False, unique=True),
    Column("description", Text, nullable=True),
    Column("tags", Text, nullable=True),
    Column("auth_mode", String(32), nullable=False),
    # The primary and secondary keys and the token-signing secret, sealed with the workspace key.
    Column("credentials", Text, nullable=False),
    Column("traffic", Text, nullable=False),  # JSON {deployment: percent}
    Column("mirror_traffic", Text, nullable=False),  # JSON {deployment: percent}
    # Bumped by every change, so a gateway polling the table sees what changed.
    Column("revision", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

online_deployments = Table(
    "online_deployments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("endpoint_id", Integer, ForeignKey("online_endpoints.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(NAME_LENGTH), nullable=False),
    Column("description", Text, nullable=True),
    Column("tags", Text, nullable=True),
    Column("model_name", String(NAME_LENGTH), nullable=True),
    Column("model_version", String(64), nullable=True),
    # The resolved deployment (code snapshot digest, settings) as JSON: what the workers run.
    Column("spec", Text, nullable=False),
    Column("revision", Integer, nullable=False),
    # What the serving gateway last reported: pending | starting | ready | failed, and why.
    Column("state", String(16), nullable=False),
    Column("state_reason", Text, nullable=True),
    Column("served_revision", Integer, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("endpoint_id", "name"),
)

online_gateways = Table(
    "online_gateways",
    metadata,
    # A running `keel up`: where it listens, so `invoke` and `create` can reach it.
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("hostname", String(NAME_LENGTH), nullable=False),
    Column("process_id", Integer, nullable=False),
    Column("url", Text, nullable=False),
    Column("started_at", BigInteger, nullable=False),
    Column("heartbeat_at", BigInteger, nullable=False),
)

# -- batch endpoints: endpoints, their deployments, invocations and their mini-batches -------

batch_endpoints = Table(
    "batch_endpoints",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(NAME_LENGTH), nullable=False, unique=True),
    Column("description", Text, nullable=True),
    Column("tags", Text, nullable=True),
    Column("auth_mode", String(32), nullable=True),
    # The deployment an invocation uses when it names none (NULL: the only one there is).
    Column("default_deployment", String(NAME_LENGTH), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

batch_deployments = Table(
    "batch_deployments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("endpoint_id", Integer, ForeignKey("batch_endpoints.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(NAME_LENGTH), nullable=False),
    Column("description", Text, nullable=True),
    Column("tags", Text, nullable=True),
    # The registered model version it scores with (a local model path is registered first).
    Column("model_name", String(NAME_LENGTH), nullable=False),
    Column("model_version", String(64), nullable=False),
    # The scoring code's snapshot in the content store and the script in it; NULL for an
    # MLflow model scored without code.
    Column("code_digest", String(80), nullable=True),
    Column("scoring_script", Text, nullable=True),
    # mini_batch_size, concurrency, retries, error threshold, output… as JSON.
    Column("settings", Text, nullable=False),
    Column("environment", Text, nullable=True),
    Column("compute", String(NAME_LENGTH), nullable=True),
    Column("properties", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("endpoint_id", "name"),
)

batch_invocations = Table(
    "batch_invocations",
    metadata,
    # An invocation is a job (status, logs, metrics, inputs and outputs live there); this
    # row says what the job scores, so a detached runner can run it and an endpoint list it.
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("endpoint", String(NAME_LENGTH), nullable=False),
    Column("deployment", String(NAME_LENGTH), nullable=False),
    Column("input", Text, nullable=False),
    Column("input_type", String(32), nullable=True),
    Column("settings", Text, nullable=False),  # the deployment's settings after --set overrides
    Column("created_at", BigInteger, nullable=False),
    Index(None, "endpoint", "created_at"),
)

batch_mini_batches = Table(
    "batch_mini_batches",
    metadata,
    # How each mini-batch of an invocation ended, written as they end (in batches).
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("status", String(16), nullable=False),  # completed | failed
    Column("attempts", Integer, nullable=False),
    Column("items", BigInteger, nullable=False),  # rows (tabular input) or files (folder input)
    Column("first_item", Text, nullable=True),  # the first file, or "rows 0-99999"
    Column("output_rows", BigInteger, nullable=True),
    Column("seconds", Float(precision=53), nullable=True),
    Column("error", Text, nullable=True),
)
