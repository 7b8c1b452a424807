"""Running a sweep into a sweep directory, resumably.

The directory holds ``spec.json`` (the resolved sweep it was made with), ``cells/<cell>/
seed-<s>/`` (a run directory per cell and seed: ``eval`` and ``train --resume`` work on
each), and the reports ``results.csv``, ``summary.md``, ``curves.png`` and ``chart.png``.

Cells run one after another; the seeds of a cell train together as one vmapped program
(``training.Trainer``). Rerunning a sweep skips cells whose seeds all finished (each has
``eval.json``), resumes seeds that left a checkpoint, and starts the others afresh; a
sweep directory made with another spec or scale is refused with the differences named.
"""

import json
import shutil
import time
from pathlib import Path

from rich.console import Console

from mjx_metamimic.sweeps.report import seed_dir, write_reports
from mjx_metamimic.sweeps.spec import Cell, Sweep
from mjx_metamimic.training import checkpoints
from mjx_metamimic.training.launch import use_compilation_cache
from mjx_metamimic.training.run_dir import CONFIG_FILE, save_config
from mjx_metamimic.training.setup import ensure_demos
from mjx_metamimic.training.trainer import Trainer, seeded

SPEC_FILE = "spec.json"


def default_sweep_dir(sweep: Sweep, out_dir: Path = Path("runs/sweeps")) -> Path:
    """``<out_dir>/<spec name>-<scale>``."""
    return Path(out_dir) / f"{sweep.name}-{sweep.scale}"


def differences(old, new, prefix: str = "") -> list[str]:
    """Dotted paths at which two JSON-like values differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in old or key not in new:
                found.append(path)
            else:
                found += differences(old[key], new[key], path)
        return found
    return [] if old == new else [prefix or "(top level)"]


def claim_sweep_dir(sweep_dir: Path, sweep: Sweep) -> None:
    """Makes ``sweep_dir`` this sweep's, or checks that it already is.

    Raises:
      ValueError: the directory holds another sweep (the differing settings named), or
        files that are not a sweep's.
    """
    sweep_dir = Path(sweep_dir)
    spec = json.loads(json.dumps(sweep.to_dict(), default=str))
    path = sweep_dir / SPEC_FILE
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(
                f"{path} is not valid JSON ({error}): not a sweep directory"
            ) from error
        changed = differences(old, spec)
        if changed:
            shown = ", ".join(changed[:6]) + (
                f" and {len(changed) - 6} more" if changed[6:] else ""
            )
            raise ValueError(
                f"{sweep_dir} holds a sweep made with another spec (differs in {shown}): "
                "pass --out NEW_DIR to run this one beside it"
            )
        return
    if sweep_dir.exists() and any(sweep_dir.iterdir()):
        raise ValueError(f"{sweep_dir} exists and is not a sweep directory (no {SPEC_FILE})")
    sweep_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(spec, indent=2))
    tmp.replace(path)


def _start_fresh(config, seed: int, run_dir: Path) -> None:
    """An empty run directory for ``seed`` (what a killed start left without a checkpoint
    is cleared: no training state survives in it)."""
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    save_config(seeded(config, seed), run_dir)


def run_cell(
    sweep_dir: Path,
    cell: Cell,
    seeds: tuple[int, ...],
    console: Console | None = None,
    verbose: bool = False,
    vmap_seeds: bool = True,
) -> None:
    """Trains the unfinished seeds of ``cell``: those with a checkpoint resume from it (one
    program per checkpoint step), the rest start together in one program.

    Args:
      console: where resumptions are reported (and, with ``verbose``, training lines).
      vmap_seeds: False runs the seeds one after another, each in its own program.
    """
    console = console or Console(quiet=True)
    pending = [s for s in seeds if not (seed_dir(sweep_dir, cell, s) / "eval.json").exists()]
    by_step: dict[int | None, dict[int, Path]] = {}
    for seed in pending:
        run_dir = seed_dir(sweep_dir, cell, seed)
        step = None
        if (run_dir / CONFIG_FILE).exists() and (run_dir / "checkpoints").exists():
            step = checkpoints.manager(run_dir).latest_step()
        by_step.setdefault(step, {})[seed] = run_dir
    for step, run_dirs in by_step.items():
        if step is None:
            for seed, run_dir in run_dirs.items():
                _start_fresh(cell.config, seed, run_dir)
        else:
            console.print(f"  seeds {sorted(run_dirs)}: resumed from chunk {step}")
        groups = [run_dirs] if vmap_seeds else [{s: d} for s, d in run_dirs.items()]
        for group in groups:
            # One seed alone runs the plain program (no seed axis).
            config, dirs = cell.config, group
            if len(group) == 1:
                ((seed, dirs),) = group.items()
                config = seeded(cell.config, seed)
            Trainer(config, dirs, console if verbose else None).run(resume=step is not None)


def run_sweep(
    sweep: Sweep,
    sweep_dir: Path,
    console: Console | None = None,
    verbose: bool = False,
) -> Path:
    """Runs every unfinished cell of ``sweep`` into ``sweep_dir``, then writes the reports.

    Args:
      sweep: the resolved sweep (``load_sweep``).
      sweep_dir: the sweep directory (created, or checked to hold this same sweep).
      console: one line per cell with the overall ETA (None: quiet).
      verbose: also show each cell's training progress lines.

    Returns:
      ``summary.md``'s path.
    """
    console = console or Console(quiet=True)
    sweep_dir = Path(sweep_dir)
    claim_sweep_dir(sweep_dir, sweep)
    use_compilation_cache(sweep.cells[0].config)
    for spec in {c.config.demos: c.config for c in sweep.cells}.values():
        ensure_demos(spec, console)
    spent, ran = 0.0, 0
    total = len(sweep.cells)
    for index, cell in enumerate(sweep.cells, 1):
        dirs = [seed_dir(sweep_dir, cell, s) for s in sweep.seeds]
        head = f"cell {index}/{total} {cell.name} ({len(sweep.seeds)} seeds)"
        if all((d / "eval.json").exists() for d in dirs):
            console.print(f"{head}: done")
        else:
            start = time.perf_counter()
            console.print(f"{head}: training ...")
            run_cell(sweep_dir, cell, sweep.seeds, console, verbose, sweep.vmap_seeds)
            spent, ran = spent + time.perf_counter() - start, ran + 1
            left = sum(
                1
                for c in sweep.cells[index:]
                if not all((seed_dir(sweep_dir, c, s) / "eval.json").exists() for s in sweep.seeds)
            )
            eta = spent / ran * left / 60
            console.print(
                f"{head}: finished in {(time.perf_counter() - start) / 60:.1f} min; "
                f"{left} cell(s) left, ETA {eta:.0f} min"
            )
    return write_reports(sweep, sweep_dir)
