"""SQLAlchemy Core tables for pgqueue's schema: for alembic, and for people writing reports
(``select(jobs.c.queue, func.count()).group_by(jobs.c.queue)``). The DDL itself is sql/schema.sql;
tests check that the two agree."""

from __future__ import annotations

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Double,
    Enum,
    Integer,
    MetaData,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData(schema="pgqueue")

job_status = Enum("scheduled", "queued", "deferred", "running", "finished", "failed", "canceled",
                  name="job_status", schema="pgqueue", metadata=metadata)

jobs = Table(
    "jobs", metadata,
    Column("id", Text, primary_key=True),
    Column("queue", Text, nullable=False),
    Column("func_name", Text, nullable=False),
    Column("args", JSONB, nullable=False),
    Column("kwargs", JSONB, nullable=False),
    Column("status", job_status, nullable=False),
    Column("priority", Integer, nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("description", Text),
    Column("meta", JSONB, nullable=False),
    Column("result", JSONB),
    Column("exc_info", Text),
    Column("errors", JSONB, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("claim_count", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("retry_intervals", ARRAY(Double), nullable=False),
    Column("timeout_seconds", Double, nullable=False),
    Column("result_ttl", Integer),
    Column("failure_ttl", Integer),
    Column("ttl", Integer),
    Column("depends_on", ARRAY(Text), nullable=False),
    Column("unique_key", Text),
    Column("worker_id", BigInteger),
    Column("worker_name", Text),
    Column("enqueued_at", DateTime(timezone=True), nullable=False),
    Column("scheduled_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("ended_at", DateTime(timezone=True)),
    Column("delete_at", DateTime(timezone=True)),
    Column("callbacks", JSONB),
    Column("retry_on", ARRAY(Text)),
    Column("batch_id", Text),
    Column("allow_dependency_failures", Boolean, nullable=False),
    Column("with_dependency_result", Boolean, nullable=False),
    Column("progress", JSONB),
    Column("snoozes", Integer),
    Column("traceparent", Text),
)

workers = Table(
    "workers", metadata,
    Column("id", BigInteger, primary_key=True),
    Column("name", Text, nullable=False),
    Column("hostname", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("queues", ARRAY(Text), nullable=False),
    Column("concurrency", Integer, nullable=False),
    Column("lease_seconds", Double, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False),
    Column("stopped_at", DateTime(timezone=True)),
    Column("successful_jobs", BigInteger, nullable=False),
    Column("failed_jobs", BigInteger, nullable=False),
    Column("working_seconds", Double, nullable=False),
)

pauses = Table(
    "pauses", metadata,
    Column("scope", Text, primary_key=True),
    Column("paused_at", DateTime(timezone=True), nullable=False),
    Column("until", DateTime(timezone=True)),
    Column("reason", Text),
)

schedules = Table(
    "schedules", metadata,
    Column("name", Text, primary_key=True),
    Column("expression", Text, nullable=False),
    Column("timezone", Text, nullable=False),
    Column("func_name", Text, nullable=False),
    Column("queue", Text, nullable=False),
    Column("last_tick", DateTime(timezone=True)),
    Column("last_job_id", Text),
    Column("last_outcome", Text),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("next_tick", DateTime(timezone=True)),
)

batches = Table(
    "batches", metadata,
    Column("id", Text, primary_key=True),
    Column("description", Text),
    Column("total", Integer, nullable=False),
    Column("pending", Integer, nullable=False),
    Column("finished", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("canceled", Integer, nullable=False),
    Column("callbacks", JSONB),
    Column("callback_ids", ARRAY(Text)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True)),
    Column("closed_at", DateTime(timezone=True)),
)
