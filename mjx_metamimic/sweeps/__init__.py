"""Sweeps: a grid of configs x seeds from a spec (``train/experiments/*.toml``), each cell's
seeds trained as one vmapped program, with a results table, a summary and plots.

From a notebook or a script::

    from mjx_metamimic import sweeps
    sweep = sweeps.load_sweep("fig6", "smoke")
    summary = sweeps.run_sweep(sweep, sweeps.default_sweep_dir(sweep))
"""

from mjx_metamimic.sweeps.report import write_reports
from mjx_metamimic.sweeps.runner import default_sweep_dir, run_cell, run_sweep
from mjx_metamimic.sweeps.spec import SCALES, Axis, Cell, Sweep, load_sweep, spec_names

__all__ = [
    "SCALES",
    "Axis",
    "Cell",
    "Sweep",
    "default_sweep_dir",
    "load_sweep",
    "run_cell",
    "run_sweep",
    "spec_names",
    "write_reports",
]
