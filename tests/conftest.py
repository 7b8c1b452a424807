"""Test configuration: the package's default XLA flags are set before JAX is imported, and
fixtures shared by several test files."""

import dataclasses
import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mjx_metamimic  # noqa: F401  (must come before any jax import: sets XLA_FLAGS)
from mjx_metamimic import configs
from mjx_metamimic.demos import RecordOptions, build_recorder, record_dataset
from mjx_metamimic.demos.generate import Recorder
from mjx_metamimic.training.config import DemoSpec, TrainConfig

RECORDED_DEMOS = 40  # 36 train, 4 validation
# One recorder serves every test that records (its compilation is the expensive part):
# 16x16 frames, 200 steps, 16 episodes per compiled call.
RECORDER_OPTIONS = dict(image_size=16, batch_size=16, max_steps=200)


@pytest.fixture(scope="session")
def demo_recorder() -> Recorder:
    """The scripted demonstrator's recorder with ``RECORDER_OPTIONS`` (one per worker)."""
    return build_recorder(RecordOptions(out=Path("unused"), **RECORDER_OPTIONS))


@pytest.fixture(scope="session")
def recorded_demos(tmp_path_factory, demo_recorder) -> Path:
    """A small dataset recorded by the scripted demonstrator (40 demos, seed 0, 16x16
    frames), recorded once per test run: pytest-xdist workers share it through a file
    lock."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the directory all workers' temp dirs share
    path = root / "recorded-demos"
    with open(root / "recorded-demos.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (path / "manifest.json").exists():
            options = RecordOptions(out=path, num=RECORDED_DEMOS, seed=0, **RECORDER_OPTIONS)
            record_dataset(options, recorder=demo_recorder)
    return path


@pytest.fixture
def tiny_features(recorded_demos):
    """A factory: the shipped ``features`` config on the recorded demos at tiny sizes (4
    envs, batch 16, 2 updates per chunk, 8 updates in all; no video, no compilation cache),
    writing runs under the directory it is given."""

    def make(out_dir: Path) -> TrainConfig:
        base = configs.load(TrainConfig, "features")
        base = dataclasses.replace(base, demos=DemoSpec(path=recorded_demos, num=40, image_size=16))
        overrides = {
            "actors": {"num_envs": 4},
            "learner": {"batch_size": 16, "updates_per_chunk": 2},
            "replay": {"capacity": 2000, "min_size": 80},
            "run": {"max_updates": 8, "log_every": 1, "eval_every": 0, "checkpoint_every": 0,
                    "video_demos": 0, "out_dir": str(out_dir), "compilation_cache": False},
        }  # fmt: skip
        return configs.from_dict(TrainConfig, overrides, base=base)

    return make


@pytest.fixture
def run_mesh_checks():
    """Runs ``tests/mesh_checks.py WHICH DEMOS OUT`` in a process of its own with 4 forced
    host devices (JAX fixes its device count when it starts) and asserts it passed."""

    def run(which: str, demos: Path, out: Path) -> None:
        script = Path(__file__).parent / "mesh_checks.py"
        result = subprocess.run(
            [sys.executable, str(script), which, str(demos), str(out)],
            capture_output=True,
            text=True,
            env={**os.environ, "XLA_FLAGS": ""},
            timeout=900,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert "mesh checks passed" in result.stdout

    return run
