"""``mjx-metamimic train``: a MetaMimic run from a named config, into a run directory.

  mjx-metamimic train --config cpu [--<field> value ...]
  mjx-metamimic train --resume runs/cpu-20261124-101500 [--mesh.devices N]

The run directory holds config.json, metrics.csv, eval.csv, tensorboard/, checkpoints/ and, at
the end, eval.json, learning_curves.png and imitation.mp4 (.gif without PyAV): the imitation
policy beside the validation demos it follows. Demonstrations are recorded first if the
configured dataset does not exist. Ctrl-C writes a final checkpoint.
"""

import argparse
from pathlib import Path

import tyro
from rich.console import Console

from mjx_metamimic import configs, training
from mjx_metamimic.training import TrainConfig, distributed


def parse(argv: list[str]) -> tuple[TrainConfig | None, Path | None, int | None]:
    """(config, None, None) for a new run from ``--config`` and overrides; (None, run dir,
    device count or None) for ``--resume``."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default="cpu")
    pre.add_argument("--resume", type=Path, default=None)
    known, rest = pre.parse_known_args(argv)
    if known.resume is not None:
        devices = argparse.ArgumentParser(add_help=False)
        devices.add_argument("--mesh.devices", dest="devices", type=int, default=None)
        resumed, rest = devices.parse_known_args(rest)
        if rest:
            raise SystemExit(
                "--resume takes no overrides but --mesh.devices: the run keeps its own config"
            )
        return None, known.resume, resumed.devices
    default = configs.load(TrainConfig, known.config)
    description = f"Train MetaMimic (config {known.config!r}; available: {configs.config_names()})"
    config = tyro.cli(
        TrainConfig, default=default, args=rest, prog="mjx-metamimic train", description=description
    )
    return config, None, None


def main(argv: list[str]) -> int:
    """Runs ``mjx-metamimic train``."""
    console = Console()
    config, resume_dir, devices = parse(argv)
    distributed.initialize_from_env()  # several processes: JAX_COORDINATOR_ADDRESS, SLURM
    if resume_dir is not None:
        console.print(f"[bold]resuming[/] {resume_dir}")
        training.resume(resume_dir, console, mesh_devices=devices)
    else:
        training.train(config, console=console)
    return 0
