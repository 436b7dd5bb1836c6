"""The same project with Django's PostgreSQL backend on psycopg2, as Django before 4.2 runs it: the backend is
imported while `import psycopg` fails, then psycopg comes back for pgqueue."""

import sys

from .settings import *  # noqa: F403

_hidden = {name: sys.modules.pop(name) for name in list(sys.modules) if name.split(".")[0] == "psycopg"}
sys.modules["psycopg"] = None  # type: ignore[assignment]  # `import psycopg` raises ImportError
try:
    import django.db.backends.postgresql.base  # noqa: F401
finally:
    del sys.modules["psycopg"]
    sys.modules.update(_hidden)
