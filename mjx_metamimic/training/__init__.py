"""The MetaMimic training system: configs, actors, the fused training chunk, evaluation,
checkpoints, videos and the run loop (``train``).

``load_config("features", run={"max_minutes": 1})`` gives a named config with nested
overrides; ``train(config)`` runs it into a run directory; ``build(config)`` gives the
pure functions (``MetaMimic``) for custom loops.
"""

from mjx_metamimic import configs
from mjx_metamimic.training.config import TrainConfig
from mjx_metamimic.training.evaluate import Evaluator
from mjx_metamimic.training.launch import resume, train
from mjx_metamimic.training.run_dir import load_run_config
from mjx_metamimic.training.setup import build, ensure_demos, load_banks
from mjx_metamimic.training.system import MetaMimic, TrainState
from mjx_metamimic.training.trainer import Trainer, TrainResult


def load_config(name: str, **overrides) -> TrainConfig:
    """The named run config (``train/<name>.toml``, or a .toml path) with ``overrides``:
    nested dicts by config section, e.g. ``actors={"num_envs": 8}``."""
    config = configs.load(TrainConfig, name)
    return configs.from_dict(TrainConfig, overrides, base=config) if overrides else config


__all__ = [
    "Evaluator",
    "MetaMimic",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "Trainer",
    "build",
    "ensure_demos",
    "load_banks",
    "load_config",
    "load_run_config",
    "resume",
    "train",
]
