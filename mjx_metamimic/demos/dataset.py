"""The on-disk demonstration dataset: format, atomic writing and validated loading.

A dataset is a directory::

    manifest.json        format, version, fingerprints, counts, split, shard checksums
    shard-00000.npz      up to ``shard_size`` demos each (deflated .npy members with
    shard-00001.npz      fixed timestamps: the same demos always give the same bytes)
    ...

Each shard holds, for its n demos (T = max_steps, steps >= length repeat the last one):

    frames              (n, T, H, W, 3) uint8    the env's ``pixels`` observation
    proprio             (n, T, P)       float32  the env's proprio observation
    features            (n, T, F)       float32  privileged block poses (features configs)
    task_reward         (n, T)          float32  task reward of the observation at step t
    lengths             (n,)            int32    episode length L (1 <= L <= T)
    layout_seed         (n,)            uint32   seed of the layout and the demonstrator
    init_state.<field>  (n, ...)                 the env's SimState at step 0
    states.<field>      (n, T, ...)              the env's SimState at step t (optional)
    privileged_actions  (n, T, 7)       float32  the demonstrator's actions: D4PGfD only

MetaMimic learns from observations alone: ``load`` returns ``privileged_actions`` only
when asked for them explicitly. ``states`` (written since the demo-curriculum baseline,
absent in older datasets) let an env ``reset_to`` any step of a demo; ``load`` returns
them when stored (``Demos.states`` is None otherwise).

The manifest also fixes the train/validation split (index lists drawn with a fixed seed)
and fingerprints what the demos depend on: ``scene_fingerprint`` (scene XML and env
config) plus the image size and camera. ``load`` checks all of it on request.

Writing is atomic: shards and then the manifest are written under temporary names in a
temporary sibling directory (``.<name>.tmp-*``), which replaces the destination only
when complete. An existing dataset is replaced only with ``overwrite=True``: it is moved
aside, the new one renamed into place, then the old one deleted. A killed writer can
leave a ``.<name>.tmp-*`` directory behind, never a half-written dataset.
"""

import dataclasses
import hashlib
import io
import json
import os
import shutil
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
from flax import struct

from mjx_metamimic.envs.scene import scene_path
from mjx_metamimic.envs.stack import SimState, StackEnvConfig

FORMAT = "mjx_metamimic.demos"
VERSION = 1
MANIFEST = "manifest.json"
SPLITS = ("all", "train", "validation")
# Env config fields that only change what is observed, checked via image_size and camera.
OBSERVATION_FIELDS = ("image_size", "camera")
_PRIVILEGED = "privileged_actions"
_INIT_PREFIX = "init_state."
_STATES_PREFIX = "states."
_OPTIONAL = ("init_state", "states", _PRIVILEGED)  # not plain arrays of every dataset


class DemoDatasetError(ValueError):
    """A demo dataset is missing, corrupt, or does not match what was asked for."""


@struct.dataclass
class Demos:
    """A batch of demonstrations in host memory (numpy); see the module docstring."""

    frames: np.ndarray  # (N, T, H, W, 3) uint8
    proprio: np.ndarray  # (N, T, P) float32
    features: np.ndarray  # (N, T, F) float32
    task_reward: np.ndarray  # (N, T) float32
    lengths: np.ndarray  # (N,) int32
    layout_seed: np.ndarray  # (N,) uint32
    init_state: SimState  # leaves (N, ...)
    privileged_actions: np.ndarray | None = None  # (N, T, 7) float32; D4PGfD only
    states: SimState | None = None  # leaves (N, T, ...); None in older datasets

    @property
    def num_demos(self) -> int:
        return int(self.lengths.shape[0])

    def take(self, indices) -> "Demos":
        """The demos at ``indices`` (a sequence of ints), in that order."""
        indices = np.asarray(indices, dtype=np.int64)
        return _tree_map(lambda x: x[indices], self)

    @staticmethod
    def concatenate(parts: list["Demos"]) -> "Demos":
        """Joins batches of demos along the demo axis."""
        leaves = [_flatten(p) for p in parts]
        keys = leaves[0].keys()
        return _unflatten({k: np.concatenate([leaf[k] for leaf in leaves]) for k in keys})


def _tree_map(fn, demos: Demos) -> Demos:
    return _unflatten({k: fn(v) for k, v in _flatten(demos).items()})


def _flatten(demos: Demos) -> dict[str, np.ndarray]:
    """The shard arrays of ``demos`` by name (optional ones only when present)."""
    arrays = {
        f.name: np.asarray(getattr(demos, f.name))
        for f in dataclasses.fields(Demos)
        if f.name not in _OPTIONAL
    }
    for f in dataclasses.fields(SimState):
        arrays[_INIT_PREFIX + f.name] = np.asarray(getattr(demos.init_state, f.name))
        if demos.states is not None:
            arrays[_STATES_PREFIX + f.name] = np.asarray(getattr(demos.states, f.name))
    if demos.privileged_actions is not None:
        arrays[_PRIVILEGED] = np.asarray(demos.privileged_actions)
    return arrays


def _sim_state(arrays: dict[str, np.ndarray], prefix: str) -> SimState | None:
    """The SimState stored under ``prefix``, or None when none is."""
    names = [f.name for f in dataclasses.fields(SimState)]
    missing = [prefix + n for n in names if prefix + n not in arrays]
    if len(missing) == len(names):
        return None
    if missing:
        raise DemoDatasetError(f"incomplete simulator state: {missing} missing")
    return SimState(**{n: arrays[prefix + n] for n in names})


def _unflatten(arrays: dict[str, np.ndarray]) -> Demos:
    plain = {f.name: arrays[f.name] for f in dataclasses.fields(Demos) if f.name not in _OPTIONAL}
    return Demos(
        **plain,
        init_state=_sim_state(arrays, _INIT_PREFIX),
        privileged_actions=arrays.get(_PRIVILEGED),
        states=_sim_state(arrays, _STATES_PREFIX),
    )


# ------------------------------------------------------------------ fingerprints, split
def physics_config(env_config: StackEnvConfig) -> dict:
    """The env config without its observation-only fields (image size and camera)."""
    config = dataclasses.asdict(env_config)
    for name in OBSERVATION_FIELDS:
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


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _field_specs(demos: Demos) -> dict[str, dict]:
    """Per-demo shape and dtype of every shard array."""
    return {
        name: {"shape": list(x.shape[1:]), "dtype": x.dtype.name}
        for name, x in sorted(_flatten(demos).items())
    }


# ----------------------------------------------------------------------------- writing
def _write_npz(path: Path, arrays: dict[str, np.ndarray], compresslevel: int) -> None:
    """Writes an .npz loadable by ``np.load`` whose bytes depend only on ``arrays``."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=compresslevel) as zf:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.ascontiguousarray(arrays[name]), allow_pickle=False)


def _write_atomic(path: Path, write) -> None:
    """Calls ``write(tmp_path)`` and renames the result to ``path``."""
    tmp = path.with_name(path.name + ".partial")
    write(tmp)
    os.replace(tmp, path)


def check_destination(path: str | os.PathLike, overwrite: bool) -> None:
    """Raises DemoDatasetError unless a dataset may be written at ``path``.

    A missing path is fine; an existing one only with ``overwrite`` and only when it is
    an empty directory or a demo dataset (never an unrelated directory or file).
    """
    path = Path(path)
    if not path.exists():
        return
    if not overwrite:
        raise DemoDatasetError(f"{path} already exists; pass --overwrite to replace it")
    if not path.is_dir() or (any(path.iterdir()) and not (path / MANIFEST).is_file()):
        raise DemoDatasetError(
            f"{path} exists and is not a demo dataset (no {MANIFEST}); refusing to replace it"
        )


class DatasetWriter:
    """Writes demos shard by shard; ``commit`` adds the manifest and publishes atomically.

    Use as a context manager: leaving the block without ``commit`` (e.g. on an error)
    removes the temporary directory and leaves the destination untouched.

    Args:
      path: destination directory.
      header: manifest entries describing the dataset (fingerprints, image size, ...).
      overwrite: replace an existing dataset at ``path``.
      shard_size: demos per shard file.
      compresslevel: zlib level of the shards (1 = fast, 9 = small).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        header: dict,
        overwrite: bool = False,
        shard_size: int = 64,
        compresslevel: int = 1,
    ):
        if shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {shard_size}")
        self.path = Path(path)
        check_destination(self.path, overwrite)
        self.header = dict(header)
        self.shard_size = shard_size
        self.compresslevel = compresslevel
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.tmp-", dir=self.path.parent))
        self._pending: list[Demos] = []
        self._shards: list[dict] = []
        self._fields: dict | None = None
        self._files: dict[str, dict] = {}
        self.num_demos = 0

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, *exc) -> None:
        if self._tmp.exists():
            shutil.rmtree(self._tmp)

    def add(self, demos: Demos) -> None:
        """Queues ``demos``; full shards are written at once."""
        fields = _field_specs(demos)
        if self._fields is None:
            self._fields = fields
        elif fields != self._fields:
            raise ValueError(f"demo arrays changed shape/dtype: {fields} != {self._fields}")
        self._pending.append(demos)
        self.num_demos += demos.num_demos
        while sum(d.num_demos for d in self._pending) >= self.shard_size:
            self._flush(self.shard_size)

    def _flush(self, count: int) -> None:
        pending = Demos.concatenate(self._pending)
        shard, rest = pending.take(range(count)), pending.take(range(count, pending.num_demos))
        self._pending = [rest] if rest.num_demos else []
        name = f"shard-{len(self._shards):05d}.npz"
        _write_atomic(
            self._tmp / name, lambda p: _write_npz(p, _flatten(shard), self.compresslevel)
        )
        data = (self._tmp / name).read_bytes()
        self._shards.append(
            {"file": name, "num_demos": count, "bytes": len(data), "sha256": _sha256(data)}
        )

    def add_file(self, name: str, data: bytes) -> None:
        """Adds a non-shard file (e.g. a preview), listed with its checksum in the manifest."""
        if name == MANIFEST or name.startswith("shard-") or Path(name).name != name:
            raise ValueError(f"invalid extra file name {name!r}")
        _write_atomic(self._tmp / name, lambda p: p.write_bytes(data))
        self._files[name] = {"bytes": len(data), "sha256": _sha256(data)}

    def commit(self, **extra) -> dict:
        """Writes the last shard and the manifest (with ``extra`` entries), then publishes.

        Returns:
          The manifest.
        """
        remaining = sum(d.num_demos for d in self._pending)
        if remaining:
            self._flush(remaining)
        if self.num_demos == 0:
            raise ValueError("no demos to write")
        manifest = {
            **self.header,
            **extra,
            "format": FORMAT,
            "version": VERSION,
            "num_demos": self.num_demos,
            "fields": self._fields,
            "shards": self._shards,
            "files": self._files,
        }
        text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
        _write_atomic(self._tmp / MANIFEST, lambda p: p.write_text(text))
        self._publish()
        return manifest

    def _publish(self) -> None:
        if not self.path.exists():
            os.rename(self._tmp, self.path)
            return
        # Two renames: if interrupted between them, the old dataset survives as `old`.
        old = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.old-", dir=self.path.parent))
        os.rename(self.path, old / "dataset")
        os.rename(self._tmp, self.path)
        shutil.rmtree(old)


# ----------------------------------------------------------------------------- loading
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
    required = (
        "scene_fingerprint",
        "image_size",
        "camera",
        "num_demos",
        "fields",
        "shards",
        "split",
    )
    missing = [k for k in required if k not in manifest]
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
    if _sha256(data) != entry["sha256"]:
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
      The demos, in dataset order.

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
            arrays.pop(_PRIVILEGED, None)
        parts.append(_unflatten(arrays))
    demos = Demos.concatenate(parts)
    if demos.num_demos != manifest["num_demos"]:
        raise DemoDatasetError(
            f"{root / MANIFEST}: shards hold {demos.num_demos} demos, manifest says "
            f"{manifest['num_demos']}"
        )
    if privileged_actions and demos.privileged_actions is None:
        raise DemoDatasetError(f"{root}: the dataset stores no {_PRIVILEGED}")
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
