"""``mjx-metamimic sweep``: a grid of configs x seeds from a spec, one command.

  mjx-metamimic sweep fig6 --scale smoke
  mjx-metamimic sweep train/experiments/fig5.toml --scale cpu --seeds 3 --out runs/fig5

Each cell's seeds train together as one vmapped program; each (cell, seed) gets a run
directory (``eval`` and ``train --resume`` work on it). Rerunning the same command skips
finished cells and resumes killed ones. At the end the sweep directory holds results.csv
(one row per cell and seed), summary.md (mean ± std per cell, best marked), curves.png
and chart.png.
"""

import argparse
from pathlib import Path

from rich.console import Console

from mjx_metamimic import sweeps


def parse(argv: list[str]) -> argparse.Namespace:
    """The command line of ``mjx-metamimic sweep``."""
    parser = argparse.ArgumentParser(
        prog="mjx-metamimic sweep",
        description="Run a sweep spec (a name from train/experiments/ or a .toml path).",
    )
    parser.add_argument("spec", help=f"spec name ({', '.join(sweeps.spec_names())}) or .toml")
    parser.add_argument("--scale", choices=sweeps.SCALES, default="smoke",
                        help="budget and grid size: smoke (minutes), cpu (~1 h), gpu")  # fmt: skip
    parser.add_argument("--out", type=Path, default=None,
                        help="sweep directory (default runs/sweeps/<spec>-<scale>)")  # fmt: skip
    parser.add_argument("--seeds", type=int, default=None,
                        help="seeds per cell (default: the scale's)")  # fmt: skip
    parser.add_argument("--verbose", action="store_true", help="show each cell's training lines")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    """Runs ``mjx-metamimic sweep``."""
    args = parse(argv)
    sweep = sweeps.load_sweep(args.spec, args.scale, args.seeds)
    out = args.out or sweeps.default_sweep_dir(sweep)
    console = Console()
    console.print(
        f"[bold]sweep {sweep.name}[/] at scale {sweep.scale}: {len(sweep.cells)} cells x "
        f"{len(sweep.seeds)} seeds into {out}"
    )
    summary = sweeps.run_sweep(sweep, out, console, verbose=args.verbose)
    console.print(summary.read_text())
    console.print(f"results: {out / 'results.csv'}  plots: {out / 'curves.png'}, chart.png")
    return 0
