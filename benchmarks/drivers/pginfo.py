"""Harness helper (runs in benchmarks/.venvs/harness): PostgreSQL settings and database clean-up.

    python pginfo.py settings ADMIN_DSN          # JSON of SHOW for the settings that matter here
    python pginfo.py drop ADMIN_DSN bench_x ...  # drop benchmark databases left by a killed driver
"""

import json
import sys

import pgutil

if __name__ == "__main__":
    cmd, dsn, *rest = sys.argv[1:]
    if cmd == "settings":
        print(json.dumps(pgutil.pg_settings(dsn)))
    elif cmd == "drop":
        for name in rest:
            pgutil.drop_database(dsn, name)
    else:
        sys.exit(f"unknown command {cmd}")
