"""Locating data shipped with the package: MJCF scenes (envs/) and run configs (train/)."""

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """Returns the directory of shipped data ``name`` ("envs" or "train").

    In a wheel the files live in ``mjx_metamimic/_data/<name>``; in a source checkout
    (editable install) they are the repository's top-level ``<name>/`` directory.
    """
    for candidate in (_PACKAGE_DIR / "_data" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"package data directory {name!r} not found next to {_PACKAGE_DIR}; reinstall mjx-metamimic"
    )
