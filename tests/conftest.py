"""Test configuration: the package's default XLA flags are set before JAX is imported, and
fixtures shared by several test files."""

import fcntl
import os
from pathlib import Path

import pytest

import mjx_metamimic  # noqa: F401  (must come before any jax import: sets XLA_FLAGS)
from mjx_metamimic.demos import RecordOptions, record_dataset

RECORDED_DEMOS = 40  # 36 train, 4 validation


@pytest.fixture(scope="session")
def recorded_demos(tmp_path_factory) -> Path:
    """A small dataset recorded by the scripted demonstrator (40 demos, seed 0, 8x8 frames),
    recorded once per test run: pytest-xdist workers share it through a file lock."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the directory all workers' temp dirs share
    path = root / "recorded-demos"
    with open(root / "recorded-demos.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (path / "manifest.json").exists():
            options = RecordOptions(
                out=path, num=RECORDED_DEMOS, seed=0, image_size=8, batch_size=RECORDED_DEMOS
            )
            record_dataset(options)
    return path
