"""What a dataset depends on, as fingerprints, and its fixed train/validation split.

``scene_fingerprint`` covers the scene XML and the env config (observation fields and the
physics engine aside: the engines step the same model, and demos made on one imitate on
the other; the manifest's ``generation`` names the engine that recorded them);
``dataset_fingerprint`` adds the image size and camera. The manifest stores both, and the
split as sorted index lists drawn with a fixed seed.
"""

import dataclasses
import hashlib
import json

import numpy as np

from mjx_metamimic.envs.scene import scene_path
from mjx_metamimic.envs.stack import StackEnvConfig

# Env config fields that only change what is observed, checked via image_size and camera.
OBSERVATION_FIELDS = ("image_size", "camera")
# The physics engine (MJX's JAX or Warp engine, or MuJoCo C): the same model, stepped by
# any of them; and the envs the Warp engine's contact buffer is sized for.
ENGINE_FIELDS = ("impl", "warp_max_envs")


def physics_config(env_config: StackEnvConfig) -> dict:
    """The env config without its observation-only fields (image size and camera) and its
    physics engine."""
    config = dataclasses.asdict(env_config)
    for name in OBSERVATION_FIELDS + ENGINE_FIELDS:
        config.pop(name, None)
    return config


def scene_fingerprint(env_config: StackEnvConfig) -> str:
    """sha256 of the scene's MJCF bytes and the env config (observation fields aside):
    everything the recorded physics depends on."""
    digest = hashlib.sha256(scene_path(env_config.scene).read_bytes())
    digest.update(json.dumps(physics_config(env_config), sort_keys=True).encode())
    return digest.hexdigest()


def dataset_fingerprint(
    env_config: StackEnvConfig, image_size: tuple[int, int], camera: str
) -> str:
    """sha256 of the scene fingerprint, the image size (H, W) and the camera name."""
    spec = {
        "scene": scene_fingerprint(env_config),
        "image_size": list(image_size),
        "camera": camera,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def split_indices(num_demos: int, validation_fraction: float, seed: int) -> dict[str, list[int]]:
    """A fixed random train/validation split of ``range(num_demos)`` (sorted index lists).

    At least one demo goes to each side when ``0 < validation_fraction < 1`` and
    ``num_demos >= 2``.

    Raises:
      ValueError: ``validation_fraction`` outside [0, 1).
    """
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    num_val = int(round(num_demos * validation_fraction))
    if validation_fraction > 0 and num_demos >= 2:
        num_val = min(max(num_val, 1), num_demos - 1)
    order = np.random.default_rng(seed).permutation(num_demos)
    return {
        "train": sorted(int(i) for i in order[num_val:]),
        "validation": sorted(int(i) for i in order[:num_val]),
    }
