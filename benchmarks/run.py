#!/usr/bin/env python3
"""Side-by-side benchmark: pgqueue vs procrastinate, pgqueuer, RQ and a raw-SQL floor.

    python3 benchmarks/run.py                      # full run (see --help for the sizes)
    python3 benchmarks/run.py --smoke              # every system, tiny counts; exit 1 if anything errors
    python3 benchmarks/run.py --systems pgqueue,rq --jobs 5000
    python3 benchmarks/run.py --baseline HEAD~3    # ... plus pgqueue at HEAD~3, alternating with this checkout

This orchestrator uses the standard library only. Each system runs in its own virtualenv under
benchmarks/.venvs/ (built on first use, rebuilt when its requirements change), through a driver script
in benchmarks/drivers/ that prints one JSON line of results. The systems run one after another, never
at the same time. Outputs go to --out: results.json (raw), results.md (table), results.png (chart).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENVS = BENCH / ".venvs"
DRIVERS = BENCH / "drivers"
BASELINES = BENCH / ".baseline"  # exports of --baseline commits (gitignored)
BASELINE_VENV = "pgqueue-baseline"  # one venv, rebuilt when the baseline commit changes

#: name -> pip requirements of its venv, and its driver. Pins follow the versions the comparison targets.
SYSTEMS: dict[str, dict[str, Any]] = {
    "pgqueue": {"requirements": ["-e", str(ROOT)], "driver": "pgqueue_driver.py", "label": "pgqueue",
                "stamp_files": [ROOT / "pyproject.toml"]},
    "procrastinate": {"requirements": ["procrastinate>=3.10,<3.11", "psycopg[binary]"],
                      "driver": "procrastinate_driver.py", "label": "procrastinate"},
    # typer 0.29 breaks pgqueuer 1.6.0's `pgq run` (AttributeError in setup_fancy_logger): pin below it.
    "pgqueuer": {"requirements": ["pgqueuer[asyncpg]>=1.6,<1.7", "typer<0.29", "psycopg[binary]"],
                 "driver": "pgqueuer_driver.py", "label": "pgqueuer"},
    # redis-py 8.2.0's pub/sub thread never stops: `rq worker --burst` (SimpleWorker) hangs at exit in
    # teardown; the published runs used 8.1.0.
    "rq": {"requirements": ["rq>=2,<3", "redis<8.2"], "driver": "rq_driver.py", "label": "RQ (Redis)"},
    "raw": {"requirements": ["psycopg[binary]"], "driver": "raw_driver.py", "label": "raw SQL floor"},
}
HARNESS = {"requirements": ["matplotlib>=3.7", "psycopg[binary]"]}

PROFILES = {
    "full": {"single_jobs": 5000, "bulk_jobs": 50000, "drain_jobs": 20000, "drain_max_seconds": 30,
             "latency_samples": 200, "history_sizes": [0, 100_000, 1_000_000], "drain_timeout": 900,
             "repeats": 3},
    "smoke": {"single_jobs": 200, "bulk_jobs": 200, "drain_jobs": 200, "drain_max_seconds": 60,
              "latency_samples": 10, "history_sizes": [0, 1000], "drain_timeout": 120, "repeats": 1},
}

_print_lock = threading.Lock()


def say(msg: str) -> None:
    with _print_lock:
        print(msg, file=sys.stderr, flush=True)


# -- virtualenvs -----------------------------------------------------------------------------------
def venv_python(name: str) -> Path:
    return VENVS / name / "bin" / "python"


def _stamp(requirements: list[str], stamp_files: list[Path]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([requirements, sys.version, sys.executable]).encode())
    for f in stamp_files:
        h.update(f.read_bytes() if f.exists() else b"")
    return h.hexdigest()


def ensure_venv(name: str, requirements: list[str], stamp_files: list[Path] = (), rebuild: bool = False) -> float:
    """Create benchmarks/.venvs/NAME with the requirements, unless an up-to-date one exists. Returns seconds
    spent. The venv is made without pip and filled by this interpreter's pip (``pip --python``), which
    is several seconds faster per venv; with no usable host pip it falls back to the venv's own pip."""
    target = VENVS / name
    stamp_path = target / ".bench-stamp"
    want = _stamp(requirements, list(stamp_files))
    if not rebuild and venv_python(name).exists() and stamp_path.exists() and stamp_path.read_text() == want:
        return 0.0
    t = time.monotonic()
    say(f"[venv] building {name}: pip install {' '.join(requirements)}")
    if target.exists():
        shutil.rmtree(target)
    VENVS.mkdir(parents=True, exist_ok=True)
    host_pip = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, text=True)
    use_host = host_pip.returncode == 0 and _pip_has_python_option(host_pip.stdout)
    subprocess.run([sys.executable, "-m", "venv", *([] if not use_host else ["--without-pip"]), str(target)],
                   check=True, capture_output=True)
    pip = ([sys.executable, "-m", "pip", "--python", str(venv_python(name))] if use_host
           else [str(venv_python(name)), "-m", "pip"])
    proc = subprocess.run([*pip, "install", "--disable-pip-version-check", "-q", *requirements],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        shutil.rmtree(target, ignore_errors=True)
        raise RuntimeError(f"pip install for venv {name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    stamp_path.write_text(want)
    spent = time.monotonic() - t
    say(f"[venv] {name} ready in {spent:.1f}s")
    return spent


def _pip_has_python_option(version_line: str) -> bool:
    try:  # "pip 23.2.1 from ..." -- --python exists since pip 22.3
        major, minor = (int(x) for x in version_line.split()[1].split(".")[:2])
    except (IndexError, ValueError):
        return False
    return (major, minor) >= (22, 3)


# -- the baseline: pgqueue at an earlier commit ------------------------------------------------------
def git(*args: str) -> str:
    proc = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout.strip()


def resolve_baseline(ref: str) -> dict[str, str]:
    """The commit REF names in this repository: {"ref", "sha", "short", "label"}."""
    try:
        sha = git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except RuntimeError as exc:
        raise SystemExit(f"--baseline {ref}: not a commit of the repository at {ROOT} ({exc})") from None
    short = git("rev-parse", "--short", sha)
    return {"ref": ref, "sha": sha, "short": short, "label": f"pgqueue@{short}"}


def export_baseline(sha: str) -> Path:
    """``git archive`` of the commit into benchmarks/.baseline/<sha>/, once; other commits' exports go (the
    one baseline venv is rebuilt for the new one anyway)."""
    target = BASELINES / sha
    done = target / ".bench-export-complete"
    if done.exists():
        return target
    BASELINES.mkdir(parents=True, exist_ok=True)
    for old in BASELINES.iterdir():
        if old.is_dir():
            shutil.rmtree(old)
    say(f"[baseline] exporting {sha[:12]} to {target.relative_to(ROOT)}")
    tmp = BASELINES / f"{sha}.partial"
    tmp.mkdir()
    proc = subprocess.Popen(["git", "-C", str(ROOT), "archive", "--format=tar", sha], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None
    with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
        if hasattr(tarfile, "data_filter"):  # Python 3.12, and 3.10.12 / 3.11.4 on
            tar.extractall(tmp, filter="data")
        else:
            tar.extractall(tmp)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.wait() != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"git archive {sha}: {err.strip()}")
    missing = [f for f in ("pyproject.toml", "pgqueue/__init__.py") if not (tmp / f).exists()]
    if missing:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"commit {sha[:12]} has no {' or '.join(missing)}: not a pgqueue that pip can install")
    tmp.rename(target)
    done.write_text(sha + "\n")
    return target


def pgqueue_constraints() -> Path | None:
    """The distributions in the current pgqueue venv (pgqueue itself left out) as pip constraints, so that
    the baseline gets the same psycopg, SQLAlchemy, ... and only pgqueue's own code differs."""
    code = ("import importlib.metadata as m\n"
            "names = {}\n"
            "for d in m.distributions():\n"
            "    n = (d.metadata['Name'] or '').lower().replace('_', '-')\n"
            "    if n and n not in ('pgqueue', 'pip', 'setuptools', 'wheel'):\n"
            "        names[n] = d.version\n"
            "print('\\n'.join(f'{n}=={v}' for n, v in sorted(names.items())))\n")
    proc = subprocess.run([str(venv_python("pgqueue")), "-c", code], capture_output=True, text=True)
    if proc.returncode != 0 or not proc.stdout.strip():
        say(f"[baseline] could not list the pgqueue venv's packages: {proc.stderr.strip()[-300:]}")
        return None
    path = BASELINES / "constraints.txt"
    BASELINES.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != proc.stdout:
        path.write_text(proc.stdout)
    return path


def ensure_baseline(baseline: dict[str, Any], pgqueue_ready: concurrent.futures.Future[float] | None,
                    rebuild: bool) -> float:
    """Export the baseline commit and build its venv: ``pip install -e`` of the export, pinned to the
    current pgqueue venv's dependency versions when it has been built (else as pip resolves them)."""
    t = time.monotonic()
    export = export_baseline(baseline["sha"])
    baseline["path"] = str(export)
    constraints = None
    if pgqueue_ready is not None:
        try:
            pgqueue_ready.result()
            constraints = pgqueue_constraints()
        except Exception:  # reported for the pgqueue venv itself
            pass
    requirements = [*(["-c", str(constraints)] if constraints else []), "-e", str(export)]
    try:
        ensure_venv(BASELINE_VENV, requirements, [export / "pyproject.toml", *([constraints] if constraints else [])],
                    rebuild)
    except RuntimeError as exc:
        if not constraints:
            raise
        say(f"[baseline] pip cannot install {baseline['label']} with the current venv's versions; "
            f"trying without them: {str(exc).strip()[-300:]}")
        constraints = None
        ensure_venv(BASELINE_VENV, ["-e", str(export)], [export / "pyproject.toml"], rebuild)
    baseline["same_dependencies"] = constraints is not None
    return time.monotonic() - t


# -- running drivers -------------------------------------------------------------------------------
def run_driver(name: str, cfg: dict[str, Any], timeout: float, log_dir: Path, *, venv: str | None = None,
               driver: str | None = None, log_name: str | None = None) -> dict[str, Any]:
    """Run one system's driver in its venv (by default both named after the system). Its stderr is
    streamed (and logged); stdout's last line is the JSON result."""
    cmd = [str(venv_python(venv or name)), str(DRIVERS / (driver or SYSTEMS[name]["driver"])),
           "--config", json.dumps(cfg)]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(DRIVERS)
    env["PYTHONUNBUFFERED"] = "1"
    for var in ("PGQUEUE_DATABASE_URL", "DATABASE_URL"):  # every connection here is explicit
        env.pop(var, None)
    log_path = log_dir / f"{log_name or name}-driver.log"
    t = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=DRIVERS)

    def pump() -> None:
        assert proc.stderr is not None
        with open(log_path, "w") as fh:
            for line in proc.stderr:
                fh.write(line)
                say(f"  {name} | {line.rstrip()}")

    chunks: list[str] = []

    def collect() -> None:
        assert proc.stdout is not None
        chunks.append(proc.stdout.read())

    readers = [threading.Thread(target=pump, daemon=True), threading.Thread(target=collect, daemon=True)]
    for r in readers:
        r.start()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        for r in readers:
            r.join(5)
        return {"system": name, "results": {}, "errors": [{"workload": "driver",
                "error": f"driver timed out after {timeout:.0f}s", "traceback": ""}]}
    for r in readers:
        r.join(30)
    stdout = "".join(chunks)
    lines = [ln for ln in stdout.splitlines() if ln.strip().startswith("{")]
    try:
        out = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        out = {"system": name, "results": {}, "errors": []}
    if proc.returncode != 0 and not out.get("errors"):
        out.setdefault("errors", []).append({"workload": "driver", "traceback": "",
                                             "error": f"driver exited with code {proc.returncode}"})
    out["elapsed_seconds"] = round(time.monotonic() - t, 1)
    return out


def run_with_baseline(cfg: dict[str, Any], baseline: dict[str, Any], make_cfg: Any, timeout: float,
                      log_dir: Path, wait_idle_seconds: float) -> dict[str, dict[str, Any]]:
    """pgqueue and its baseline in alternating rounds: round 1 runs pgqueue then the baseline, round 2 the
    baseline first, and so on. Each round is one driver run per side with ``repeats`` 1 (every workload
    measured once, on a fresh database); the rounds take the place of the driver's back-to-back repeats, so
    that the machine's drift over the minutes of a run hits both sides alike. Each side's result is then
    the round with the median rate (latency: median p50), as ``median_of`` picks among repeats."""
    rounds = max(1, int(cfg.get("repeats", 1)))
    outs: dict[str, list[dict[str, Any]]] = {"pgqueue": [], "baseline": []}
    order_log = []
    for r in range(rounds):
        order = ("pgqueue", "baseline") if r % 2 == 0 else ("baseline", "pgqueue")
        order_log.append(list(order))
        for position, name in enumerate(order):
            scfg = dict(make_cfg(name), repeats=1)
            if name == "baseline":
                scfg["baseline"] = {k: baseline[k] for k in ("ref", "sha", "path")}
            idle = wait_idle(wait_idle_seconds) if wait_idle_seconds else None
            label = baseline["label"] if name == "baseline" else name
            say(f"=== {label} (round {r + 1}/{rounds}) ===")
            out = run_driver(name, scfg, timeout, log_dir, venv=BASELINE_VENV if name == "baseline" else None,
                             driver=SYSTEMS["pgqueue"]["driver"],
                             log_name=f"{name}-round{r + 1}" if rounds > 1 else None)
            out.update(round=r + 1, position=position)
            if idle:
                out["idle_wait"] = idle
            outs[name].append(out)
            say(f"=== {label} (round {r + 1}/{rounds}): done in {out.get('elapsed_seconds')}s, "
                f"{len(out.get('errors', []))} error(s)")
    baseline["rounds"] = rounds
    baseline["order"] = order_log
    return {name: merge_rounds(runs) for name, runs in outs.items()}


def merge_rounds(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One system's output from its rounds, shaped as one driver's output: per workload the round with
    the median rate (``rates`` lists every round's, in round order) or, for latency, the median p50, with
    ``p99_ms`` the median of the rounds' p99s (one round's p99 swings far more than its p50; ``p50s_ms``/
    ``p99s_ms`` list every round's). A history workload's latency, measured apart from its drain, is the
    median of the rounds' own (``latency_p50s_ms``/``latency_p99s_ms``), not the latency of the median
    drain's round. ``rounds`` keeps each round's own results."""
    first = runs[0]
    merged: dict[str, Any] = {k: v for k, v in first.items()
                              if k not in ("results", "errors", "round", "position", "idle_wait")}
    merged["loadavg_end"] = runs[-1].get("loadavg_end")
    for key in ("elapsed_seconds", "driver_seconds"):
        merged[key] = round(sum(r.get(key) or 0 for r in runs), 1)
    if first.get("idle_wait"):
        merged["idle_wait"] = first["idle_wait"]
    merged["errors"] = [dict(e, round=r["round"]) for r in runs for e in r.get("errors", [])]
    keys: list[str] = []
    for r in runs:
        keys += [k for k in r.get("results", {}) if k not in keys]
    results: dict[str, Any] = {}
    for key in keys:
        vals = [(r["round"], r["results"][key]) for r in runs if key in r.get("results", {})]
        sample = vals[0][1]
        if isinstance(sample, dict) and "rate" in sample:
            chosen = sorted(vals, key=lambda rv: rv[1].get("rate") or 0)[len(vals) // 2]
            results[key] = {**chosen[1], "rates": [v.get("rate") for _, v in vals], "round": chosen[0]}
            for field in ("latency_p50_ms", "latency_p99_ms"):
                got = [v[field] for _, v in vals if v.get(field) is not None]
                if len(got) > 1:
                    results[key][field] = sorted(got)[len(got) // 2]
                    results[key][field.replace("_ms", "s_ms")] = got
        elif isinstance(sample, dict) and "p50_ms" in sample:
            chosen = sorted(vals, key=lambda rv: rv[1].get("p50_ms") or 0)[len(vals) // 2]
            p99s = [v.get("p99_ms") for _, v in vals]
            results[key] = {**chosen[1], "p50s_ms": [v.get("p50_ms") for _, v in vals], "p99s_ms": p99s,
                            "round": chosen[0]}
            if len(vals) > 1 and None not in p99s:
                results[key]["p99_ms"] = sorted(p99s)[len(p99s) // 2]
        else:
            results[key] = sample
    merged["results"] = results
    merged["rounds"] = [{k: r.get(k) for k in ("round", "position", "results", "errors", "elapsed_seconds",
                                               "loadavg_start", "idle_wait") if k in r} for r in runs]
    return merged


def harness(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(venv_python("harness")), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=DRIVERS, env={**os.environ, "PYTHONPATH": str(DRIVERS)})


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {"cpus": os.cpu_count(), "platform": platform.platform(),
                            "python": platform.python_version(),
                            "loadavg": [round(x, 2) for x in os.getloadavg()]}
    try:
        with open("/proc/meminfo") as fh:
            info["memory_gb"] = round(int(fh.readline().split()[1]) / 2**20, 1)
        with open("/proc/cpuinfo") as fh:
            info["cpu_model"] = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), "")
    except OSError:
        pass
    return info


def cpu_busy(seconds: float = 3.0) -> float:
    """Fraction of all CPUs busy over the next ``seconds`` (from /proc/stat)."""
    def snap() -> tuple[int, int]:
        with open("/proc/stat") as fh:
            vals = [int(x) for x in fh.readline().split()[1:]]
        idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
        return sum(vals), idle
    t0, i0 = snap()
    time.sleep(seconds)
    t1, i1 = snap()
    return 1.0 - (i1 - i0) / max(1, t1 - t0)


def wait_idle(max_wait: float, threshold: float = 0.15) -> dict[str, float]:
    """On a shared machine: wait (up to ``max_wait`` seconds) until other work leaves the CPUs idle."""
    t = time.monotonic()
    busy = cpu_busy()
    while busy > threshold and time.monotonic() - t < max_wait:
        left = max_wait - (time.monotonic() - t)
        say(f"[idle] CPUs {busy:.0%} busy with other work; waiting (up to {left:.0f}s more)")
        time.sleep(5)
        busy = cpu_busy()
    return {"waited_seconds": round(time.monotonic() - t, 1), "cpu_busy_before": round(busy, 3)}


# -- reporting -------------------------------------------------------------------------------------
def _get(results: dict[str, Any], system: str, *path: str) -> Any:
    node: Any = results.get(system, {}).get("results", {})
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


ROWS = [
    # label, path, unit, higher_is_better
    ("Enqueue, one job per transaction", ("enqueue_single", "rate"), "jobs/s", True),
    ("Bulk enqueue, batch API", ("enqueue_bulk", "rate"), "jobs/s", True),
    ("Drain, default config, 1 worker process", ("drain.default.1p", "rate"), "jobs/s", True),
    ("Drain, default config, 2 worker processes", ("drain.default.2p", "rate"), "jobs/s", True),
    ("Drain, best config, 1 worker process", ("drain.best.1p", "rate"), "jobs/s", True),
    ("Drain, best config, 2 worker processes", ("drain.best.2p", "rate"), "jobs/s", True),
    ("Enqueue-to-start latency p50", ("latency", "p50_ms"), "ms", False),
    ("Enqueue-to-start latency p99", ("latency", "p99_ms"), "ms", False),
    ("Worker memory, PSS, default config 1 process", ("drain.default.1p", "peak_pss_mb"), "MB", False),
]


def fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, (int, float)):
        if abs(v) >= 100:
            return f"{v:,.0f}"
        if abs(v) >= 10:
            return f"{v:.1f}"
        return f"{v:.2f}"
    return str(v)


def system_label(report: dict[str, Any], name: str) -> str:
    if name == "baseline":
        return (report.get("baseline") or {}).get("label", "pgqueue (baseline)")
    return SYSTEMS[name]["label"]


def baseline_section(report: dict[str, Any]) -> list[str]:
    """results.md's "pgqueue vs baseline": current / baseline per workload, and per round."""
    res, bl = report["systems"], report.get("baseline") or {}
    label = system_label(report, "baseline")
    rounds = bl.get("rounds", 1)
    cur_rev = (res.get("pgqueue", {}).get("versions") or {}).get("pgqueue", "?")
    out = ["", "## pgqueue vs baseline", "",
           f"This checkout's pgqueue ({cur_rev}) against {label}: `--baseline {bl.get('ref')}`, commit "
           f"`{bl.get('sha')}`, installed from an export of that commit "
           + ("with the same dependency versions as this checkout's venv" if bl.get("same_dependencies")
              else "with the dependency versions pip chose (not pinned to this checkout's venv)")
           + ", run by the same driver on the same workloads."]
    if rounds > 1:
        out.append(f"They ran in {rounds} alternating rounds (" + "; ".join(
            " then ".join("pgqueue" if n == "pgqueue" else label for n in order) for order in bl.get("order", []))
            + "), each measuring every workload once per side on a fresh database; each side's value is its "
              "median round, and *per round* pairs the two measurements of the same round.")
    out += ["", "**current ÷ baseline**: for rates (jobs/s) higher is better, so above 1 means this checkout is "
                "faster; for latency and memory lower is better, so below 1 means this checkout is faster / smaller.",
            ""]
    if report.get("profile") == "smoke":
        out += ["Smoke counts: these ratios measure nothing but that both sides ran.", ""]
    paired = rounds > 1
    out += [f"| Workload | pgqueue | {label} | current ÷ baseline | better |" + (" per round |" if paired else ""),
            "|---|---|---|---|---|" + ("---|" if paired else "")]
    rows = [(lbl, path, unit, higher) for lbl, path, unit, higher in ROWS]
    rows.insert(2, ("Bulk enqueue, prebuilt list", ("enqueue_bulk_list", "rate"), "jobs/s", True))
    hist = sorted((k for k in (res.get("pgqueue", {}).get("results") or {}) if k.startswith("history.")),
                  key=lambda k: int(k.split(".")[1]))
    for key in hist:
        n = int(key.split(".")[1])
        rows.append((f"Drain with {n:,} ended jobs kept, default 1 process", (key, "rate"), "jobs/s", True))
        rows.append((f"Latency p50 with {n:,} ended jobs kept", (key, "latency_p50_ms"), "ms", False))

    def per_round(path: tuple[str, ...]) -> str:
        pairs = []
        cur_rounds = {r["round"]: r for r in res.get("pgqueue", {}).get("rounds", [])}
        for r in res.get("baseline", {}).get("rounds", []):
            c = _get({"x": cur_rounds.get(r["round"], {})}, "x", *path)
            b = _get({"x": r}, "x", *path)
            pairs.append(f"{c / b:.2f}" if c is not None and b else "—")
        return ", ".join(pairs)

    for lbl, path, unit, higher in rows:
        cur, base = _get(res, "pgqueue", *path), _get(res, "baseline", *path)
        ratio = f"{cur / base:.2f}×" if cur is not None and base else "—"
        out.append(f"| {lbl} ({unit}) | {fmt(cur)} | {fmt(base)} | {ratio} | {'higher' if higher else 'lower'} |"
                   + (f" {per_round(path)} |" if paired else ""))
    return out


# pgqueue's async API and async jobs, beside the rows of the async peers they compare with.
ASYNC_ROWS = [
    ("Async enqueue, one job per transaction (AsyncQueue.enqueue)", "async_enqueue_single", "enqueue_single"),
    ("Async bulk enqueue (AsyncQueue.enqueue_many of an async generator)", "async_enqueue_bulk", "enqueue_bulk"),
    ("Drain of async def no-op jobs, default config, 1 worker process", "drain_async.default.1p",
     "drain.default.1p"),
]


def async_section(report: dict[str, Any], names: list[str]) -> list[str]:
    """pgqueue's async rows (jobs/s), with pgqueue's sync figure and the peers' figure for the same workload."""
    res = report["systems"]
    if not any(_get(res, "pgqueue", key, "rate") is not None for _, key, _ in ASYNC_ROWS):
        return []
    peers = [n for n in names if n in ("procrastinate", "pgqueuer")]
    out = ["", "## pgqueue's async API and async jobs (jobs/s)", "",
           "Each pgqueue async figure beside pgqueue's sync figure for the same workload and the async peers' "
           "(procrastinate and pgqueuer are asyncio libraries), with **pgqueue async ÷ that** in brackets. The "
           "async drain runs `async def` no-op jobs in the worker's event-loop process "
           "(`--async-concurrency` 100); the peers drain their own (async) no-op task.", "",
           "| Workload | pgqueue async | pgqueue sync | " + " | ".join(system_label(report, n) for n in peers) + " |",
           "|" + "---|" * (3 + len(peers))]
    for label, key, comparable in ASYNC_ROWS:
        value = _get(res, "pgqueue", key, "rate")
        cells = [fmt(value)]
        for n in ["pgqueue", *peers]:
            other = _get(res, n, comparable, "rate")
            cells.append(f"{fmt(other)}" + (f" ({value / other:.2f}×)" if value is not None and other else ""))
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    return out


def markdown(report: dict[str, Any]) -> str:
    res = report["systems"]
    names = [n for n in SYSTEMS if n in res]  # pgqueue first, then the peers in a fixed order
    if "baseline" in res:  # right after pgqueue
        names.insert(names.index("pgqueue") + 1 if "pgqueue" in names else 0, "baseline")
    cfg = report["config"]
    out = [f"# pgqueue side-by-side benchmark ({report['profile']})", "",
           f"Run {report['started_at']} on {report['machine'].get('cpus')} CPUs "
           f"({report['machine'].get('cpu_model', '')}), {report['machine'].get('memory_gb')} GB RAM; "
           f"took {report['elapsed_seconds']:.0f}s.", "",
           f"Command: `{report['command']}`", "",
           f"Sizes: {cfg['single_jobs']:,} single enqueues, {cfg['bulk_jobs']:,} bulk, "
           f"{cfg['drain_jobs']:,} jobs queued per drain, measured until drained or stopped "
           f"{cfg['drain_max_seconds']:g}s after the workers were spawned (a capped drain's rate counts the "
           f"jobs it completed; marked *), {cfg['latency_samples']} latency samples. Enqueue rates and "
           f"drains that finish are the median of {cfg.get('repeats', 1)} runs (results.json keeps every "
           f"run); a capped drain runs once. Before each timed "
           f"phase: {'VACUUM ANALYZE, then ' if cfg.get('analyze', True) else ''}CHECKPOINT.", "",
           "Each peer cell shows the peer's value and, in brackets, **pgqueue ÷ peer**. For jobs/s above 1 "
           "means pgqueue is faster; for latency and memory (lower is better) above 1 means pgqueue is "
           "slower/bigger.", ""]
    header = "| Workload | " + " | ".join(system_label(report, n) for n in names) + " |"
    out += [header, "|" + "---|" * (len(names) + 1)]
    for label, path, unit, _higher in ROWS:
        base = _get(res, "pgqueue", *path)
        cells = []
        for n in names:
            v = _get(res, n, *path)
            if n == "pgqueue" or v is None:
                cells.append(fmt(v))
            else:
                ratio = f" ({base / v:.2f}×)" if base is not None and v else ""
                cells.append(f"{fmt(v)}{ratio}")
            if path[0].startswith("drain.") and unit == "jobs/s" and _get(res, n, path[0], "capped"):
                cells[-1] = cells[-1].replace(" (", "* (", 1) if " (" in cells[-1] else cells[-1] + "*"
        out.append(f"| {label} ({unit}) | " + " | ".join(cells) + " |")
    out.append("")
    out.append("Worker configurations (\"default\" = as installed, \"best\" = the system's documented "
               "throughput setting):")
    out.append("")
    for n in names:
        if n == "baseline":  # the same driver, so the same configurations as pgqueue
            continue
        for cname, desc in (res[n].get("drain_configs") or {}).items():
            out.append(f"- {system_label(report, n)}, {cname}: {desc}")
    listed = (res.get("pgqueue", {}).get("results", {}) or {}).get("enqueue_bulk_list", {}).get("rate")
    if listed:
        out += ["", f"pgqueue's bulk figure streams a generator of `prepare_data` items through `enqueue_many`; "
                    f"the same jobs as one prebuilt list: {fmt(listed)} jobs/s."]
    out += async_section(report, names)
    if "baseline" in res:
        out += baseline_section(report)
    hist = {k: v for k, v in (res.get("pgqueue", {}).get("results", {}) or {}).items() if k.startswith("history.")}
    if hist:
        out += ["", "## pgqueue: drain rate and latency with ended jobs kept in the table", "",
                "| Ended jobs in pgqueue.jobs (1 in 10 failed) | Drain jobs/s (1 process, default) | vs empty table | "
                "Latency p50 / p99 (ms) | Worker peak RSS (MB) | Worker peak PSS (MB) | Table size (MB) |",
                "|---|---|---|---|---|---|---|"]
        empty = hist.get("history.0", {}).get("rate")
        for key in sorted(hist, key=lambda k: int(k.split(".")[1])):
            h = hist[key]
            rel = f"{h['rate'] / empty:.2f}×" if empty else "—"
            out.append(f"| {h['history']:,} | {fmt(h['rate'])} | {rel} | {fmt(h.get('latency_p50_ms'))} / "
                       f"{fmt(h.get('latency_p99_ms'))} | {fmt(h['peak_rss_mb'])} | "
                       f"{fmt(h['peak_pss_mb'])} | {fmt(h['table_size_mb'])} |")
    loads = ", ".join(f"{system_label(report, n)} {res[n]['loadavg_start'][0]:.1f}"
                      + (f" (CPUs {res[n]['idle_wait']['cpu_busy_before']:.0%} busy just before)"
                         if res[n].get("idle_wait") else "")
                      for n in names if res[n].get("loadavg_start"))
    if loads:
        out += ["", f"1-minute load average when each system started ({report['machine'].get('cpus')} CPUs; it "
                    f"includes the previous system's own work for about a minute): {loads}."]
    out += ["", "## Versions", ""]
    for n in names:
        vers = ", ".join(f"{k} {v}" for k, v in (res[n].get("versions") or {}).items())
        out.append(f"- {system_label(report, n)}: {vers} (Python {res[n].get('python', '?')})")
    out += ["", "## PostgreSQL settings", "", "| Setting | Value |", "|---|---|"]
    for k, v in (report.get("postgres_settings") or {}).items():
        out.append(f"| {k} | {v} |")
    errors = [(n, e) for n in names for e in res[n].get("errors", [])]
    if errors:
        out += ["", "## Errors", ""]
        out += [f"- {n} / {e['workload']}: {e['error'].splitlines()[0] if e['error'] else ''}" for n, e in errors]
    return "\n".join(out) + "\n"


# -- main ------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--systems", default=",".join(SYSTEMS),
                   help=f"comma-separated subset of {', '.join(SYSTEMS)} (default: all, in that order)")
    p.add_argument("--smoke", action="store_true",
                   help="tiny counts for CI: every workload of every system runs once; exit 1 on any error")
    p.add_argument("--jobs", type=int, help="jobs per drain (full: 20000)")
    p.add_argument("--bulk-jobs", type=int, help="jobs in the bulk enqueue (full: 50000)")
    p.add_argument("--single-jobs", type=int, help="jobs enqueued one by one (full: 5000)")
    p.add_argument("--drain-seconds", type=float,
                   help="stop a drain (SIGTERM) this many seconds after its workers were spawned; slow "
                        "systems are measured on the part they drained (full: 30)")
    p.add_argument("--latency-samples", type=int, help="sequential latency samples (full: 200)")
    p.add_argument("--history", help="pgqueue history sizes, comma-separated (full: 0,100000,1000000)")
    p.add_argument("--out", type=Path, help="output directory (default: benchmarks/results/full, or "
                                            "benchmarks/results/smoke with --smoke)")
    p.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres",
                   help="admin DSN; the run creates and drops databases named bench_* through it")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/13",
                   help="Redis URL for RQ; the run deletes rq:* keys in that database (default db 13)")
    p.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS",
                   help="before each system, wait up to SECONDS for the CPUs to be idle (<15%% busy over 3 s): "
                        "for shared machines where tests or other benchmarks come and go")
    p.add_argument("--no-analyze", action="store_true",
                   help="before timed phases run CHECKPOINT only, not VACUUM ANALYZE (tables without "
                        "statistics, as right after a TRUNCATE on a server without autovacuum)")
    p.add_argument("--baseline", metavar="REF",
                   help="also run pgqueue at REF (a git ref or commit of this repository), labelled "
                        "pgqueue@<short sha>, with the same driver: exported to benchmarks/.baseline/, in a venv "
                        "of its own with the current pgqueue venv's dependency versions; it alternates with this "
                        "checkout's pgqueue round by round (--systems must include pgqueue), and results.md "
                        "gains a 'pgqueue vs baseline' section of current / baseline ratios")
    p.add_argument("--rebuild-venvs", action="store_true", help="rebuild the venvs even if up to date")
    p.add_argument("--no-chart", action="store_true", help="skip the PNG chart")
    p.add_argument("--keep-databases", action="store_true", help="do not drop the bench_* databases (debugging)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t_start = time.monotonic()
    started_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    machine = machine_info()  # load average before anything of ours runs
    profile = "smoke" if args.smoke else "full"
    cfg = dict(PROFILES[profile])
    for key, value in (("drain_jobs", args.jobs), ("bulk_jobs", args.bulk_jobs), ("single_jobs", args.single_jobs),
                       ("drain_max_seconds", args.drain_seconds), ("latency_samples", args.latency_samples)):
        if value is not None:
            if value < 1:
                raise SystemExit(f"--{key.replace('_', '-')} must be >= 1")
            cfg[key] = value
    cfg["analyze"] = not args.no_analyze
    if args.history is not None:
        cfg["history_sizes"] = [int(x) for x in args.history.split(",") if x.strip()]
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown or not systems:
        raise SystemExit(f"unknown system(s) {unknown}; choose from {', '.join(SYSTEMS)}")
    baseline = None
    if args.baseline is not None:
        if "pgqueue" not in systems:
            raise SystemExit("--baseline compares pgqueue at REF with this checkout's: include pgqueue in --systems")
        baseline = resolve_baseline(args.baseline)
        say(f"[baseline] {args.baseline} is {baseline['sha']} ({baseline['label']})")
    out_dir = args.out or BENCH / "results" / profile
    log_dir = out_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    for old in log_dir.glob("*.log"):
        old.unlink()

    # 1. venvs, built in parallel (pip is mostly network and unpacking)
    t_venv = time.monotonic()
    wanted = {"harness": HARNESS, **{s: SYSTEMS[s] for s in systems}}
    slow_first = ["harness", "pgqueuer", "pgqueue", "procrastinate", "rq", "raw"]  # shortest critical path
    wanted = dict(sorted(wanted.items(), key=lambda kv: slow_first.index(kv[0]) if kv[0] in slow_first else 99))
    venv_errors = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        futures = {pool.submit(ensure_venv, n, spec["requirements"], spec.get("stamp_files", []),
                               args.rebuild_venvs): n for n, spec in wanted.items()}
        if baseline:  # submitted last: it waits for the pgqueue venv, whose versions it copies
            pgqueue_future = next(f for f, n in futures.items() if n == "pgqueue")
            futures[pool.submit(ensure_baseline, baseline, pgqueue_future, args.rebuild_venvs)] = "baseline"
        for fut in concurrent.futures.as_completed(futures):
            try:
                fut.result()
            except Exception as exc:
                venv_errors[futures[fut]] = str(exc)
                say(f"[venv] {futures[fut]}: {exc}")
    venv_seconds = time.monotonic() - t_venv
    say(f"[venv] all venvs ready after {venv_seconds:.1f}s")

    # 2. environment
    pg_settings: dict[str, Any] = {}
    if "harness" not in venv_errors:
        proc = harness(["pginfo.py", "settings", args.pg])
        if proc.returncode == 0:
            pg_settings = json.loads(proc.stdout)
        else:
            say(f"[pg] could not read settings: {proc.stderr.strip()[-500:]}")

    # 3. systems, one after another
    run_id = f"{os.getpid()}"
    results: dict[str, Any] = {}

    def system_cfg(name: str) -> dict[str, Any]:
        return dict(cfg, system=name, admin_dsn=args.pg, redis_url=args.redis, log_dir=str(log_dir),
                    dbname=f"bench_{name}_{run_id}", keep_databases=args.keep_databases, smoke=args.smoke)

    for name in systems:
        if name in venv_errors:
            results[name] = {"system": name, "results": {}, "errors": [
                {"workload": "venv", "error": venv_errors[name], "traceback": ""}]}
            continue
        timeout = 600 if args.smoke else 3600
        if name == "pgqueue" and baseline and "baseline" not in venv_errors:
            results.update(run_with_baseline(cfg, baseline, system_cfg, timeout, log_dir, args.wait_idle))
            continue
        scfg = system_cfg(name)
        idle = wait_idle(args.wait_idle) if args.wait_idle else None
        say(f"=== {name} ===")
        results[name] = run_driver(name, scfg, timeout, log_dir)
        if idle:
            results[name]["idle_wait"] = idle
        n_err = len(results[name].get("errors", []))
        say(f"=== {name}: done in {results[name].get('elapsed_seconds')}s, {n_err} error(s)")
        if name == "pgqueue" and baseline:  # its venv failed: pgqueue ran alone
            results["baseline"] = {"system": "baseline", "results": {}, "errors": [
                {"workload": "venv", "error": venv_errors["baseline"], "traceback": ""}]}

    # 4. leftovers (a driver killed by its timeout cannot drop its own database)
    if not args.keep_databases and "harness" not in venv_errors:
        dbs = [f"bench_{n}_{run_id}" for n in [*systems, *(["baseline"] if baseline else [])] if n != "rq"]
        proc = harness(["pginfo.py", "drop", args.pg, *dbs])
        if proc.returncode != 0:
            say(f"[pg] dropping leftover databases failed: {proc.stderr.strip()[-500:]}")

    report = {
        "profile": profile, "started_at": started_at,
        "command": " ".join(["python3", "benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])]),
        "elapsed_seconds": round(time.monotonic() - t_start, 1), "venv_seconds": round(venv_seconds, 1),
        "machine": machine, "postgres_settings": pg_settings,
        "config": {**cfg, "systems": systems, "redis": args.redis},
        "systems": results,
    }
    if baseline:
        report["baseline"] = baseline
    (out_dir / "results.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out_dir / "results.md").write_text(markdown(report))
    say(f"[out] {out_dir / 'results.json'}\n[out] {out_dir / 'results.md'}")
    if not args.no_chart and "harness" not in venv_errors:
        proc = harness(["chart.py", str(out_dir / "results.json"), str(out_dir / "results.png")])
        if proc.returncode == 0:
            say(f"[out] {out_dir / 'results.png'}")
        else:
            say(f"[chart] failed: {proc.stderr.strip()[-1500:]}")
            results.setdefault("_chart", {"errors": [{"workload": "chart", "error": proc.stderr[-500:]}]})
    print((out_dir / "results.md").read_text())
    failures = [(n, e["workload"], e["error"].splitlines()[0] if e.get("error") else "")
                for n, r in results.items() for e in r.get("errors", [])]
    say(f"[done] {len(systems) + (1 if baseline else 0)} system(s) in {time.monotonic() - t_start:.0f}s "
        f"(venvs {venv_seconds:.0f}s), {len(failures)} error(s)")
    for n, w, e in failures:
        say(f"  FAILED {n} / {w}: {e}")
    return 1 if failures or venv_errors else 0


if __name__ == "__main__":
    sys.exit(main())
