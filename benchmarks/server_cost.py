"""The server's own work per statement, counted in instructions: pgqueue's enqueue INSERT and COPY row
against the raw floor's, on a PostgreSQL of this machine's, under valgrind's callgrind.

    .venv/bin/python benchmarks/server_cost.py            # ~1-2 minutes; needs valgrind and PostgreSQL's binaries

Wall-clock rates on a shared machine swing by 2x (docs/performance.md, Noise); instruction counts are the
same from run to run, whatever else the machine does. So a change to the schema or to a statement can be
measured to the percent here, where a timed run would need dozens of interleaved rounds to see it.

How: a scratch cluster (initdb into a temporary folder; the machine's own server is not touched) gets
pgqueue's schema (pgqueue.migrate) and the raw floor's table (drivers/raw_driver.py). Then PostgreSQL runs
in single-user mode under callgrind, twice per case: once with N1 and once with N2 executions of the
statement (PREPARE, then EXECUTE, each its own transaction, as enqueue's are), or a COPY of N1 and N2 rows.
(Ir(N2) - Ir(N1)) / (N2 - N1) is the cost of one more statement or row: start-up, catalogue loading and
the parsing of the script cancel out. fsync is off: what is counted is the CPU work, not the disk.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).parent / "drivers"))
from raw_driver import SCHEMA as RAW_SCHEMA  # noqa: E402

import pgqueue  # noqa: E402
from pgqueue.sql import statement  # noqa: E402


def bindir() -> Path:
    try:
        found = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout
        return Path(found.strip())
    except (OSError, subprocess.CalledProcessError):
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
        if not found:
            sys.exit("PostgreSQL's binaries not found (pg_config --bindir, /usr/lib/postgresql/*/bin)")
        return found[-1].parent


def as_user() -> list[str]:
    """PostgreSQL refuses to run as root: run its binaries as the postgres user then."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        sys.exit("running as root, and there is no postgres user to run PostgreSQL as")
    return ["runuser", "-u", "postgres", "--"]


@contextlib.contextmanager
def scratch_cluster(bin_: Path, prefix: list[str]) -> Iterator[Path]:
    """A data directory with pgqueue's schema and the raw table, its server stopped again."""
    root = Path(tempfile.mkdtemp(prefix="pgqueue_server_cost_"))
    try:
        os.chmod(root, 0o777)
        data = root / "data"
        subprocess.run([*prefix, str(bin_ / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                        "--locale=C.UTF-8"], check=True, capture_output=True)
        port = "54329"
        subprocess.run([*prefix, str(bin_ / "pg_ctl"), "-D", str(data), "-w", "-l", str(root / "log"), "-o",
                        f"-p {port} -k {root} -c listen_addresses=''", "start"], check=True, capture_output=True)
        try:
            dsn = f"host={root} port={port} user=postgres dbname=postgres"
            pgqueue.migrate(dsn)
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(RAW_SCHEMA)
        finally:
            subprocess.run([*prefix, str(bin_ / "pg_ctl"), "-D", str(data), "-w", "stop"], check=True,
                           capture_output=True)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def instructions(bin_: Path, prefix: list[str], root: Path, script: str, tag: str) -> int:
    path = root / f"{tag}.sql"
    path.write_text(script)
    out = root / f"{tag}.callgrind"
    with open(path) as stdin:
        subprocess.run([*prefix, "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                        str(bin_ / "postgres"), "--single", "-j", "-D", str(root / "data"), "-c", "fsync=off",
                        "-c", "synchronous_commit=off", "-c", "plan_cache_mode=force_generic_plan", "postgres"],
                       stdin=stdin, check=True, capture_output=True)
    match = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.M)
    if match is None:
        sys.exit(f"no instruction count in {out}")
    return int(match.group(1))


def per_unit(bin_: Path, prefix: list[str], root: Path, make: Any, n1: int, n2: int, tag: str) -> float:
    low = instructions(bin_, prefix, root, make(n1), f"{tag}_{n1}")
    high = instructions(bin_, prefix, root, make(n2), f"{tag}_{n2}")
    return (high - low) / (n2 - n1)


def outcome_script(name: str, n: int, total: int) -> str:
    """``total`` running jobs of a worker (each its own transaction, as a claim leaves them), then ``n``
    executions of the outcome statement ``name``, one job each, with the worker's plan settings; the
    statement's parameters as the worker sends them (arrays as text)."""
    _, text, names = statement(name)
    values = {"claims": "'{1}'", "results": "'{\"[1]\"}'", "durations": "'{0.1}'", "chunks": "'{0}'",
              "worker_id": "1", "exc_infos": "'{\"Traceback: boom\"}'",
              "errors": r"""'{"{\"type\": \"ValueError\"}"}'""", "retryables": "'{t}'"}
    lines = ["TRUNCATE pgqueue.jobs, pgqueue.workers;",
             "SET enable_sort = off; SET enable_seqscan = off; SET enable_hashjoin = off; SET enable_mergejoin = off;",
             "INSERT INTO pgqueue.jobs (id, queue, func_name, status, worker_id, claim_count, attempts, started_at) "
             f"SELECT 'job-' || i, 'bench', 'benchjobs.f', 'running', 1, 1, 1, now() FROM generate_series(1, {total}) i;",
             f"PREPARE s AS {text.decode()};"]
    for i in range(1, n + 1):
        params = ", ".join(f"'{{job-{i}}}'" if p == "ids" else values[p] for p in names)
        lines.append(f"EXECUTE s({params});")
    return "\n\n".join(lines) + "\n\n"


def outcome_cases(bin_: Path, prefix: list[str], root: Path, n1: int, n2: int) -> list[tuple[str, str, float, float]]:
    """finish_jobs and fail_jobs, one outcome of a plain job (no batch, no dependents) per statement. The
    same number of jobs is written in both runs, so that the difference is the statements' alone."""
    cases = []
    for name in ("finish_jobs", "fail_jobs"):
        cost = per_unit(bin_, prefix, root, lambda n, name=name: outcome_script(name, n, n2), n1, n2, name)
        cases.append((f"{name}, one plain job's outcome", "instructions per statement", float("nan"), cost))
    return cases


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--statements", default="200,1200", help="N1,N2 executions of each INSERT")
    p.add_argument("--rows", default="10000,30000", help="N1,N2 rows of each COPY")
    p.add_argument("--outcomes", action="store_true",
                   help="also the worker's finish_jobs and fail_jobs, one outcome per statement (the plain job's)")
    args = p.parse_args()
    s1, s2 = map(int, args.statements.split(","))
    r1, r2 = map(int, args.rows.split(","))
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is needed (Debian: apt install valgrind)")
    bin_, prefix = bindir(), as_user()
    enqueue_sql = statement("insert_simple_job")[1].decode()

    def run_inserts(table_sql: str, values: Any) -> Any:
        def make(n: int) -> str:
            lines = ["TRUNCATE pgqueue.jobs, raw_jobs;", f"PREPARE s AS {table_sql};"]
            lines += [f"EXECUTE s({values(i)});" for i in range(n)]
            return "\n\n".join(lines) + "\n\n"
        return make

    def run_copy(root: Path, target: str, line: Any) -> Any:
        def make(n: int) -> str:
            rows = root / f"rows_{target.split()[0]}_{n}.txt"
            rows.write_text("".join(line(i) for i in range(n)))
            os.chmod(rows, 0o644)
            return f"TRUNCATE pgqueue.jobs, raw_jobs;\n\nCOPY {target} FROM '{rows}';\n\n"
        return make

    def job_id(i: int) -> str:  # increasing ids, as enqueue's UUIDv7 are
        return f"0190a1b2-c3d4-7abc-8def-{i:012x}"

    with scratch_cluster(bin_, prefix) as root:
        cases = [
            ("INSERT, one job per transaction", "instructions per statement",
             per_unit(bin_, prefix, root, run_inserts("INSERT INTO raw_jobs (args) VALUES ($1::jsonb)",
                                                      lambda i: f"'[{i}]'"), s1, s2, "raw_insert"),
             per_unit(bin_, prefix, root, run_inserts(enqueue_sql, lambda i: f"'{job_id(i)}', 'bench', "
                                                      f"'benchjobs.f', '[{i}]', 180"), s1, s2, "pgq_insert")),
            ("COPY, one row", "instructions per row",
             per_unit(bin_, prefix, root, run_copy(root, "raw_jobs (args)", lambda i: f"[{i}]\n"), r1, r2, "raw_copy"),
             per_unit(bin_, prefix, root, run_copy(
                 root, "pgqueue.jobs (id, queue, func_name, args, timeout_seconds)",
                 lambda i: f"{job_id(i)}\tbench\tbenchjobs.f\t[{i}]\t180\n"), r1, r2, "pgq_copy")),
        ]
        if args.outcomes:
            cases += outcome_cases(bin_, prefix, root, s1, s2)
    version = subprocess.run([str(bin_ / "postgres"), "--version"], capture_output=True, text=True).stdout.strip()
    print(f"Server instructions (callgrind, {version}, single-user, fsync off)")
    print("| Statement | raw floor | pgqueue | pgqueue ÷ raw |")
    print("|---|---|---|---|")
    for name, unit, raw, pgq in cases:
        print(f"| {name} ({unit}) | {raw:,.0f} | {pgq:,.0f} | {pgq / raw:.2f} |")
    print(f"pgqueue's INSERT: queries.sql insert_simple_job ({enqueue_sql.split(chr(10))[0]} ...); "
          f"its COPY: copy_simple_jobs. Runs: {s1}/{s2} statements, {r1}/{r2} rows.")


if __name__ == "__main__":
    main()
