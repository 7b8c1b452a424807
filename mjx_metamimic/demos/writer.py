"""Writing a demo dataset (layout: ``format``) atomically and with deterministic bytes.

Shards and then the manifest are written under temporary names in a temporary sibling
directory (``.<name>.tmp-*``), which replaces the destination only when complete. An
existing dataset is replaced only with ``overwrite=True``: it is moved aside, the new one
renamed into place, then the old one deleted. A killed writer can leave a
``.<name>.tmp-*`` directory behind, never a half-written dataset.
"""

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from mjx_metamimic.demos.format import FORMAT, MANIFEST, VERSION, DemoDatasetError, Demos, flatten


def sha256(data: bytes) -> str:
    """The hex sha256 of ``data`` (as the manifest records files)."""
    return hashlib.sha256(data).hexdigest()


def _field_specs(demos: Demos) -> dict[str, dict]:
    """Per-demo shape and dtype of every shard array."""
    return {
        name: {"shape": list(x.shape[1:]), "dtype": x.dtype.name}
        for name, x in sorted(flatten(demos).items())
    }


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

    def __exit__(self, *_exc_info) -> None:
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
        _write_atomic(self._tmp / name, lambda p: _write_npz(p, flatten(shard), self.compresslevel))
        data = (self._tmp / name).read_bytes()
        self._shards.append(
            {"file": name, "num_demos": count, "bytes": len(data), "sha256": sha256(data)}
        )

    def add_file(self, name: str, data: bytes) -> None:
        """Adds a non-shard file (e.g. a preview), listed with its checksum in the manifest."""
        if name == MANIFEST or name.startswith("shard-") or Path(name).name != name:
            raise ValueError(f"invalid extra file name {name!r}")
        _write_atomic(self._tmp / name, lambda p: p.write_bytes(data))
        self._files[name] = {"bytes": len(data), "sha256": sha256(data)}

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
