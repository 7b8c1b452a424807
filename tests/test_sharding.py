"""The training mesh: how a config splits across devices, the learners' gradient sums, and
(in a process of its own with 4 forced host devices, ``tests/mesh_checks.py``) the chunk
on 4 devices against the same split on one device, and checkpoints moving between device
counts."""

import dataclasses
import json
import os
import socket
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mjx_metamimic  # noqa: F401  (default XLA flags before jax use)
from mjx_metamimic import configs
from mjx_metamimic.agents import D4PG, D4PGConfig
from mjx_metamimic.cli import main as cli_main
from mjx_metamimic.networks import NetworkConfig
from mjx_metamimic.replay import NStepBatch, NStepReplay
from mjx_metamimic.training import TrainConfig, distributed
from mjx_metamimic.training.sharding import mesh_devices, per_device_config

CLI = "import sys; from mjx_metamimic.cli import main; sys.exit(main(sys.argv[1:]))"


def features_on(devices: int, **overrides) -> TrainConfig:
    """The shipped ``features`` config on ``devices`` devices."""
    base = configs.load(TrainConfig, "features")
    return configs.from_dict(TrainConfig, {"mesh": {"devices": devices}, **overrides}, base=base)


def test_each_device_gets_an_equal_share_of_envs_batch_and_replay():
    config = features_on(4)
    local = per_device_config(config, 4)
    assert (local.actors.num_envs, local.learner.batch_size) == (8, 64)
    assert local.actors.gripper_guided_fraction == config.actors.gripper_guided_fraction
    whole = NStepReplay(config.replay, config.actors.num_envs)
    part = NStepReplay(local.replay, local.actors.num_envs)
    # The same steps per env row, and learning starts at the same fill level.
    assert (part.time_length, part.min_time_length) == (whole.time_length, whole.min_time_length)
    assert local.replay.capacity * 4 == whole.time_length * config.actors.num_envs
    assert per_device_config(config, 1) is config


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"actors": {"num_envs": 30}}, "actors.num_envs=30 does not split evenly"),
        ({"learner": {"batch_size": 250}}, "learner.batch_size=250 does not split evenly"),
        ({"mesh": {"devices": -1}}, "mesh.devices=-1 must be >= 0"),
    ],
)
def test_counts_that_do_not_split_are_config_errors(overrides, message):
    with pytest.raises(ValueError, match=message):
        configs.from_dict(TrainConfig, {"mesh": {"devices": 4}} | overrides)


def test_an_uneven_split_of_actor_kinds_is_refused():
    # 9 task envs of 36 would be 2.25 per device.
    config = features_on(
        4, actors={"num_envs": 36, "task_fraction": 0.25}, learner={"train_task": True}
    )
    with pytest.raises(ValueError, match="task-actor envs"):
        per_device_config(config, 4)


def test_more_devices_than_visible_is_refused_with_the_cpu_hint(capsys):
    visible = len(jax.devices())
    with pytest.raises(ValueError, match=f"mesh.devices={visible + 1} but {visible} cpu"):
        mesh_devices(features_on(visible + 1, actors={"num_envs": 32 * (visible + 1)}))
    with pytest.raises(SystemExit) as exit_:
        cli_main(["train", "--config", "features", "--mesh.devices", "3"])
    assert exit_.value.code == 2
    assert "across mesh.devices=3" in " ".join(capsys.readouterr().err.split())


@pytest.mark.parametrize("weighted", [False, True])
def test_gradient_sums_across_the_axis_equal_the_whole_batch_update(weighted):
    """4 members each updating on a quarter of a batch, summing along the axis, take the
    step the whole batch takes on one learner (no target noise: it is drawn per member)."""
    config = D4PGConfig(
        stream="r",
        network=NetworkConfig(inputs="features", torso_hidden=(32,), head_hidden=(32,)),
        critic="scalar",
        num_critics=2,
    )
    whole, split = D4PG(config, 2), D4PG(config, 2, axis_name="data")
    state = whole.init(jax.random.key(0), {"proprio": jnp.zeros(3)})
    keys = jax.random.split(jax.random.key(1), 4)
    obs = {"proprio": jax.random.normal(keys[0], (16, 3))}
    batch = NStepBatch(
        obs=obs,
        action=jax.random.uniform(keys[1], (16, 2), minval=-1, maxval=1),
        extras={},
        returns={"r": jax.random.normal(keys[2], (16,))},
        discounts={"r": jnp.full((16,), 0.9)},
        next_obs=obs,
        next_extras={},
    )
    weights = jnp.arange(16.0) % 3 if weighted else None  # some samples weigh 0
    expected, expected_metrics = jax.jit(whole.update)(state, batch, weights=weights)

    quarters = jax.tree.map(lambda x: x.reshape(4, 4, *x.shape[1:]), (batch, weights))
    update = jax.vmap(split.update, (None, 0, None, None, 0), axis_name="data")
    states, metrics = jax.jit(update)(state, *quarters[:1], None, None, quarters[1])
    for a, b in zip(jax.tree.leaves(states), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(a[0], b, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(a[3], b, rtol=1e-5, atol=1e-6)  # every member alike
    for name, value in expected_metrics.items():
        np.testing.assert_allclose(metrics[name][0], value, rtol=1e-5, atol=1e-6, err_msg=name)


def test_checkpoints_move_between_device_counts(run_mesh_checks, recorded_demos, tmp_path):
    """``tests/mesh_checks.py checkpoints`` with 4 forced host devices: checkpoints 4 -> 1
    and 1 -> 4 devices restore exactly and train on; ``bench scaling`` at tiny size."""
    run_mesh_checks("checkpoints", recorded_demos, tmp_path)


def test_per_device_config_keeps_the_run_fields():
    config = features_on(2, run={"max_updates": 7})
    local = per_device_config(config, 2)
    assert local.run == config.run and local.learner.network == config.learner.network
    assert dataclasses.replace(local, mesh=config.mesh).mesh.devices == 2


def test_two_processes_train_one_run_and_resume_it(recorded_demos, tmp_path):
    """Two processes (2 forced host devices each) joined by ``JAX_COORDINATOR_ADDRESS``
    train one run on a 4-device mesh: process 0 writes the run directory, process 1 its
    own logs under ``process-1/``, both write the checkpoints; then both resume it."""
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        port = probe.getsockname()[1]
    options = [
        "--config", "features", "--mesh.devices", "0", "--demos.path", str(recorded_demos),
        "--demos.num", "40", "--demos.image-size", "16", "--demos.settle-steps", "10",
        "--actors.num-envs", "8", "--learner.batch-size", "16",
        "--learner.updates-per-chunk", "2", "--replay.capacity", "2000",
        "--replay.min-size", "80", "--run.max-updates", "6", "--run.log-every", "1",
        "--run.checkpoint-every", "2", "--run.video-demos", "0",
        "--run.out-dir", str(tmp_path), "--run.no-compilation-cache",
    ]  # fmt: skip

    def run_both(argv: list[str], port: int) -> list[subprocess.CompletedProcess]:
        launched = []
        for index in range(2):
            env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
                   "JAX_COORDINATOR_ADDRESS": f"localhost:{port}", "JAX_NUM_PROCESSES": "2",
                   "JAX_PROCESS_ID": str(index)}  # fmt: skip
            command = [sys.executable, "-c", CLI, "train", *argv]
            launched.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                             stderr=subprocess.STDOUT, text=True))  # fmt: skip
        outputs = [p.communicate(timeout=600)[0] for p in launched]
        for p, out in zip(launched, outputs, strict=True):
            assert p.returncode == 0, out[-3000:]
        return outputs

    outputs = run_both(options, port)
    assert "mesh: 4 cpu devices" in outputs[0]
    (run_dir,) = [d for d in tmp_path.iterdir() if d.name.startswith("features-")]
    assert {"config.json", "metrics.csv", "eval.json", "totals.json"} <= {
        f.name for f in run_dir.iterdir()
    }
    assert (run_dir / "process-1" / "metrics.csv").exists()
    assert not (run_dir / "process-1" / "config.json").exists()
    totals = json.loads((run_dir / "totals.json").read_text())
    assert totals["updates"] == 6
    run_both(["--resume", str(run_dir)], port + 1 if port < 65535 else port - 1)
    steps = np.loadtxt(run_dir / "metrics.csv", delimiter=",", skiprows=1, usecols=0)
    assert np.all(np.diff(steps) > 0)
    assert steps[-1] == json.loads((run_dir / "totals.json").read_text())["env_steps"]
    assert steps[-1] == totals["env_steps"] + 80  # one more chunk of 8 envs x 10 steps


def test_a_coordinator_without_process_count_and_index_is_named(monkeypatch):
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "localhost:1234")
    monkeypatch.delenv("JAX_NUM_PROCESSES", raising=False)
    monkeypatch.setenv("JAX_PROCESS_ID", "0")
    with pytest.raises(ValueError, match="JAX_COORDINATOR_ADDRESS is set but JAX_NUM_PROCESSES"):
        distributed.initialize_from_env()


def test_bench_memory_splits_the_replay_across_devices(tmp_path):
    from mjx_metamimic.bench import memory_bench

    out = tmp_path / "memory.json"
    memory_bench.main(["--config", "features", "--devices", "1", "2", "--no-update-memory",
                       "--out", str(out)])  # fmt: skip
    one, two = json.loads(out.read_text())["rows"]
    assert (one["envs"], two["envs"], two["batch"]) == (32, 16, 128)
    np.testing.assert_allclose(two["replay_gib"] * 2, one["replay_gib"], rtol=1e-3)
    assert two["learners_gib"] == one["learners_gib"] > 0
