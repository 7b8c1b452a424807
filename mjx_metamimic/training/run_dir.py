"""The run directory: where a run's config, logs, checkpoints and results live.

A run directory holds ``config.json`` (the resolved config: the source of truth for
``--resume`` and ``eval``), ``metrics.csv``, ``eval.csv``, ``tensorboard/``,
``checkpoints/`` and, at the end, ``eval.json``, ``totals.json`` (env steps, updates and
training seconds made), ``learning_curves.png`` and the imitation video.
"""

import json
import time
from pathlib import Path

from mjx_metamimic import configs
from mjx_metamimic.training.config import TrainConfig

CONFIG_FILE = "config.json"


def save_config(config: TrainConfig, run_dir: Path) -> None:
    """Writes the resolved config as JSON into ``run_dir``."""
    text = json.dumps(configs.to_dict(config), indent=2, default=str)
    (Path(run_dir) / CONFIG_FILE).write_text(text)


def load_run_config(run_dir: Path) -> TrainConfig:
    """The config a run was started with.

    Raises:
      FileNotFoundError: ``run_dir`` holds no ``config.json`` (not a run directory).
    """
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {run_dir} a run directory?")
    return configs.from_dict(TrainConfig, json.loads(path.read_text()))


def default_run_dir(config: TrainConfig) -> Path:
    """``<run.out_dir>/<config name>-<date>-<time>``."""
    return config.run.out_dir / f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def create_run_dir(path: Path) -> Path:
    """Creates a new, empty run directory at ``path`` (``path-2``, ``-3``, ... when taken).

    Creation is atomic, so runs started in the same second never share a directory.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    candidate, suffix = path, 1
    while True:
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            suffix += 1
            candidate = path.with_name(f"{path.name}-{suffix}")
