"""Shared, stdlib-only helpers for the benchmark drivers.

Every driver runs in its own system's virtualenv, so nothing here may import a third-party package.
A driver reads its configuration (``--config JSON``), runs the workloads, logs progress to stderr and
prints exactly one JSON line on stdout at the end (``emit``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PAGE = os.sysconf("SC_PAGE_SIZE")
_T0 = time.monotonic()


# -- configuration and output ----------------------------------------------------------------------
def load_config() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True, help="JSON object written by benchmarks/run.py")
    return json.loads(parser.parse_args().config)


def log(msg: str) -> None:
    print(f"[{time.monotonic() - _T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def emit(payload: dict[str, Any]) -> None:
    """The driver's one line of stdout: everything the orchestrator records."""
    sys.stdout.write(json.dumps(payload, default=str) + "\n")
    sys.stdout.flush()


class Recorder:
    """Runs workloads one after another; a failing workload is recorded and the next one still runs."""

    def __init__(self, system: str) -> None:
        self.system = system
        self.results: dict[str, Any] = {}
        self.errors: list[dict[str, str]] = []

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        log(f"{self.system}: {name} ...")
        try:
            value = fn()
        except Exception as exc:  # recorded, reported, and fatal for --smoke in run.py
            tb = traceback.format_exc()
            log(f"{self.system}: {name} FAILED: {type(exc).__name__}: {exc}\n{tb}")
            self.errors.append({"workload": name, "error": f"{type(exc).__name__}: {exc}", "traceback": tb})
            return None
        self.results[name] = value
        log(f"{self.system}: {name} -> {short(value)}")
        return value


def short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) < 300 else text[:297] + "..."


# -- measuring -------------------------------------------------------------------------------------
def rate(jobs: int, seconds: float) -> dict[str, float]:
    return {"jobs": jobs, "seconds": round(seconds, 4), "rate": round(jobs / seconds, 1) if seconds > 0 else None}


def percentile(values: Sequence[float], p: float) -> float:
    """Linear-interpolated percentile (p in 0..100), as numpy's default."""
    data = sorted(values)
    if not data:
        raise ValueError("no samples")
    k = (len(data) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def latency_summary(samples_ms: list[float]) -> dict[str, Any]:
    return {
        "samples": len(samples_ms),
        "p50_ms": round(percentile(samples_ms, 50), 3),
        "p90_ms": round(percentile(samples_ms, 90), 3),
        "p99_ms": round(percentile(samples_ms, 99), 3),
        "min_ms": round(min(samples_ms), 3),
        "max_ms": round(max(samples_ms), 3),
        "mean_ms": round(sum(samples_ms) / len(samples_ms), 3),
    }


def wait_until(pred: Callable[[], Any], timeout: float, interval: float = 0.005, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# -- processes and memory --------------------------------------------------------------------------
def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                kids.extend(int(x) for x in fh.read().split())
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return kids


def process_tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(_children(p))
    return out


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * PAGE
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0


def _pss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def tree_memory(pids: Sequence[int]) -> tuple[int, int, int]:
    """(summed RSS, summed PSS, process count) of the given processes and all their descendants.
    RSS double-counts pages a forked child shares with its parent; PSS splits them fairly."""
    rss = pss = n = 0
    for root in pids:
        for p in process_tree(root):
            rss += _rss(p)
            pss += _pss(p)
            n += 1
    return rss, pss, n


def spawn(cmd: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(log_path, "ab")
    fh.write(f"\n$ {' '.join(cmd)}\n".encode())
    fh.flush()
    # Own session: stopping it can signal the whole group (forked work horses included).
    return subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


def stop(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> int | None:
    """SIGTERM (a warm shutdown in every system here), then SIGKILL to the group if it hangs."""
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(5)
    return proc.returncode


def worker_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def venv_bin(name: str) -> str:
    """A console script of the running venv (the driver runs with that venv's python)."""
    return str(Path(sys.executable).parent / name)


def run_drain(cmds: list[list[str]], *, env: dict[str, str], window: Callable[[], tuple[int, float, float]],
              total: int, log_path: Path, max_seconds: float, timeout: float, sample: float = 0.05
              ) -> dict[str, Any]:
    """Start the worker processes in ``cmds`` (burst mode) on a queue holding ``total`` jobs and wait
    until they have all exited; a drain still running ``max_seconds`` after the spawn is stopped with
    SIGTERM (a warm shutdown) and measured on the part it did.

    Nothing queries the system while it drains (only /proc is sampled, for memory). Afterwards
    ``window()`` reads the system's own records: how many jobs it completed, when the first of them
    started and when the last one ended. ``rate`` is completed jobs over that window: the steady rate,
    without interpreter start-up and imports, which differ a lot between systems and say nothing about
    the queue. ``wall_rate`` (complete drains only) is ``total`` over spawn-to-exit, start-up included.
    """
    t_spawn = time.monotonic()
    procs = [spawn(cmd, env, log_path) for cmd in cmds]
    peak_rss = peak_pss = 0
    capped = False
    try:
        while any(p.poll() is None for p in procs):
            rss, pss, _ = tree_memory([p.pid for p in procs])
            peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
            elapsed = time.monotonic() - t_spawn
            if not capped and elapsed > max_seconds:
                capped = True  # time is up: warm shutdown; the workers must still exit cleanly
                for p in procs:
                    if p.poll() is None:
                        p.send_signal(signal.SIGTERM)
            if elapsed > (max_seconds + 60 if capped else timeout):
                raise TimeoutError(f"workers still running after {elapsed:.0f}s"
                                   f"{' (told to stop)' if capped else ''}; log tail:\n{tail(log_path)}")
            time.sleep(sample)
        t_exit = time.monotonic()
        codes = [p.returncode for p in procs]
        if any(c not in (0, -signal.SIGTERM) if capped else c for c in codes):
            raise RuntimeError(f"workers exited with codes {codes}; log tail:\n{tail(log_path)}")
    finally:
        for p in procs:
            stop(p, 5)
    done, first_start, last_end = window()
    if not capped and done != total:
        raise RuntimeError(f"burst workers exited with {done}/{total} jobs done; log tail:\n{tail(log_path)}")
    if done == 0:
        raise RuntimeError(f"no job was completed; log tail:\n{tail(log_path)}")
    span = last_end - first_start
    wall = t_exit - t_spawn
    return {
        "jobs": done,
        "queued": total,
        "capped": capped,
        "processes": len(cmds),
        "rate": round(done / span, 1) if span > 0 else None,
        "wall_rate": None if capped else round(total / wall, 1),
        "window_seconds": round(span, 3),
        "wall_seconds": round(wall, 3),
        "peak_rss_mb": round(peak_rss / 2**20, 1),
        "peak_pss_mb": round(peak_pss / 2**20, 1),
    }


class LongWorker:
    """A long-running (non-burst) worker for latency measurements, stopped with SIGTERM."""

    def __init__(self, cmd: list[str], env: dict[str, str], log_path: Path) -> None:
        self.cmd, self.env, self.log_path = cmd, env, log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LongWorker:
        self.proc = spawn(self.cmd, self.env, self.log_path)
        return self

    def check(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"worker exited with code {self.proc.returncode}; log tail:\n{tail(self.log_path)}")

    def memory(self) -> dict[str, float]:
        assert self.proc is not None
        rss, pss, n = tree_memory([self.proc.pid])
        return {"rss_mb": round(rss / 2**20, 1), "pss_mb": round(pss / 2**20, 1), "processes": n}

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            stop(self.proc)


def measure_latency(*, enqueue: Callable[[int], Any], started_at: Callable[[Any], float | None],
                    worker: LongWorker, samples: int, warmup: int = 3, gap: float = 0.02,
                    timeout: float = 30.0) -> dict[str, Any]:
    """Enqueue-to-start latency on an idle worker, one job at a time.

    For each sample: note the wall clock, enqueue one job, then wait until the system has recorded the
    job as done and read the time at which *the system itself* recorded its start (the database clock
    for the PostgreSQL systems, the worker's clock for RQ; one host, one clock). Waiting for the job to
    finish, plus a short gap, makes sure the worker is idle again before the next sample.
    ``started_at(handle)`` returns that start time (epoch seconds) once the job is finished, else None.
    """
    out: list[float] = []
    for k in range(warmup + samples):
        worker.check()
        t0 = time.time()
        handle = enqueue(k)
        start = wait_until(lambda h=handle: started_at(h), timeout, interval=0.002, what=f"latency job {k}")
        if k >= warmup:
            out.append((start - t0) * 1000.0)
        time.sleep(gap)
    summary = latency_summary(out)
    summary["memory_idle"] = worker.memory()
    return summary
