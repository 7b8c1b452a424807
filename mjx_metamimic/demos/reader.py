"""Validated loading of a demo dataset (layout: ``format``).

``load`` checks the manifest, every shard (size, checksum, arrays, shapes, dtypes, finite
values, episode lengths) and, on request, that the dataset was made for the current scene,
env config, image size and camera. Every problem raises ``DemoDatasetError`` naming the
file; loading never changes anything on disk.
"""

import io
import json
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from mjx_metamimic.demos.fingerprints import physics_config, scene_fingerprint
from mjx_metamimic.demos.format import (
    FORMAT,
    MANIFEST,
    PRIVILEGED,
    SPLITS,
    VERSION,
    DemoDatasetError,
    Demos,
    unflatten,
)
from mjx_metamimic.demos.writer import sha256
from mjx_metamimic.envs.stack import StackEnvConfig

_REQUIRED = ("scene_fingerprint", "image_size", "camera", "num_demos", "fields", "shards", "split")


def read_manifest(path: str | os.PathLike) -> dict:
    """Reads and checks the manifest of the dataset at ``path``.

    Raises:
      DemoDatasetError: missing or unparsable manifest, other format, unknown version.
    """
    file = Path(path) / MANIFEST
    if not Path(path).is_dir():
        raise DemoDatasetError(f"{path}: no demo dataset here (not a directory)")
    if not file.is_file():
        raise DemoDatasetError(f"{file}: missing manifest")
    try:
        manifest = json.loads(file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DemoDatasetError(f"{file}: unreadable manifest ({e})") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DemoDatasetError(f"{file}: not a {FORMAT} manifest")
    if manifest.get("version") != VERSION:
        raise DemoDatasetError(
            f"{file}: unknown format version {manifest.get('version')!r} (this code reads "
            f"version {VERSION})"
        )
    missing = [k for k in _REQUIRED if k not in manifest]
    if missing:
        raise DemoDatasetError(f"{file}: manifest lacks {missing}")
    return manifest


def _check_request(manifest: dict, file: Path, env_config, image_size, camera) -> None:
    if env_config is not None and env_config.image_size:
        image_size = image_size or (env_config.image_size, env_config.image_size)
        camera = camera or env_config.camera
    if image_size is not None and list(image_size) != manifest["image_size"]:
        h, w = manifest["image_size"]
        raise DemoDatasetError(
            f"{file}: image size {h}x{w} does not match the requested "
            f"{image_size[0]}x{image_size[1]}"
        )
    if camera is not None and camera != manifest["camera"]:
        raise DemoDatasetError(
            f"{file}: camera {manifest['camera']!r} does not match the requested {camera!r}"
        )
    if env_config is not None and manifest["scene_fingerprint"] != scene_fingerprint(env_config):
        stored, requested = manifest.get("env_config", {}), physics_config(env_config)
        differ = sorted(
            k for k in set(stored) | set(requested) if stored.get(k) != _jsonable(requested.get(k))
        )
        why = f"env config fields differ: {differ}" if differ else "the scene XML differs"
        raise DemoDatasetError(
            f"{file}: wrong scene fingerprint ({why}): the demos were made for another "
            "scene or env config; regenerate them"
        )


def _jsonable(value):
    """``value`` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(value))


def _read_shard(path: Path, entry: dict, fields: dict) -> dict[str, np.ndarray]:
    """Reads and validates one shard file against its manifest entry."""
    if not path.is_file():
        raise DemoDatasetError(f"{path}: missing shard")
    data = path.read_bytes()
    if len(data) != entry["bytes"]:
        problem = "truncated" if len(data) < entry["bytes"] else "wrong size"
        raise DemoDatasetError(
            f"{path}: {problem} file ({len(data)} bytes, manifest says {entry['bytes']})"
        )
    if sha256(data) != entry["sha256"]:
        raise DemoDatasetError(f"{path}: checksum mismatch (sha256 differs from the manifest)")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, zlib.error) as e:
        raise DemoDatasetError(f"{path}: unreadable shard ({e})") from e
    if set(arrays) != set(fields):
        raise DemoDatasetError(
            f"{path}: arrays {sorted(arrays)} differ from the manifest's {sorted(fields)}"
        )
    for name, spec in fields.items():
        x = arrays[name]
        expected = (entry["num_demos"], *spec["shape"])
        if x.shape != expected or x.dtype.name != spec["dtype"]:
            raise DemoDatasetError(
                f"{path}: {name} is {x.dtype.name}{list(x.shape)}, manifest says "
                f"{spec['dtype']}{list(expected)}"
            )
        if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
            raise DemoDatasetError(f"{path}: {name} contains NaN or infinite values")
    steps = fields["task_reward"]["shape"][0]
    lengths = arrays["lengths"]
    if np.any(lengths < 1) or np.any(lengths > steps):
        raise DemoDatasetError(f"{path}: episode lengths outside [1, {steps}]")
    return arrays


def load(
    path: str | os.PathLike,
    split: str = "all",
    *,
    env_config: StackEnvConfig | None = None,
    image_size: tuple[int, int] | None = None,
    camera: str | None = None,
    max_demos: int | None = None,
    privileged_actions: bool = False,
) -> Demos:
    """Loads and validates a demo dataset.

    Args:
      path: the dataset directory.
      split: "all", "train" or "validation" (the split stored in the manifest).
      env_config: if given, the dataset must have been made with the current scene XML
        and this env config (observation fields aside; checked via the scene
        fingerprint); if it renders pixels, also with its image size and camera.
      image_size: if given, the frames must be (H, W) = ``image_size``.
      camera: if given, the frames must come from this camera.
      max_demos: keep only the first ``max_demos`` demos of the split.
      privileged_actions: also return the demonstrator's actions (D4PGfD baseline only;
        MetaMimic never asks for them).

    Returns:
      The demos (host numpy), in dataset order.

    Raises:
      DemoDatasetError: naming the file and the problem (missing shard, checksum mismatch,
        truncated file, wrong fingerprint/image size/camera, NaNs, unknown version, ...).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root = Path(path)
    manifest = read_manifest(root)
    _check_request(manifest, root / MANIFEST, env_config, image_size, camera)
    fields = manifest["fields"]
    parts = []
    for entry in manifest["shards"]:
        arrays = _read_shard(root / entry["file"], entry, fields)
        if not privileged_actions:
            arrays.pop(PRIVILEGED, None)
        parts.append(unflatten(arrays))
    demos = Demos.concatenate(parts)
    if demos.num_demos != manifest["num_demos"]:
        raise DemoDatasetError(
            f"{root / MANIFEST}: shards hold {demos.num_demos} demos, manifest says "
            f"{manifest['num_demos']}"
        )
    if privileged_actions and demos.privileged_actions is None:
        raise DemoDatasetError(f"{root}: the dataset stores no {PRIVILEGED}")
    if split != "all":
        indices = manifest["split"][split]
        if any(not 0 <= i < demos.num_demos for i in indices):
            raise DemoDatasetError(f"{root / MANIFEST}: {split} split indexes missing demos")
        demos = demos.take(indices)
    if max_demos is not None:
        if max_demos > demos.num_demos:
            raise DemoDatasetError(
                f"{root}: asked for {max_demos} {split} demos, the dataset has {demos.num_demos}"
            )
        demos = demos.take(range(max_demos))
    return demos
