"""``bench train``: every variant does the same work per chunk; the results are complete.

MJX physics is swapped for a stand-in here (compiling it for each of the benchmark's
jitted functions would take minutes on CPU); the benchmark's machinery, the loop, the
replay and the learners are the real ones.
"""

import dataclasses
import json

import jax
import jax.numpy as jnp
import pytest
from mujoco import mjx
from rich.console import Console

from mjx_metamimic import configs
from mjx_metamimic.bench import train_bench
from mjx_metamimic.demos import DemoBank
from mjx_metamimic.replay import ReplayConfig
from mjx_metamimic.training import build
from mjx_metamimic.training.config import ActorConfig, TrainConfig

NUM_ENVS, STEPS, UPDATES = 2, 3, 2


def tiny_config() -> TrainConfig:
    base = configs.load(TrainConfig, "features")
    return dataclasses.replace(
        base,
        actors=ActorConfig(num_envs=NUM_ENVS, steps_per_chunk=STEPS),
        learner=dataclasses.replace(
            base.learner,
            batch_size=8,
            updates_per_chunk=UPDATES,
            train_task=True,  # both learners, whatever the shipped config trains
            network=dataclasses.replace(
                base.learner.network, torso_hidden=(16,), head_hidden=(16,)
            ),
        ),
        # min_size needs 7 steps per row: the replay is only ready after 3 chunks, so
        # the benchmark must prefill it.
        replay=ReplayConfig(capacity=200, n_step=3, gamma=0.9, min_size=14),
    )


def reset_bank(env, num_demos: int, steps: int) -> DemoBank:
    """Demos that stay at their reset state (the benchmark needs shapes, not skill)."""
    states = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(0), num_demos))
    tile = lambda x: jnp.repeat(x[:, None], steps, axis=1)
    return DemoBank(
        frames=jnp.zeros((num_demos, steps, 1, 1, 3), jnp.uint8),
        proprio=tile(states.obs["proprio"]),
        features=tile(states.obs["features"]),
        task_reward=jnp.zeros((num_demos, steps)),
        lengths=jnp.full((num_demos,), steps, jnp.int32),
        init_state=jax.vmap(env.sim_state)(states),
    )


def stand_in_step(model, data):
    """Advances time and moves the joints with the controls: cheap to compile."""
    nu = min(data.ctrl.shape[0], data.qvel.shape[0])
    qvel = data.qvel.at[:nu].set(data.ctrl[:nu])
    return data.replace(time=data.time + model.opt.timestep, qvel=qvel)


@pytest.fixture(scope="module")
def result():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mjx, "step", stand_in_step)
        for name in ("forward", "kinematics", "camlight"):
            patch.setattr(mjx, name, lambda model, data: data)
        config = tiny_config()
        bank = jax.jit(lambda: reset_bank(build(config).env, 2, 8))()
        args = train_bench.TrainBenchArgs(configs=("tiny",), seconds=0.0, rounds=1)
        return train_bench.benchmark_config(config, bank, args, Console(quiet=True))


def test_every_variant_does_the_same_work_per_chunk(result):
    assert result["prefill_chunks"] >= 3  # the replay was filled before timing
    for name in train_bench.VARIANTS:
        v = result["variants"][name]
        assert v["chunks"] >= 2, name
        assert v["env_steps_per_chunk"] == NUM_ENVS * STEPS, name
        assert v["updates_per_chunk"] == UPDATES, name  # learning ran in every chunk
        assert v["env_steps_per_s"] == pytest.approx(NUM_ENVS * STEPS / v["seconds_per_chunk"])
        assert v["updates_per_s"] == pytest.approx(UPDATES / v["seconds_per_chunk"])


def test_results_hold_ratios_and_shares(result):
    json.dumps(result)  # the JSON file's content
    fused = result["variants"]["one-jit"]["seconds_per_chunk"]
    for name in ("split", "host"):
        expected = result["variants"][name]["seconds_per_chunk"] / fused
        assert result["speedup_of_one_jit"][name] == pytest.approx(expected)
        assert result["median_round_speedup_of_one_jit"][name] > 0
    components = result["components"]
    assert list(components) == list(train_bench.COMPONENTS)
    assert components["rendering"]["seconds_per_chunk"] == 0.0  # features: no pixels
    for name in ("physics", "replay", "learning"):
        assert components[name]["seconds_per_chunk"] > 0, name
    assert sum(c["share"] for c in components.values()) == pytest.approx(1.0)
    assert result["components_sum_over_one_jit"] > 0
