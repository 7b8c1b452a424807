"""Starting and resuming a training run: ``train(config)`` makes its run directory (and
records its demos if missing), ``resume(run_dir)`` continues one from its last checkpoint.

From a notebook or a script::

    from mjx_metamimic import training
    config = training.load_config("features")
    result = training.train(config, progress_fn=lambda step, metrics: print(step, metrics))

``progress_fn(env_steps, metrics)`` is called on the host every ``run.log_every`` chunks
with the training metrics (``train/...``, plus ``time/minutes`` and ``time/env_steps_per_s``)
and after every evaluation with its metrics (``eval/...``).
"""

import dataclasses
from pathlib import Path

import jax
from rich.console import Console

from mjx_metamimic.training import distributed
from mjx_metamimic.training.config import TrainConfig
from mjx_metamimic.training.run_dir import (
    CONFIG_FILE,
    create_run_dir,
    default_run_dir,
    load_run_config,
    save_config,
)
from mjx_metamimic.training.setup import ensure_demos
from mjx_metamimic.training.trainer import ProgressFn, Trainer, TrainResult


def use_compilation_cache(config: TrainConfig) -> Path | None:
    """Turns on JAX's persistent compilation cache for this process (``run.compilation_cache``):
    the user's ``JAX_COMPILATION_CACHE_DIR`` if set, else ``<run.out_dir>/.jax_cache``.
    Returns the cache directory, or None when off. Takes effect only before the process's
    first compilation."""
    if not config.run.compilation_cache:
        return None
    path = jax.config.jax_compilation_cache_dir
    if not path:
        path = str(config.run.out_dir / ".jax_cache")
        jax.config.update("jax_compilation_cache_dir", path)
    return Path(path)


def train(
    config: TrainConfig,
    run_dir: Path | None = None,
    console: Console | None = None,
    progress_fn: ProgressFn | None = None,
) -> TrainResult:
    """Trains ``config`` into a new run directory (recording its demos first if missing).

    Args:
      config: the run config.
      run_dir: where to create the run directory (default ``<run.out_dir>/<name>-<time>``;
        a taken name gets a ``-2``, ``-3``, ... suffix).
      console: where progress lines go (None: quiet).
      progress_fn: see the module docstring.
    """
    if (config.run.out_dir / CONFIG_FILE).exists():
        raise ValueError(
            f"run.out_dir={config.run.out_dir} is itself a run directory: continue it with "
            f"`train --resume {config.run.out_dir}`, or give another run.out_dir"
        )
    use_compilation_cache(config)
    if distributed.is_primary():
        run_dir = create_run_dir(run_dir or default_run_dir(config))
        save_config(config, run_dir)
        if console is not None:
            console.print(f"[bold]run directory[/] {run_dir}")
        ensure_demos(config, console)
    run_dir = distributed.shared_path(run_dir or Path())
    distributed.barrier("run directory and demos ready")
    (final,) = Trainer(config, run_dir, console, progress_fn).run()
    return TrainResult(run_dir, final)


def resume(
    run_dir: Path,
    console: Console | None = None,
    progress_fn: ProgressFn | None = None,
    mesh_devices: int | None = None,
) -> TrainResult:
    """Continues the run in ``run_dir`` from its latest checkpoint, with its own config;
    ``mesh_devices`` moves it to that many devices (recorded in its ``config.json``)."""
    config = load_run_config(run_dir)
    if mesh_devices is not None and mesh_devices != config.mesh.devices:
        config = dataclasses.replace(
            config, mesh=dataclasses.replace(config.mesh, devices=mesh_devices)
        )
        mesh_devices(config)  # refuse a count this machine cannot give before saving it
        if distributed.is_primary():
            save_config(config, run_dir)
    use_compilation_cache(config)
    if distributed.is_primary():
        ensure_demos(config, console)
    distributed.barrier("demos ready")
    (final,) = Trainer(config, run_dir, console, progress_fn).run(resume=True)
    return TrainResult(Path(run_dir), final)
