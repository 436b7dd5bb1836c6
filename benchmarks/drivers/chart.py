"""Harness helper (runs in benchmarks/.venvs/harness, which has matplotlib): results.json -> PNG.

    python chart.py results.json results.png

Four panels: enqueue rates, drain rates (default/best x 1/2 processes), latency p50/p99, and pgqueue's
drain rate against the finished history kept in its table. Throughput axes are logarithmic because
the systems span two orders of magnitude (RQ's fork-per-job worker vs batched SQL). A run with
``--baseline REF`` adds pgqueue at REF (system "baseline", labelled pgqueue@<short sha>) in a lighter red,
beside pgqueue in every panel.
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

LABELS = {"pgqueue": "pgqueue", "baseline": "pgqueue (baseline)", "procrastinate": "procrastinate",
          "pgqueuer": "pgqueuer", "rq": "RQ", "raw": "raw SQL"}
COLORS = {"pgqueue": "#d62728", "baseline": "#ff9896", "procrastinate": "#1f77b4", "pgqueuer": "#2ca02c",
          "rq": "#9467bd", "raw": "#7f7f7f"}


def get(report, system, *path):
    node = report["systems"].get(system, {}).get("results", {})
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def grouped(ax, report, systems, groups, title, ylabel, log=False, fmt="{:,.0f}"):
    width = 0.8 / max(1, len(systems))
    plotted = []
    for s_i, system in enumerate(systems):
        xs, ys = [], []
        for g_i, (_, path) in enumerate(groups):
            v = get(report, system, *path)
            if v is not None and v > 0:
                xs.append(g_i + (s_i - (len(systems) - 1) / 2) * width)
                ys.append(v)
        plotted += ys
        bars = ax.bar(xs, ys, width, label=LABELS.get(system, system), color=COLORS.get(system))
        for bar, y in zip(bars, ys, strict=True):
            ax.annotate(fmt.format(y), (bar.get_x() + bar.get_width() / 2, y), ha="center", va="bottom",
                        fontsize=6, rotation=90, xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([g[0] for g in groups], fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    if not plotted:
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", color="#888888")
    elif log:
        ax.set_yscale("log")
        plain = FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}")
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    ax.margins(y=0.25)
    ax.grid(axis="y", alpha=0.3)


def main(src: str, dst: str) -> None:
    with open(src) as fh:
        report = json.load(fh)
    if report.get("baseline", {}).get("label"):
        LABELS["baseline"] = report["baseline"]["label"]
    systems = [s for s in LABELS if s in report["systems"]]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    grouped(axes[0][0], report, systems,
            [("one per transaction", ("enqueue_single", "rate")), ("bulk (batch API)", ("enqueue_bulk", "rate"))],
            "Enqueue (jobs/s, higher is better)", "jobs/s", log=True)
    grouped(axes[0][1], report, systems,
            [("default, 1 proc", ("drain.default.1p", "rate")), ("default, 2 procs", ("drain.default.2p", "rate")),
             ("best, 1 proc", ("drain.best.1p", "rate")), ("best, 2 procs", ("drain.best.2p", "rate"))],
            "Drain a queued backlog (jobs/s, higher is better)", "jobs/s", log=True)
    grouped(axes[1][0], report, systems,
            [("p50", ("latency", "p50_ms")), ("p99", ("latency", "p99_ms"))],
            "Enqueue-to-start latency, idle worker (ms, lower is better)", "ms", log=False, fmt="{:.1f}")
    ax = axes[1][1]
    hist = {int(k.split(".")[1]): v for k, v in get(report, "pgqueue").items() if k.startswith("history.")} \
        if get(report, "pgqueue") else {}
    base_hist = any(k.startswith("history.") for k in get(report, "baseline") or {})
    if hist and base_hist:  # pgqueue and its baseline side by side, per history size
        sizes = sorted(hist)
        grouped(ax, report, ["pgqueue", "baseline"], [(f"{s:,}", (f"history.{s}", "rate")) for s in sizes],
                "", "jobs/s")
        ax.set_xlabel("finished jobs kept in pgqueue.jobs", fontsize=8)
    elif hist:
        sizes = sorted(hist)
        labels = [f"{s:,}" for s in sizes]
        rates = [hist[s]["rate"] for s in sizes]
        bars = ax.bar(labels, rates, color=COLORS["pgqueue"], width=0.5)
        for bar, h in zip(bars, [hist[s] for s in sizes], strict=True):
            ax.annotate(f"{h['rate']:,.0f} jobs/s\nPSS {h['peak_pss_mb']:.0f} MB",
                        (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom",
                        fontsize=7, xytext=(0, 2), textcoords="offset points")
        ax.set_xlabel("finished jobs kept in pgqueue.jobs", fontsize=8)
        ax.margins(y=0.25)
        ax.grid(axis="y", alpha=0.3)
        ax.tick_params(labelsize=7)
    ax.set_title("pgqueue drain (default, 1 proc) vs history size", fontsize=10)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(systems), fontsize=9, frameon=False)
    m = report.get("machine", {})
    fig.text(0.5, 0.005, f"{report['profile']} run {report['started_at']}, {m.get('cpus')} CPUs, "
             f"PostgreSQL {report.get('postgres_settings', {}).get('server_version', '?').split()[0]}, "
             f"drain {report['config']['drain_jobs']:,} jobs; see results.md for ratios and settings",
             ha="center", fontsize=7, color="#555555")
    fig.tight_layout(rect=(0, 0.02, 1, 0.95))
    fig.savefig(dst, dpi=80)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
