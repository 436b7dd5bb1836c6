"""alembic environment for pgqueue's own schema (version table: pgqueue.alembic_version)."""

from alembic import context
from sqlalchemy import text

from pgqueue._schema import metadata

# pgqueue.migrate() hands over an open SQLAlchemy Connection; this environment never builds its own.
connection = context.config.attributes["connection"]
with connection.begin():
    # Serialise concurrent `pgqueue migrate` runs; the lock ends with the transaction.
    connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('pgqueue.migrate'))"))
    connection.execute(text("CREATE SCHEMA IF NOT EXISTS pgqueue"))
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table="alembic_version",
        version_table_schema="pgqueue",
        transactional_ddl=True,
    )
    context.run_migrations()
