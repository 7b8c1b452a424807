"""Sweep specs: a base config, axes of config values, seeds and a budget per scale.

A spec is a TOML file in ``train/experiments/`` (or any path)::

    description = "Network size x normalisation (paper Fig. 6)"
    base = "cpu"                      # a named config (train/<base>.toml)
    chart = "bars"                    # the figure's chart: bars | lines | curves
    metric = "eval/agent/reward"      # the headline metric (an eval.json name)
    curve = "train/actor/imitation_reward"  # learning curves (metrics.csv or eval.csv)

    [set]                             # overrides of every cell at every scale
    "learner.train_task" = false

    [[axis]]                          # cells are the product of the axes
    name = "torso"
    "learner.network.torso" = ["tiny", "small"]

    [[axis]]                          # several fields in one axis move together (zipped)
    name = "method"
    labels = ["metamimic", "d4pg"]
    "learner.train_imitation" = [true, false]
    "actors.task_fraction" = [0.25, 0.0]

    [scale.smoke]                     # one table per scale: smoke, cpu, gpu
    seeds = 2
    vmap_seeds = true                 # a cell's seeds in one vmapped program (else one by one)
    max_updates = 40                  # the budget: max_updates and/or max_env_steps
    max_minutes = 5.0                 # a safety cap only
    set = { "actors.num_envs" = 4 }   # overrides of every cell at this scale (after [set])
    axis = { torso = { "learner.network.torso" = ["tiny"] } }  # an axis's values here

Field names are the config's dotted names, as on the command line (``--learner.batch-size``
is ``learner.batch_size``); a name that is not a config field is an error naming it.
"""

import dataclasses
import itertools
import tomllib
from pathlib import Path
from typing import Any

from mjx_metamimic import configs
from mjx_metamimic.configs import ConfigError
from mjx_metamimic.training.config import TrainConfig

SCALES = ("smoke", "cpu", "gpu")
CHARTS = ("bars", "lines", "curves")
_SCALE_KEYS = {"seeds", "vmap_seeds", "max_updates", "max_env_steps", "max_minutes", "set", "axis"}
_SPEC_KEYS = {"description", "base", "chart", "metric", "curve", "set", "axis", "scale"}


@dataclasses.dataclass(frozen=True)
class Axis:
    """One axis of a sweep: ``len(labels)`` points, each setting every field in ``values``."""

    name: str
    labels: tuple[str, ...]
    values: dict[str, tuple]  # dotted field -> one value per point


@dataclasses.dataclass(frozen=True)
class Cell:
    """One point of the grid: its name, its label on each axis, and its config."""

    name: str
    labels: dict[str, str]  # axis name -> label
    config: TrainConfig


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A spec resolved at one scale: its cells (each with the scale's budget) and seeds."""

    name: str
    scale: str
    description: str
    chart: str
    metric: str
    curve: str
    axes: tuple[Axis, ...]
    cells: tuple[Cell, ...]
    seeds: tuple[int, ...]
    vmap_seeds: bool = True

    def to_dict(self) -> dict:
        """A JSON-ready description: what a sweep directory was made with (``spec.json``)."""
        return {
            "name": self.name,
            "scale": self.scale,
            "chart": self.chart,
            "metric": self.metric,
            "curve": self.curve,
            "axes": [dataclasses.asdict(axis) for axis in self.axes],
            "seeds": list(self.seeds),
            "vmap_seeds": self.vmap_seeds,
            "cells": {c.name: configs.to_dict(c.config) for c in self.cells},
        }


def spec_names() -> list[str]:
    """Names of the shipped sweep specs (train/experiments/*.toml)."""
    return configs.config_names("experiments")


def spec_path(name: str) -> Path:
    """Path of the named spec, or of ``name`` itself when it is a .toml file."""
    return configs.config_path(name, "experiments", "sweep spec")


def nested(flat: dict[str, Any]) -> dict:
    """``{"a.b": 1, "a.c": 2}`` -> ``{"a": {"b": 1, "c": 2}}``."""
    root: dict = {}
    for dotted, value in flat.items():
        *parents, leaf = dotted.split(".")
        node = root
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = value
    return root


def _axis(table: dict, where: str) -> Axis:
    if "name" not in table:
        raise ConfigError(f"{where}: an axis needs a name")
    values = {k: tuple(v) for k, v in table.items() if k not in ("name", "labels")}
    if not values or any(not isinstance(v, tuple) or not v for v in values.values()):
        raise ConfigError(f"{where}: axis {table['name']!r} needs fields with lists of values")
    sizes = {len(v) for v in values.values()}
    labels = tuple(str(x) for x in table.get("labels", next(iter(values.values()))))
    if len(sizes) > 1 or len(labels) not in sizes:
        raise ConfigError(
            f"{where}: axis {table['name']!r} zips fields and labels of different lengths"
        )
    return Axis(str(table["name"]), labels, values)


def _scaled_axis(axis: Axis, replaced: dict | None, where: str) -> Axis:
    """``axis`` with the values a scale gives it (the same fields, fewer or other points)."""
    if replaced is None:
        return axis
    table = {"name": axis.name, **replaced}
    if set(replaced) - {"labels"} != set(axis.values):
        raise ConfigError(f"{where}: axis {axis.name!r} must list the same fields at every scale")
    if "labels" not in replaced and len(axis.values) > 1:
        raise ConfigError(f"{where}: axis {axis.name!r} zips several fields: give its labels")
    return _axis(table, where)


def load_sweep(name: str, scale: str, seeds: int | None = None) -> Sweep:
    """Loads spec ``name`` (a shipped name or a .toml path) at ``scale``.

    Args:
      name: the spec.
      scale: one of ``SCALES`` (the spec's table for it sets budget, seeds and overrides).
      seeds: seeds per cell (default: the scale's ``seeds``); seeds are 0 .. seeds - 1.

    Raises:
      ConfigError: naming the file and the problem (unknown key or field, a value the
        config refuses, a missing scale, axes of different lengths).
    """
    path = spec_path(name)
    try:
        spec = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from error
    where = str(path)
    if unknown := set(spec) - _SPEC_KEYS:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; valid: {sorted(_SPEC_KEYS)}")
    if scale not in SCALES:
        raise ConfigError(f"unknown scale {scale!r}; one of {list(SCALES)}")
    scales = spec.get("scale", {})
    if scale not in scales:
        raise ConfigError(f"{where}: no [scale.{scale}] table; it has {sorted(scales)}")
    at = scales[scale]
    if unknown := set(at) - _SCALE_KEYS:
        raise ConfigError(f"{where} [scale.{scale}]: unknown key(s) {sorted(unknown)}")
    chart = spec.get("chart", "bars")
    if chart not in CHARTS:
        raise ConfigError(f"{where}: chart={chart!r}; one of {list(CHARTS)}")
    axes = tuple(_axis(table, where) for table in spec.get("axis", []))
    if unknown := set(at.get("axis", {})) - {a.name for a in axes}:
        raise ConfigError(f"{where} [scale.{scale}]: no axis named {sorted(unknown)}")
    axes = tuple(_scaled_axis(a, at.get("axis", {}).get(a.name), where) for a in axes)
    num_seeds = at.get("seeds", 1) if seeds is None else seeds
    if num_seeds < 1:
        raise ConfigError(f"seeds={num_seeds}: a sweep needs at least one seed per cell")
    if "max_updates" not in at and "max_env_steps" not in at:
        raise ConfigError(f"{where} [scale.{scale}]: give a budget (max_updates, max_env_steps)")
    budget = {k: at[k] for k in ("max_updates", "max_env_steps", "max_minutes") if k in at}
    base = configs.load(TrainConfig, spec.get("base", "cpu"))
    common = nested(
        {**spec.get("set", {}), **at.get("set", {}), **{f"run.{k}": v for k, v in budget.items()}}
    )
    cells = []
    for points in itertools.product(*(range(len(a.labels)) for a in axes)):
        labels = {a.name: a.labels[i] for a, i in zip(axes, points, strict=True)}
        flat = {f: v[i] for a, i in zip(axes, points, strict=True) for f, v in a.values.items()}
        cell_name = "_".join(f"{k}-{v}" for k, v in labels.items()) or "base"
        try:
            config = configs.from_dict(TrainConfig, common, base=base)
            config = configs.from_dict(TrainConfig, nested(flat), base=config)
        except (ConfigError, ValueError) as error:
            raise ConfigError(f"{where}, scale {scale}, cell {cell_name}: {error}") from error
        cells.append(Cell(cell_name, labels, config))
    return Sweep(
        name=path.stem,
        scale=scale,
        description=spec.get("description", ""),
        chart=chart,
        metric=spec.get("metric", "eval/agent/reward"),
        curve=spec.get("curve", "train/actor/imitation_reward"),
        axes=axes,
        cells=tuple(cells),
        seeds=tuple(range(num_seeds)),
        vmap_seeds=bool(at.get("vmap_seeds", True)),
    )
