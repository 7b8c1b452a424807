"""A sweep directory's reports: ``results.csv``, ``summary.md``, ``curves.png``, ``chart.png``.

``results.csv`` has one row per cell and seed that finished: the cell, its label on each
axis, the seed, the learners' parameter count, env steps, updates and training seconds
(``totals.json``), then the final evaluation on held-out demos under its ``eval.json``
names (with the zero and random policies of the same evaluation and, with
``run.eval_train_demos``, the evaluation on training demos, ``eval_train/...``).
"""

import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mjx_metamimic.sweeps.spec import Cell, Sweep  # noqa: E402

# Shown in summary.md beside the spec's headline metric, when the runs report them.
SUMMARY_METRICS = (
    "eval/agent/reward",
    "eval/agent/joint_error",
    "eval/agent/ended_stacked",
    "eval/agent/task_success",
    "eval/agent/task_grasped",
    "eval/agent/task_lifted",
    "eval/agent/task_steps_to_stack",
    "eval_train/agent/reward",
)


def lower_is_better(metric: str) -> bool:
    """Errors and steps-to-stack are better low; rewards and success rates high."""
    return "error" in metric or "steps_to_stack" in metric


def seed_dir(sweep_dir: Path, cell: Cell, seed: int) -> Path:
    """The run directory of ``cell``'s seed ``seed`` in a sweep directory."""
    return Path(sweep_dir) / "cells" / cell.name / f"seed-{seed}"


def collect_rows(sweep: Sweep, sweep_dir: Path) -> list[dict]:
    """One dict per finished (cell, seed) of ``sweep`` in ``sweep_dir``."""
    rows = []
    for cell in sweep.cells:
        for seed in sweep.seeds:
            run_dir = seed_dir(sweep_dir, cell, seed)
            if not (run_dir / "eval.json").exists():
                continue
            totals = json.loads((run_dir / "totals.json").read_text())
            row = {"cell": cell.name, **cell.labels, "seed": seed}
            row.update({k: totals[k] for k in ("num_params", "env_steps", "updates")})
            row["wall_s"] = totals["train_seconds"]
            row.update(json.loads((run_dir / "eval.json").read_text()))
            rows.append(row)
    return rows


def write_results_csv(rows: list[dict], path: Path) -> Path:
    """``rows`` as CSV (columns in first-seen order; a missing value is empty)."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with Path(path).open("w", newline="") as f:
        writer = csv.DictWriter(f, columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    return Path(path)


def _mean_std(rows: list[dict], metric: str) -> tuple[float, float]:
    values = np.array([r[metric] for r in rows if metric in r], float)
    values = values[np.isfinite(values)]
    if not values.size:
        return float("nan"), float("nan")
    return float(values.mean()), float(values.std())


def write_summary(sweep: Sweep, rows: list[dict], path: Path) -> Path:
    """``summary.md``: per cell, mean ± std over seeds of the headline and summary metrics,
    the zero policy's headline value, and the best cell marked."""
    by_cell = {c.name: [r for r in rows if r["cell"] == c.name] for c in sweep.cells}
    metrics = [sweep.metric] + [
        m for m in SUMMARY_METRICS if m != sweep.metric and any(m in r for r in rows)
    ]
    means = {name: _mean_std(cell_rows, sweep.metric)[0] for name, cell_rows in by_cell.items()}
    finite = {k: v for k, v in means.items() if np.isfinite(v)}
    pick = min if lower_is_better(sweep.metric) else max
    best = pick(finite, key=finite.get) if finite else None
    if best is not None and list(finite.values()).count(finite[best]) > 1:
        best = None  # a tie (e.g. every cell at 0) has no best cell
    zero = sweep.metric.replace("/agent/", "/zero/")
    header = ["cell", "seeds", "params", "env steps", "updates", *metrics, f"zero: {sweep.metric}"]
    lines = [
        f"# Sweep `{sweep.name}` at scale `{sweep.scale}`",
        "",
        sweep.description,
        "",
        f"Mean ± std over seeds of the final evaluation (held-out demos; the task policy on "
        f"fresh layouts); ★ marks the best cell by `{sweep.metric}` "
        f"({'lower' if pick is min else 'higher'} is better; none on a tie).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + " --- |" * len(header),
    ]
    for name, cell_rows in by_cell.items():
        if not cell_rows:
            lines.append(f"| {name} | 0 | " + " | ".join(["–"] * (len(header) - 2)) + " |")
            continue
        first = cell_rows[0]
        cells = [
            name + (" ★" if name == best else ""),
            str(len(cell_rows)),
            f"{first['num_params']:,}",
            f"{np.mean([r['env_steps'] for r in cell_rows]):,.0f}",
            f"{np.mean([r['updates'] for r in cell_rows]):,.0f}",
        ]
        for metric in [*metrics, zero]:
            mean, std = _mean_std(cell_rows, metric)
            cells.append("–" if not np.isfinite(mean) else f"{mean:.3g} ± {std:.2g}")
        lines.append("| " + " | ".join(cells) + " |")
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def _curve(run_dir: Path, metric: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(env steps, values) of ``metric`` from a run's metrics.csv or eval.csv."""
    log = run_dir / ("eval.csv" if metric.startswith("eval") else "metrics.csv")
    if not log.exists():
        return None
    with log.open() as f:
        rows = [r for r in csv.DictReader(f) if r.get(metric) not in (None, "")]
    if not rows:
        return None
    return np.array([float(r["env_steps"]) for r in rows]), np.array(
        [float(r[metric]) for r in rows]
    )


def plot_curves(sweep: Sweep, sweep_dir: Path, path: Path) -> Path | None:
    """``sweep.curve`` against env steps: per cell the seeds' mean and a min-max band."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    drawn = False
    for cell in sweep.cells:
        curves = [_curve(seed_dir(sweep_dir, cell, s), sweep.curve) for s in sweep.seeds]
        curves = [c for c in curves if c is not None]
        if not curves:
            continue
        length = min(len(c[0]) for c in curves)
        steps = curves[0][0][:length]
        values = np.stack([c[1][:length] for c in curves])
        (line,) = ax.plot(steps, values.mean(axis=0), label=cell.name, linewidth=1.2)
        ax.fill_between(steps, values.min(axis=0), values.max(axis=0), alpha=0.2,
                        color=line.get_color())  # fmt: skip
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("env steps")
    ax.set_ylabel(sweep.curve, fontsize=8)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return Path(path)


def plot_chart(sweep: Sweep, rows: list[dict], path: Path) -> Path | None:
    """The figure's chart of the headline metric (mean ± std over seeds, zero policy dashed):
    "bars" groups the first axis's points by the other axes' labels; "lines" puts the
    first axis on x (its labels as numbers) with a line per other-axes group; "curves"
    draws nothing here (``curves.png`` is the figure)."""
    if sweep.chart == "curves" or not rows or not sweep.axes:
        return None
    first, others = sweep.axes[0], sweep.axes[1:]
    group_of = lambda cell: ", ".join(cell.labels[a.name] for a in others) or sweep.metric
    groups = list(dict.fromkeys(group_of(c) for c in sweep.cells))
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    # Fig. 5 style: the training demos' value beside the held-out one, where evaluated.
    train_metric = sweep.metric.replace("eval/", "eval_train/", 1)
    metrics = {sweep.metric: ""}
    if sweep.chart == "lines" and any(train_metric in r for r in rows):
        metrics = {sweep.metric: " (held-out demos)", train_metric: " (training demos)"}
    width = 0.8 / len(groups)
    for g, group in enumerate(groups):
        cells = [
            next(c for c in sweep.cells if c.labels[first.name] == label and group_of(c) == group)
            for label in first.labels
        ]
        for metric, suffix in metrics.items():
            stats = [_mean_std([r for r in rows if r["cell"] == c.name], metric) for c in cells]
            means, stds = [m for m, _ in stats], [s for _, s in stats]
            if sweep.chart == "bars":
                xs = [i + (g - (len(groups) - 1) / 2) * width for i in range(len(cells))]
                ax.bar(xs, means, width, yerr=stds, label=group, capsize=2)
            else:
                xs = [float(label) for label in first.labels]
                ax.errorbar(xs, means, yerr=stds, label=group + suffix, marker="o", capsize=2)
    zero, _ = _mean_std(rows, sweep.metric.replace("/agent/", "/zero/"))
    if np.isfinite(zero):
        ax.axhline(zero, color="gray", linestyle="--", linewidth=1, label="zero policy")
    if sweep.chart == "bars":
        ax.set_xticks(range(len(first.labels)), first.labels)
    else:
        ax.set_xscale("log")
        ax.set_xticks([float(label) for label in first.labels], first.labels)
        ax.minorticks_off()
    ax.set_xlabel(first.name)
    ax.set_ylabel(sweep.metric, fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return Path(path)


def write_reports(sweep: Sweep, sweep_dir: Path) -> Path:
    """Writes all of a sweep directory's reports from its finished runs; returns
    ``summary.md``'s path."""
    sweep_dir = Path(sweep_dir)
    rows = collect_rows(sweep, sweep_dir)
    write_results_csv(rows, sweep_dir / "results.csv")
    plot_curves(sweep, sweep_dir, sweep_dir / "curves.png")
    plot_chart(sweep, rows, sweep_dir / "chart.png")
    return write_summary(sweep, rows, sweep_dir / "summary.md")
