"""The bench's results: rows with their budgets, the printed table, docs/benchmarks.md, the chart."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal


@dataclass(frozen=True)
class Budget:
    """A target from DESIGN.md: on the candidate's value, or on its ratio to the baseline."""

    on: Literal["value", "ratio"]
    op: Literal[">=", "<=", "<"]
    limit: float

    def met(self, row: Row) -> bool:
        x = row.ratio if self.on == "ratio" else row.candidate
        if x is None:
            return False
        if self.op == ">=":
            return x >= self.limit
        return x <= self.limit if self.op == "<=" else x < self.limit

    def text(self, unit: str) -> str:
        limit = f"{self.limit:g}x" if self.on == "ratio" else f"{self.limit:,g} {unit}"
        return f"{self.op} {limit}"


@dataclass
class Row:
    """One line of the table; ``holds`` is a further condition of the budget (zero oversell)."""

    scenario: str
    metric: str
    candidate: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    budget: Budget | None = None
    holds: bool = True
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return self.candidate / self.baseline if self.baseline else None

    @property
    def met(self) -> bool | None:
        return None if self.budget is None else self.budget.met(self) and self.holds


@dataclass(frozen=True)
class Latency:
    """Latency percentiles (ms) of one kind of request, for the chart."""

    label: str
    p50: float
    p90: float
    p99: float


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    latencies: list[Latency] = field(default_factory=list)


def _number(x: float | None) -> str:
    if x is None:
        return "-"
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}" if x < 10 else f"{x:.1f}"


def table(rows: list[Row]) -> list[list[str]]:
    """Header and cells of the results table."""
    head = ["scenario", "metric", "candidate", "baseline", "ratio", "budget", "met"]
    body = [
        [
            row.scenario,
            f"{row.metric} ({row.unit})",
            _number(row.candidate),
            f"{_number(row.baseline)} {row.baseline_name}".strip(),
            f"{row.ratio:.2f}x" if row.ratio is not None else "-",
            row.budget.text(row.unit) if row.budget else "-",
            {None: "-", True: "met", False: "NOT MET"}[row.met],
        ]
        for row in rows
    ]
    return [head, *body]


def summary_line(rows: list[Row]) -> str:
    budgeted = [row for row in rows if row.met is not None]
    return f"bench: {sum(1 for row in budgeted if row.met)}/{len(budgeted)} budgets met"


def render_text(rows: list[Row]) -> str:
    cells = table(rows)
    widths = [max(len(line[i]) for line in cells) for i in range(len(cells[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"  {row.scenario}: {row.note}" for row in rows if row.note]
    return "\n".join([*lines, "", "notes:", *notes])


def machine() -> str:
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0))
    return f"{cores} cores ({cpu}), {platform.system()} {platform.release()}, Python {platform.python_version()}"


# Sections other tools write into docs/benchmarks.md (after the bench's part); a bench run keeps them.
CARRIED_SECTIONS = ("## Lua cost profile", "## Stream trim cost")


def carried(old: str) -> str:
    """The tail of an existing docs/benchmarks.md from its first carried section ('' if none)."""
    starts = [old.find(f"\n{title}\n") for title in CARRIED_SECTIONS]
    found = [i for i in starts if i >= 0]
    return old[min(found) + 1 :] if found else ""


def with_section(old: str, title: str, body: str) -> str:
    """``old`` with section ``title`` replaced by (or appended as) ``body`` (its text, title line
    included); the section runs to the next ``## `` heading or the end."""
    head = f"\n{title}\n"
    start = old.find(head)
    if start < 0:
        return old.rstrip("\n") + "\n\n" + body.rstrip("\n") + "\n"
    end = old.find("\n## ", start + len(head))
    tail = old[end:] if end >= 0 else ""
    return old[: start + 1] + body.rstrip("\n") + "\n" + tail


def render_markdown(results: Results, command: str, setup: str, when: str, chart: str) -> str:
    cells = table(results.rows)
    md = [
        "| " + " | ".join(cells[0]) + " |",
        "|" + "---|" * len(cells[0]),
        *("| " + " | ".join(line) + " |" for line in cells[1:]),
    ]
    notes = [f"- **{row.scenario}**: {row.note}" for row in results.rows if row.note]
    return "\n".join(
        [
            "# Benchmarks",
            "",
            "Written by `./scripts/bench` (do not edit by hand: the next run rewrites it; the",
            "method, the scenarios and what limits each figure are in [performance.md](performance.md)).",
            "",
            f"- Command: `{command}`",
            f"- Run: {when}",
            f"- Machine: {machine()}",
            f"- Set-up: {setup}",
            "",
            *md,
            "",
            f"`{summary_line(results.rows)}`",
            "",
            *notes,
            "",
            f"![latency percentiles]({chart})",
            "",
        ]
    )


def write_chart(latencies: list[Latency], path: Path) -> None:
    """A bar chart of p50/p90/p99 per kind of request (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.8), dpi=110)
    width = 0.27
    xs = range(len(latencies))
    for i, (name, values) in enumerate(
        [
            ("p50", [x.p50 for x in latencies]),
            ("p90", [x.p90 for x in latencies]),
            ("p99", [x.p99 for x in latencies]),
        ]
    ):
        bars = ax.bar([x + (i - 1) * width for x in xs], values, width, label=name)
        ax.bar_label(bars, fmt="%.3g", fontsize=6, padding=1)
    ax.set_xticks(list(xs), [x.label for x in latencies], rotation=20, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_title("omnistock ./scripts/bench: latency percentiles (median of rounds)")
    ax.legend()
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
