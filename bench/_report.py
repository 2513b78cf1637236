"""Format one run's results: the comparison table, the targets, and the JSON document."""

from __future__ import annotations

import os
import sys
from dataclasses import asdict
from typing import Any

from bench._model import (
    HOW,
    SIDES,
    STORES,
    Cell,
    Mode,
    Results,
    Spec,
    headline,
    per_task_us,
    ratio,
)
from bench._targets import Verdict, per_task


def fmt_seconds(value: float) -> str:
    """Format a duration with a unit that keeps 3 significant digits."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value * 1e9:.3g} ns"


def fmt_value(spec: Spec, cell: Cell | None) -> str:
    """Format one side's headline figure, or why there is none."""
    if cell is None:
        return "—"
    value = headline(spec, cell)
    if value is None:
        return cell.status
    return f"{value / 1024:.3g} KB/atom" if spec.kind == "memory" else fmt_seconds(value)


def fmt_us(value: float | None) -> str:
    """Format a per-task overhead in µs."""
    return "" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def fmt_ratio(spec: Spec, found: float | None) -> str:
    """Format TaskFlow / tideflow: "1,234x faster" (or "smaller" for memory)."""
    if found is None:
        return ""
    word = "smaller" if spec.kind == "memory" else "faster"
    return f"{found:,.0f}x {word}" if found >= 10 else f"{found:.2f}x {word}"


COLUMNS = "workload|N|tideflow|TaskFlow|tide µs/task|TF µs/task|TaskFlow/tideflow|tide build|procs"


def table_row(spec: Spec, n: int, cells: dict[str, Cell]) -> list[str]:
    """Build one row: both sides' figures, per-task overheads, ratio, build time, processes."""
    tide, tf = cells.get("tideflow"), cells.get("taskflow")
    built = tide.median("build") if tide is not None else None
    return [
        spec.label,
        "-" if spec.name == "import" else f"{n:,}",
        fmt_value(spec, tide),
        fmt_value(spec, tf),
        *(fmt_us(per_task_us(spec, cell, n)) for cell in (tide, tf)),
        fmt_ratio(spec, ratio(spec, cells)),
        "" if built is None else fmt_seconds(built),
        "/".join(str(len(cell.samples)) if cell else "-" for cell in (tide, tf)),
    ]


#: Column headers of the "calls" table: N counts values or nodes, not tasks.
CALL_COLUMNS = "call|N|tideflow|TaskFlow|tide µs/item|TF µs/item|TaskFlow/tideflow|setup|procs"


def table_rows(specs: list[Spec], results: Results, group: str = "engine") -> list[list[str]]:
    """Build one group's table: a header, then one row per workload and N."""
    rows = [(CALL_COLUMNS if group == "calls" else COLUMNS).split("|")]
    for spec in specs:
        if spec.group == group:
            rows += [table_row(spec, n, cells) for n, cells in results[spec.name].items()]
    return rows


#: Column headers of the executors table: each side against its own baseline.
EXECUTOR_COLUMNS = "run|N|tideflow|its baseline|x|TaskFlow|TF x|TaskFlow/tideflow|load|procs"


def fmt_x(spec: Spec, cell: Cell | None) -> str:
    """Format a run against its baseline: "1.04x" (of it), or "1.85x faster" than it."""
    x = cell.median("x") if cell is not None and cell.status == "ok" else None
    if x is None:
        return ""
    return f"{x:.2f}x faster" if spec.faster else f"{x:.3f}x"


def executor_rows(specs: list[Spec], results: Results) -> list[list[str]]:
    """Build the executors table: each side's time, tideflow's baseline, both figures
    (run / baseline, or baseline / run for a speedup), the 1-minute load average."""
    rows = [EXECUTOR_COLUMNS.split("|")]
    for spec in specs:
        if spec.group != "executors":
            continue
        for n, cells in results[spec.name].items():
            tide, tf = cells.get("tideflow"), cells.get("taskflow")
            base = tide.median("baseline") if tide is not None else None
            load = tide.median("load1") if tide is not None else None
            rows.append(
                [
                    spec.label,
                    f"{n:,}",
                    fmt_value(spec, tide),
                    "" if base is None else f"{spec.baseline} {fmt_seconds(base)}",
                    fmt_x(spec, tide),
                    fmt_value(spec, tf),
                    fmt_x(spec, tf),
                    fmt_ratio(spec, ratio(spec, cells)),
                    "" if load is None else f"{load:.1f}",
                    "/".join(str(len(cell.samples)) if cell else "-" for cell in (tide, tf)),
                ]
            )
    return rows


#: Column headers of the durable table: one row per (workload, side, N).
DURABLE_COLUMNS = "side|store|N|total|µs/task|/ tideflow WAL|procs"
SIDE_LABELS = {"tideflow": "tideflow", "taskflow": "TaskFlow", "dbos": "DBOS"}


def durable_rows(specs: list[Spec], results: Results) -> list[list[str]]:
    """Build the durable table: each side's store, its per-task cost, and that cost
    over tideflow's in WAL mode (the headline row, at its largest N)."""
    rows = [DURABLE_COLUMNS.split("|")]
    wal = per_task(results, "durable_linear", "tideflow")
    for side in SIDES:
        for spec in specs:
            if spec.group != "durable":
                continue
            for n, cells in results[spec.name].items():
                cell = cells.get(side)
                if cell is None:
                    continue
                us = per_task_us(spec, cell, n)
                relative = "" if us is None or wal is None else f"{us / wal[1]:,.3g}x"
                rows.append(
                    [
                        SIDE_LABELS[side],
                        STORES.get((spec.name, side), spec.label),
                        f"{n:,}",
                        fmt_value(spec, cell),
                        fmt_us(us),
                        relative,
                        str(len(cell.samples)),
                    ]
                )
    return rows


def render(rows: list[list[str]], left: int = 2) -> str:
    """Render rows as an aligned text table (the first ``left`` columns left-aligned)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            c.ljust(w) if i < left else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def notes(results: Results) -> list[str]:
    """Collect why cells have no figure (n/a, errors), once per distinct reason."""
    seen: dict[str, None] = {}
    for name, per_n in results.items():
        for n, cells in per_n.items():
            for side, cell in cells.items():
                if cell.note and cell.status != "missing":
                    seen[f"{name} N={n:,} {side}: {cell.status}: {cell.note}"] = None
    return list(seen)


def to_json(
    specs: list[Spec], results: Results, verdicts: list[Verdict], meta: dict[str, Any]
) -> dict[str, Any]:
    """Assemble the JSON document: metadata, every cell, and the verdicts.

    Engine workloads are under ``workloads``, runs on each executor under
    ``executors``, per-run calls under ``calls``, durable runs (with a DBOS side) under
    ``durable``.
    """
    groups: dict[str, dict[str, Any]] = {"engine": {}, "executors": {}, "calls": {}, "durable": {}}
    for spec in specs:
        sizes: dict[str, Any] = {}
        for n, cells in results[spec.name].items():
            entry: dict[str, Any] = {"ratio": ratio(spec, cells)}
            for side, cell in cells.items():
                keys = sorted({key for sample in cell.samples for key in sample})
                entry[side] = {
                    "status": cell.status,
                    "note": cell.note,
                    "headline": headline(spec, cell),
                    "per_task_us": per_task_us(spec, cell, n),
                    "median": {key: cell.median(key) for key in keys},
                    "samples": cell.samples,
                }
            sizes[str(n)] = entry
        groups[spec.group][spec.name] = {"label": spec.label, "kind": spec.kind, "sizes": sizes}
    return {
        "meta": meta,
        "workloads": groups["engine"],
        "executors": groups["executors"],
        "calls": groups["calls"],
        "durable": groups["durable"],
        "targets": [asdict(v) for v in verdicts],
    }


def report(
    specs: list[Spec],
    results: Results,
    verdicts: list[Verdict],
    mode: Mode,
    versions: dict[str, Any],
    extra: list[str] | None = None,
) -> None:
    """Print the header, the comparison table, the notes, ``extra`` lines (another
    group's section, e.g. the job boards') and the targets."""
    if specs:  # none when only another group (the job boards') was chosen
        print(f"\n{describe(mode, versions)}")
    engine = table_rows(specs, results)
    if len(engine) > 1:
        print(render(engine))
    executors = executor_rows(specs, results)
    if len(executors) > 1:
        print(
            "\nexecutors: each run against its baseline (x = time / baseline; processes: "
            "serial / time)\nload = 1-minute load average after each measurement (median)"
        )
        print(render(executors))
        for (name, side), how in HOW.items():
            if name in results and any(side in cells for cells in results[name].values()):
                label = next(spec.label for spec in specs if spec.name == name)
                print(f"  {label}, {SIDE_LABELS[side]}: {how}")
    calls = table_rows(specs, results, "calls")
    if len(calls) > 1:
        print("\ncalls users make per run, each timed alone (N = values or graph nodes)")
        print(render(calls))
    durable = durable_rows(specs, results)
    if len(durable) > 1:
        print(
            "\ndurable runs: N no-op tasks in a linear flow (DBOS: N no-op steps in one "
            "workflow),\neach state change recorded in a fresh SQLite file (schema untimed)"
        )
        print(render(durable, 2))
    for line in notes(results):
        print(f"  note: {line}")
    for line in extra or ():
        print(line)
    print("\ntargets")
    rows = [[v.status, v.target, v.value, v.note] for v in verdicts if v.status != "not run"]
    print(render([["verdict", "target", "value", "note"], *rows], 4))


def describe(mode: Mode, versions: dict[str, Any]) -> str:
    """Return the lines above the table: versions, machine, mode."""
    dbos = "" if versions.get("dbos") == "unused" else f" and DBOS {versions.get('dbos')}"
    head = (
        f"tideflow {versions['tideflow']} vs TaskFlow {versions['taskflow']}{dbos}, "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, mode {mode.name}: "
        f"median of up to {mode.reps} processes per cell (procs = tideflow/TaskFlow)"
    )
    if mode.name == "full":
        return head
    return (
        f"{head}\n{mode.name} mode: TaskFlow runs smaller N ('—' = not run); ratios at equal N only"
    )
