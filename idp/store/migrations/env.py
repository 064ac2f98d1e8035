"""Alembic environment: the engine comes from Stepwise's own settings (see idp.store.migrate)."""

from alembic import context

from idp.store.models import Base

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=engine.dialect.name == "sqlite",
        compare_type=True,
    )
    context.run_migrations()
