"""The demo dataset: deterministic bytes, exact restore and replay, validated loading
that names the bad file and changes nothing on disk, atomic (over)writes, the recording
options and their env config, the command, the DemoBank."""

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import imageio.v3 as iio
import jax
import numpy as np
import pytest

import mjx_metamimic  # noqa: F401  (default XLA flags before jax use)
from mjx_metamimic import demos as D
from mjx_metamimic import envs
from mjx_metamimic.cli import demos as demos_command
from mjx_metamimic.demos import (
    MANIFEST,
    PREVIEW_FILE,
    DatasetWriter,
    Demos,
    RecordOptions,
    split_indices,
)
from mjx_metamimic.demos.record import header
from mjx_metamimic.training.config import DemoSpec
from mjx_metamimic.training.setup import check_demos_match

NUM, IMAGE, BATCH, SHARD = 16, 16, 16, 6


def options_for(out: Path, **overrides) -> RecordOptions:
    fields = dict(
        out=out,
        num=NUM,
        seed=0,
        image_size=IMAGE,
        batch_size=BATCH,
        shard_size=SHARD,
        validation_fraction=0.25,
        preview=4,
    )
    return RecordOptions(**{**fields, **overrides})


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """sha256 and mtime of every file under ``root``."""
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def recorder(demo_recorder):
    return demo_recorder  # conftest's: built from the same env, max_steps and batch size


@pytest.fixture(scope="module")
def dataset(recorder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demos") / "ds"
    manifest = D.record_dataset(options_for(out), recorder=recorder)
    assert manifest["num_demos"] == NUM
    return out


def test_same_seed_gives_identical_bytes(dataset, recorder, tmp_path):
    again = tmp_path / "again"
    D.record_dataset(options_for(again), recorder=recorder)
    first, second = snapshot(dataset), snapshot(again)
    assert sorted(first) == sorted(second)
    assert {k: v[0] for k, v in first.items()} == {k: v[0] for k, v in second.items()}


def test_training_refuses_a_dataset_generated_with_other_settings(dataset):
    spec = DemoSpec(path=dataset, num=NUM, seed=0, image_size=IMAGE)
    check_demos_match(spec)  # the settings it was generated with
    with pytest.raises(ValueError, match=r"demos.num=64 \(the dataset's: 16\)") as error:
        check_demos_match(dataclasses.replace(spec, num=64, settle_steps=30))
    assert "demos.settle_steps=30 (the dataset's: 10)" in str(error.value)


def test_manifest_and_success(dataset):
    manifest = json.loads((dataset / MANIFEST).read_text())
    assert manifest["image_size"] == [IMAGE, IMAGE] and manifest["camera"] == "front"
    assert manifest["num_demos"] == NUM
    assert len(manifest["shards"]) == -(-NUM // SHARD)
    assert manifest["summary"]["success_rate"] >= 15 / 16
    split = manifest["split"]
    assert sorted(split["train"] + split["validation"]) == list(range(NUM))
    assert len(split["validation"]) == 4
    gif = iio.imread(dataset / PREVIEW_FILE)
    assert gif.shape[1:3] == (2 * IMAGE, 2 * IMAGE)


def test_load_splits_and_privileged_actions(dataset):
    config = envs.StackEnvConfig(image_size=IMAGE)
    everything = D.load(dataset, env_config=config, image_size=(IMAGE, IMAGE), camera="front")
    assert D.load(dataset, env_config=envs.StackEnvConfig()).num_demos == NUM  # features only
    assert everything.num_demos == NUM and everything.privileged_actions is None
    assert everything.frames.shape == (NUM, 200, IMAGE, IMAGE, 3)
    assert everything.frames.dtype == np.uint8
    train, val = D.load(dataset, "train"), D.load(dataset, "validation")
    assert train.num_demos + val.num_demos == NUM
    assert not set(train.layout_seed.tolist()) & set(val.layout_seed.tolist())
    assert D.load(dataset, "train", max_demos=3).num_demos == 3
    with_actions = D.load(dataset, privileged_actions=True)
    assert with_actions.privileged_actions.shape == (NUM, 200, 7)
    for i, length in enumerate(everything.lengths):
        assert everything.task_reward[i, length - 1] == 1.0  # ends stacked
        # Padding repeats the last valid step.
        np.testing.assert_array_equal(
            everything.frames[i, length:],
            everything.frames[i, length - 1 : length].repeat(200 - length, 0),
        )


def test_reset_to_renders_first_frame_exactly(dataset, recorder):
    demos = D.load(dataset)
    env = recorder.env

    @jax.jit
    @jax.vmap
    def first_frame(key, sim_state):
        return env.reset_to(key, sim_state).obs["pixels"]

    keys = jax.random.split(jax.random.PRNGKey(0), demos.num_demos)
    frames = np.asarray(first_frame(keys, demos.init_state))
    np.testing.assert_array_equal(frames, demos.frames[:, 0])


def test_replaying_privileged_actions_reproduces_demo(dataset, recorder):
    demos = D.load(dataset, privileged_actions=True)
    replay = jax.tree.map(np.asarray, recorder.replay(demos.init_state, demos.privileged_actions))
    for i, length in enumerate(demos.lengths):
        np.testing.assert_array_equal(replay.frames[i, :length], demos.frames[i, :length])
        np.testing.assert_array_equal(replay.proprio[i, :length], demos.proprio[i, :length])
        np.testing.assert_array_equal(replay.features[i, :length], demos.features[i, :length])
        np.testing.assert_array_equal(replay.task_reward[i, :length], demos.task_reward[i, :length])


def test_states_along_the_demo_restore_its_observations(dataset, recorder):
    demos = D.load(dataset)
    assert demos.states.qpos.shape == (NUM, 200, *demos.init_state.qpos.shape[1:])
    np.testing.assert_array_equal(demos.states.qpos[:, 0], demos.init_state.qpos)
    env = recorder.env
    idx = np.arange(NUM)
    t = (demos.lengths * 2) // 3  # mid-demo, usually while carrying a block

    @jax.jit
    @jax.vmap
    def observe(sim_state):
        return env.reset_to(jax.random.PRNGKey(0), sim_state).obs

    bank = D.DemoBank.from_demos(demos)
    obs = jax.device_get(observe(D.states_at(bank, idx, t)))
    np.testing.assert_array_equal(obs["proprio"], demos.proprio[idx, t])
    np.testing.assert_allclose(obs["features"], demos.features[idx, t], atol=1e-5)


def test_datasets_without_states_still_load(dataset, tmp_path):
    manifest = json.loads((dataset / MANIFEST).read_text())
    header = {k: manifest[k] for k in ("scene_fingerprint", "image_size", "camera")}
    old = tiny_demos(dataset, 2).replace(states=None)
    with DatasetWriter(tmp_path / "old", header) as writer:
        writer.add(old)
        writer.commit(split=split_indices(2, 0.5, 0))
    loaded = D.load(tmp_path / "old")
    assert loaded.states is None and loaded.num_demos == 2
    with pytest.raises(ValueError, match="no per-step simulator states"):
        D.states_at(D.DemoBank.from_demos(loaded), np.int32(0), np.int32(1))


def test_bank_sample_and_goal(dataset):
    demos = D.load(dataset, "train")
    bank = D.DemoBank.from_demos(demos)
    assert bank.privileged_actions is None and bank.frames.dtype == np.uint8
    # One record type: on device it keeps everything but the host-only layout seeds.
    assert D.DemoBank is Demos and isinstance(bank.frames, jax.Array)
    assert bank.layout_seed is None and demos.layout_seed is not None
    assert (bank.num_demos, bank.max_steps) == (demos.num_demos, 200)

    @jax.jit
    def sample_goals(bank, key):
        idx, t = D.sample(bank, key, 64)
        return idx, t, D.goal(bank, idx, t + 1), D.init_states(bank, idx)

    idx, t, goal, init = sample_goals(bank, jax.random.PRNGKey(0))
    idx, t = np.asarray(idx), np.asarray(t)
    assert np.all((0 <= t) & (t < demos.lengths[idx]))
    want = np.minimum(t + 1, demos.lengths[idx] - 1)
    np.testing.assert_array_equal(goal["pixels"], demos.frames[idx, want])
    np.testing.assert_array_equal(goal["proprio"], demos.proprio[idx, want])
    np.testing.assert_array_equal(goal["features"], demos.features[idx, want])
    np.testing.assert_array_equal(init.qpos, demos.init_state.qpos[idx])
    # Steps past the end clip to the last step; scalars work too.
    last = D.goal(bank, np.int32(0), np.int32(10_000))
    np.testing.assert_array_equal(last["proprio"], demos.proprio[0, demos.lengths[0] - 1])


# ---------------------------------------------------------------- recording options
def test_record_options_carry_their_env_config(dataset, tmp_path):
    physics = envs.StackEnvConfig(block_yaw=0.1)
    options = options_for(tmp_path / "ds", env=physics)
    recorder = D.build_recorder(options)
    assert recorder.env.config == dataclasses.replace(physics, image_size=IMAGE, camera="front")
    info = header(options, recorder)
    assert info["env_config"] == D.physics_config(physics)
    assert info["scene_fingerprint"] == D.scene_fingerprint(physics)
    assert info["scene_fingerprint"] != D.scene_fingerprint(envs.StackEnvConfig())
    # The engine and its buffer sizes step the same physics: the same dataset serves them.
    engine = dataclasses.replace(physics, impl="c", warp_max_envs=4)
    assert D.scene_fingerprint(engine) == D.scene_fingerprint(physics)
    # A dataset with that header loads for that env config only.
    with DatasetWriter(options.out, info) as writer:
        writer.add(tiny_demos(dataset, 2))
        writer.commit(split=split_indices(2, 0.5, 0))
    assert D.load(options.out, env_config=recorder.env.config).num_demos == 2
    with pytest.raises(D.DemoDatasetError, match=r"env config fields differ: \['block_yaw'\]"):
        D.load(options.out, env_config=envs.StackEnvConfig(image_size=IMAGE))


def test_record_dataset_refuses_bad_options_and_other_recorders(recorder, tmp_path):
    with pytest.raises(ValueError, match="invalid recording options: need num >= 1"):
        D.record_dataset(options_for(tmp_path / "a", num=0), recorder=recorder)
    with pytest.raises(ValueError, match="recorder was built from other"):
        D.record_dataset(options_for(tmp_path / "b", max_steps=100), recorder=recorder)
    other_env = options_for(tmp_path / "c", env=envs.StackEnvConfig(block_yaw=0.1))
    with pytest.raises(ValueError, match="recorder was built from other"):
        D.record_dataset(other_env, recorder=recorder)
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------- corrupt datasets
def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


def _nan_with_valid_checksum(path: Path) -> None:
    """Rewrites a shard with a NaN in proprio and a manifest that matches the new file."""
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["proprio"][0, 3, 2] = np.nan
    np.savez(path, **arrays)
    manifest_path = path.parent / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    data = path.read_bytes()
    for entry in manifest["shards"]:
        if entry["file"] == path.name:
            entry.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    manifest_path.write_text(json.dumps(manifest))


def _edit_manifest(**changes):
    def edit(path: Path) -> None:
        manifest = json.loads((path.parent / MANIFEST).read_text())
        manifest.update(changes)
        (path.parent / MANIFEST).write_text(json.dumps(manifest))

    return edit


CORRUPTIONS = {
    "missing shard": (lambda p: p.unlink(), "shard-00001.npz", "missing shard"),
    "checksum mismatch": (_flip_byte, "shard-00001.npz", "checksum mismatch"),
    "truncated file": (_truncate, "shard-00001.npz", "truncated"),
    "nan": (_nan_with_valid_checksum, "shard-00001.npz", "NaN"),
    "unknown version": (_edit_manifest(version=99), MANIFEST, "unknown format version 99"),
    "missing manifest": (lambda p: (p.parent / MANIFEST).unlink(), MANIFEST, "missing manifest"),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_corrupt_dataset_raises_and_changes_nothing(dataset, tmp_path, case):
    corrupt, file_name, problem = CORRUPTIONS[case]
    root = tmp_path / "ds"
    shutil.copytree(dataset, root)
    corrupt(root / "shard-00001.npz")
    before = snapshot(root)
    with pytest.raises(D.DemoDatasetError, match=problem) as error:
        D.load(root)
    assert file_name in str(error.value)
    assert snapshot(root) == before


@pytest.mark.parametrize(
    "request_, problem",
    [
        ({"image_size": (32, 32)}, "image size 16x16 does not match the requested 32x32"),
        ({"camera": "side"}, "camera 'front' does not match"),
        ({"env_config": envs.StackEnvConfig(image_size=32)}, "image size 16x16 does not match"),
        (
            {"env_config": envs.StackEnvConfig(block_yaw=0.1)},
            r"wrong scene fingerprint \(env config fields differ: \['block_yaw'\]\)",
        ),
    ],
)
def test_mismatched_request_raises_and_changes_nothing(dataset, request_, problem):
    before = snapshot(dataset)
    with pytest.raises(D.DemoDatasetError, match=problem) as error:
        D.load(dataset, **request_)
    assert MANIFEST in str(error.value)
    assert snapshot(dataset) == before


# ---------------------------------------------------------------- atomic (over)writes
def tiny_demos(dataset: Path, n: int) -> Demos:
    return D.load(dataset, privileged_actions=True, max_demos=n)


def test_existing_dataset_needs_overwrite(dataset, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(dataset, root)
    before = snapshot(root)
    with pytest.raises(D.DemoDatasetError, match="already exists; pass --overwrite"):
        DatasetWriter(root, {"fingerprint": "x"})
    assert demos_command.main(["--out", str(root), "--num", "2"]) == 1  # refused before recording
    assert snapshot(root) == before
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # no temporary leftovers


def test_overwrite_replaces_atomically(dataset, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(dataset, root)
    manifest = json.loads((root / MANIFEST).read_text())
    header = {k: manifest[k] for k in ("scene_fingerprint", "image_size", "camera")}
    demos = tiny_demos(dataset, 3)
    # A failure while writing leaves the old dataset untouched.
    before = snapshot(root)
    with pytest.raises(RuntimeError), DatasetWriter(root, header, overwrite=True) as writer:
        writer.add(demos)
        raise RuntimeError("interrupted")
    assert snapshot(root) == before
    with DatasetWriter(root, header, overwrite=True, shard_size=2) as writer:
        writer.add(demos)
        writer.commit(split=split_indices(3, 0.34, 0))
    replaced = D.load(root, privileged_actions=True)
    assert replaced.num_demos == 3
    np.testing.assert_array_equal(replaced.frames, demos.frames)
    assert sorted(p.name for p in root.iterdir()) == [
        MANIFEST,
        "shard-00000.npz",
        "shard-00001.npz",
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


def test_command_rejects_bad_options(tmp_path):
    out = tmp_path / "ds"
    assert demos_command.main(["--out", str(out), "--num", "0"]) == 2
    assert demos_command.main(["--out", str(out), "--validation-fraction", "1.0"]) == 2
    with pytest.raises(SystemExit) as exit_:
        demos_command.main(["--out", str(out), "--env.control-dt", "-1"])
    assert exit_.value.code == 2
    assert not out.exists()


def test_refuses_to_replace_a_non_dataset(tmp_path):
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("precious")
    with pytest.raises(D.DemoDatasetError, match="not a demo dataset"):
        DatasetWriter(other, {}, overwrite=True)
    assert (other / "keep.txt").read_text() == "precious"
