"""No models: pgqueue's tables are its own, made by its alembic migrations (see apps.py). The module is here
because Django sends ``post_migrate`` only to apps that have one."""
