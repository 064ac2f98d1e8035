"""Alembic environment: the engine comes from Stepwise's own settings (see idp.store.migrate).

One transaction per migration, so that a migration may leave it for an autocommit block
(``CREATE INDEX CONCURRENTLY``, docs/operations/migrations.md)."""

from alembic import context

from idp.store.models import Base

engine = context.config.attributes["engine"]
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=engine.dialect.name == "sqlite",
        compare_type=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()
