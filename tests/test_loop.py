"""The fused training chunk: collection, replay, learning, resume, and the paper config."""

import dataclasses
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mjx_metamimic import configs
from mjx_metamimic import demos as demo_lib
from mjx_metamimic.demos import DemoBank
from mjx_metamimic.envs import warp_physics
from mjx_metamimic.envs.stack import GRIPPER_ACTION, PROPRIO_PARTS
from mjx_metamimic.replay import ReplayConfig
from mjx_metamimic.training import build, checkpoints
from mjx_metamimic.training.config import (
    ActorConfig,
    DemoSpec,
    LearnerConfig,
    RunConfig,
    TrainConfig,
)
from mjx_metamimic.training.feature_diagnostics import POSITIONS as FEATURE_POSITIONS
from mjx_metamimic.training.feature_diagnostics import feature_diagnostics

DEMO_STEPS = 24
NUM_ENVS = 4
STEPS_PER_CHUNK = 5


def synthetic_bank(env, num_demos: int, steps: int, seed: int = 0) -> DemoBank:
    """Demo-shaped rollouts of a smooth random policy (the loop's mechanics need no
    successful demos; the demonstrator has its own tests)."""
    keys = jax.random.split(jax.random.PRNGKey(seed), num_demos)
    states = jax.vmap(env.reset)(keys)
    directions = jax.random.uniform(jax.random.PRNGKey(seed + 1), (num_demos, 7), minval=-0.5)

    def step(states, _):
        next_states = jax.vmap(env.step)(states, directions)
        return next_states, (next_states.obs, next_states.reward)

    _, (obs, reward) = jax.lax.scan(step, states, None, length=steps - 1)
    first = jax.tree.map(lambda x: x[None], states.obs)
    obs = jax.tree.map(lambda a, b: jnp.swapaxes(jnp.concatenate([a, b]), 0, 1), first, obs)
    reward = jnp.swapaxes(jnp.concatenate([jnp.zeros((1, num_demos)), reward]), 0, 1)
    image = obs.get("pixels", jnp.zeros((num_demos, steps, 1, 1, 3), jnp.uint8))
    return DemoBank(
        frames=image,
        proprio=obs["proprio"],
        features=obs["features"],
        task_reward=reward,
        lengths=jnp.full((num_demos,), steps, jnp.int32),
        init_state=jax.vmap(env.sim_state)(states),
    )


def tiny_config(**changes) -> TrainConfig:
    base = configs.load(TrainConfig, "features")
    return dataclasses.replace(
        base,
        actors=ActorConfig(num_envs=NUM_ENVS, steps_per_chunk=STEPS_PER_CHUNK, noise_std=0.1),
        learner=dataclasses.replace(
            base.learner,
            batch_size=16,
            updates_per_chunk=2,
            train_task=True,  # both learners, whatever the shipped config trains
            success_fraction=0.0,  # uniform batches: tests that mix turn it on
            network=dataclasses.replace(
                base.learner.network, torso_hidden=(32,), head_hidden=(32,)
            ),
        ),
        replay=ReplayConfig(capacity=400, n_step=3, gamma=0.9, min_size=40),
        **changes,
    )


@pytest.fixture(scope="module")
def setup():
    base = tiny_config()  # guided grippers on half the envs, as the features config
    config = dataclasses.replace(
        base, actors=dataclasses.replace(base.actors, gripper_guided_fraction=0.5)
    )
    algo = build(config)
    bank = jax.jit(lambda: synthetic_bank(algo.env, 3, DEMO_STEPS))()
    init = jax.jit(algo.init)
    traces = []

    def counted_chunk(state, bank):
        traces.append(1)
        return algo.train_chunk(state, bank)

    chunk = jax.jit(counted_chunk)  # not donated here: tests reuse states
    return config, algo, bank, init, chunk, traces


def run_chunks(chunk, state, bank, n):
    metrics = []
    for _ in range(n):
        state, m = chunk(state, bank)
        metrics.append(jax.device_get(m))
    return state, metrics


def test_chunk_collects_stores_and_learns(setup):
    config, algo, bank, init, chunk, _ = setup
    state = init(jax.random.PRNGKey(0), bank)
    assert int(algo.replay.size(state.replay)) == 0
    state, metrics = run_chunks(chunk, state, bank, 3)
    per_chunk = NUM_ENVS * STEPS_PER_CHUNK
    assert [int(m["train/replay_size"]) for m in metrics] == [
        per_chunk,
        2 * per_chunk,
        3 * per_chunk,
    ]
    assert int(state.env_steps) == 3 * per_chunk
    # min_size (40) is reached after the second chunk: only then do updates run.
    assert [int(m["train/updates"]) for m in metrics] == [0, 2, 4]
    for m in metrics:
        for name, value in m.items():
            assert np.all(np.isfinite(value)), name
    assert float(metrics[-1]["train/imitation/critic_loss"]) > 0
    assert 0.0 <= float(metrics[-1]["train/actor/imitation_reward"]) <= 1.0


@pytest.mark.skipif(not warp_physics.warp_installed(), reason="warp-lang is not installed")
def test_chunk_runs_on_the_warp_engine():
    """The whole training chunk (actors, replay, both learners) on MuJoCo Warp: its FFI
    calls inside the scanned, vmapped chunk collect, store and learn as on the other engines."""
    base = tiny_config()
    config = dataclasses.replace(
        base, env=dataclasses.replace(base.env, impl="warp", warp_max_envs=NUM_ENVS)
    )
    algo = build(config)
    bank = jax.jit(lambda: synthetic_bank(algo.env, 3, DEMO_STEPS))()
    state = jax.jit(algo.init)(jax.random.PRNGKey(0), bank)
    state, metrics = run_chunks(jax.jit(algo.train_chunk), state, bank, 3)
    assert int(state.env_steps) == 3 * NUM_ENVS * STEPS_PER_CHUNK
    assert [int(m["train/updates"]) for m in metrics] == [0, 2, 4]
    for m in metrics:
        for name, value in m.items():
            assert np.all(np.isfinite(value)), name


def test_learning_changes_parameters(setup):
    config, algo, bank, init, chunk, _ = setup
    state = init(jax.random.PRNGKey(1), bank)
    before = jax.device_get(state.learners)
    state, _ = run_chunks(chunk, state, bank, 3)
    for name in ("imitation", "task"):
        diff = jax.tree.map(
            lambda a, b: float(jnp.max(jnp.abs(a - b))),
            before[name].actor_params,
            state.learners[name].actor_params,
        )
        assert max(jax.tree.leaves(diff)) > 0, name


def test_episodes_end_with_the_demo_and_restart(setup):
    config, algo, bank, init, chunk, _ = setup
    state = init(jax.random.PRNGKey(2), bank)
    seen_t = []
    for _ in range(7):  # 35 steps per env > one demo of 24 steps
        state, _ = chunk(state, bank)
        seen_t.append(np.asarray(state.t))
    seen_t = np.stack(seen_t)
    assert seen_t.max() <= DEMO_STEPS - 2  # the last transition reaches frame T-1
    assert np.any(np.diff(seen_t, axis=0) < 0)  # some env restarted a demo


def test_chunk_does_not_retrace(setup):
    # Every test in this module shares one compiled chunk: fresh, stepped and restored
    # states all hit the same compilation.
    config, algo, bank, init, chunk, traces = setup
    state = init(jax.random.PRNGKey(3), bank)
    run_chunks(chunk, state, bank, 3)
    assert len(traces) == 1


def test_resume_from_checkpoint_reproduces_next_metrics(setup, tmp_path: Path):
    config, algo, bank, init, chunk, traces = setup
    state = init(jax.random.PRNGKey(4), bank)
    state, _ = run_chunks(chunk, state, bank, 3)
    mgr = checkpoints.manager(tmp_path)
    checkpoints.save(mgr, 3, state)
    _, expected = run_chunks(chunk, state, bank, 2)

    fresh = init(jax.random.PRNGKey(99), bank)  # structure only
    step, restored = checkpoints.restore_latest(checkpoints.manager(tmp_path), fresh)
    assert step == 3
    _, resumed = run_chunks(chunk, restored, bank, 2)
    for a, b in zip(expected, resumed, strict=True):
        chex.assert_trees_all_equal(a, b)
    assert len(traces) == 1  # a restored state hits the chunk's one compilation


def test_restoring_a_checkpoint_that_does_not_fit_names_the_problem(tmp_path: Path):
    mgr = checkpoints.manager(tmp_path)
    checkpoints.save(mgr, 1, {"kernel": jnp.ones((3, 4)), "bias": jnp.zeros(4)})
    with pytest.raises(ValueError, match=r"checkpoint 1 in .* does not fit this run"):
        checkpoints.restore_latest(mgr, {"kernel": jnp.ones((5, 4)), "bias": jnp.zeros(4)})
    step, restored = checkpoints.restore_latest(
        mgr, {"kernel": jnp.zeros((3, 4)), "bias": jnp.ones(4)}
    )
    assert step == 1 and float(restored["kernel"].sum()) == 12.0


def test_checkpoints_name_their_arrays_and_keep_an_existing_step(tmp_path: Path):
    mgr = checkpoints.manager(tmp_path)
    state = {"learner": {"kernel": jnp.ones((3, 4)), "empty": jnp.zeros((0,))}, "key": [1.0]}
    checkpoints.save(mgr, 7, jax.tree.map(jnp.asarray, state))
    # A run resumed from step 7 saves step 7 again: the existing checkpoint is kept.
    checkpoints.save(mgr, 7, jax.tree.map(lambda x: jnp.asarray(x) * 0, state))
    tree = mgr.item_metadata(7).tree
    assert set(tree) == {"learner", "key"} and set(tree["learner"]) == {"kernel"}
    _, restored = checkpoints.restore_latest(mgr, jax.tree.map(jnp.zeros_like, state))
    assert float(restored["learner"]["kernel"].sum()) == 12.0
    assert restored["learner"]["empty"].shape == (0,)


def test_paper_config_builds_and_traces_at_tiny_scale():
    paper = configs.load(TrainConfig, "paper")
    config = dataclasses.replace(
        paper,
        env=dataclasses.replace(paper.env, impl="jax"),  # the engine "auto" picks on GPUs
        image_size=16,
        demos=dataclasses.replace(paper.demos, image_size=16),
        actors=dataclasses.replace(paper.actors, num_envs=2, steps_per_chunk=2),
        learner=dataclasses.replace(paper.learner, batch_size=2, updates_per_chunk=1),
        replay=ReplayConfig(capacity=64, n_step=3, min_size=8),
    )
    assert config.learner.network.torso == "paper"
    algo = build(config)
    bank = jax.eval_shape(lambda: synthetic_bank(algo.env, 2, 8))
    state = jax.eval_shape(algo.init, jax.random.PRNGKey(0), bank)
    new_state, metrics = jax.eval_shape(algo.train_chunk, state, bank)
    assert new_state.replay.experience.obs["pixels"].shape == (2, 32, 16, 16, 3)
    assert new_state.replay.experience.obs["pixels"].dtype == jnp.uint8
    assert "train/imitation/critic_loss" in metrics
    # Like the cpu config, it standardises the vectors joined to the conv features.
    assert config.learner.network.standardize_inputs
    actor_scales = new_state.learners["imitation"].actor_params["input_scales"]
    assert {leaf.shape for leaf in jax.tree.leaves(actor_scales)} == {(19,)}  # proprio


def feature_head_config(weight: float = 1.0) -> TrainConfig:
    """The cpu config at tiny size, with the feature-prediction head and keypoints."""
    cpu = configs.load(TrainConfig, "cpu")
    learner = dataclasses.replace(
        cpu.learner,
        batch_size=2,
        updates_per_chunk=1,
        network=dataclasses.replace(cpu.learner.network, keypoints=8),
        imitation=dataclasses.replace(cpu.learner.imitation, aux_features_weight=weight),
    )
    return dataclasses.replace(
        cpu,
        actors=dataclasses.replace(cpu.actors, num_envs=2, steps_per_chunk=2),
        learner=learner,
        replay=ReplayConfig(capacity=64, min_size=8),
    )


def test_cpu_config_with_feature_prediction_and_keypoints_traces():
    algo = build(feature_head_config())
    bank = jax.eval_shape(lambda: synthetic_bank(algo.env, 2, 8))
    state = jax.eval_shape(algo.init, jax.random.PRNGKey(0), bank)
    new_state, metrics = jax.eval_shape(algo.train_chunk, state, bank)
    # The replay keeps the features the auxiliary head predicts; the networks never read them.
    assert new_state.replay.experience.obs["features"].shape[-1] == 26
    assert "train/imitation/aux_features_loss" in metrics
    critic = new_state.learners["imitation"].critic_params
    assert critic["input_scales"]["aux_features"]["shift"].shape == (19 + 26,)
    encoder = critic["params"]["Encoder_0"]
    assert encoder["LayerNormMLP_0"]["Dense_0"]["kernel"].shape[0] == 2 * 8  # keypoints


def test_feature_diagnostics_score_a_head_that_predicts_the_mean_as_explaining_nothing():
    config = feature_head_config()
    algo = build(config)
    bank = synthetic_bank(algo.env, 2, 8)
    state = jax.jit(algo.init)(jax.random.PRNGKey(0), bank)
    # A head that predicts the demos' mean observation and mean goal whatever it sees.
    lookahead = config.actors.lookahead
    vectors = np.concatenate([bank.proprio, bank.features], -1)  # (N, T, V)
    obs_mean = vectors[:, : 8 - lookahead].mean((0, 1))
    goal_mean = vectors[:, lookahead:].mean((0, 1))
    critic = state.learners["imitation"].critic_params
    head = critic["params"]["aux_features"]["Dense_0"]
    head = {
        "kernel": jnp.zeros_like(head["kernel"]),
        "bias": jnp.concatenate([0 * obs_mean, goal_mean - obs_mean]),
    }
    scales = {"shift": jnp.asarray(obs_mean), "scale": jnp.ones_like(obs_mean)}
    critic = {
        "params": {**critic["params"], "aux_features": {"Dense_0": head}},
        "input_scales": {**critic["input_scales"], "aux_features": scales},
    }
    learners = {"imitation": state.learners["imitation"].replace(critic_params=critic)}
    rows = feature_diagnostics(algo, learners, bank)
    assert {(r["frame"], r["positions"]) for r in rows} == {
        (f, p) for f in ("observation", "goal") for p in FEATURE_POSITIONS
    }
    for row in rows:
        np.testing.assert_allclose(row["rmse_cm"], row["spread_cm"], rtol=1e-3)
        assert abs(row["explained"]) < 2e-3
    with pytest.raises(ValueError, match="aux_features_weight > 0"):
        feature_diagnostics(build(feature_head_config(0.0)), learners, bank)


def test_impossible_configs_are_rejected():
    with pytest.raises(ValueError, match="pixels_weight"):
        tiny_config(
            imitation_reward=dataclasses.replace(
                configs.load(TrainConfig, "features").imitation_reward, pixels_weight=0.5
            )
        )
    with pytest.raises(ValueError, match="num_envs"):
        dataclasses.replace(tiny_config(), actors=ActorConfig(num_envs=0))
    with pytest.raises(ValueError, match="gripper_guided_fraction"):
        dataclasses.replace(tiny_config(), actors=ActorConfig(gripper_guided_fraction=1.5))
    with pytest.raises(ValueError, match="guides none"):
        dataclasses.replace(
            tiny_config(), actors=ActorConfig(num_envs=4, gripper_guided_fraction=0.1)
        )
    with pytest.raises(ValueError, match="replay.min_size=2000 exceeds replay.capacity=100"):
        dataclasses.replace(tiny_config(), replay=ReplayConfig(capacity=100, min_size=2000))
    with pytest.raises(ValueError, match="inputs='pixels'"):
        dataclasses.replace(
            tiny_config(),
            learner=LearnerConfig(),  # pixels network, but the features config has no pixels
        )
    features_learner = tiny_config().learner
    no_pixels = "learner.imitation: random_shift needs a network that reads pixels"
    with pytest.raises(ValueError, match=no_pixels):
        dataclasses.replace(
            tiny_config(),
            learner=dataclasses.replace(
                features_learner,
                imitation=dataclasses.replace(features_learner.imitation, random_shift=2),
            ),
        )
    with pytest.raises(ValueError, match="learner.batch_size=16 exceeds replay.capacity=8"):
        dataclasses.replace(tiny_config(), replay=ReplayConfig(capacity=8, min_size=4))
    with pytest.raises(ValueError, match=r"learner.success_fraction=1.0 must be in \[0, 1\)"):
        dataclasses.replace(
            tiny_config(), learner=dataclasses.replace(features_learner, success_fraction=1.0)
        )
    with pytest.raises(ValueError, match="learner.imitation.bc_dim_scales=.*one factor per"):
        dataclasses.replace(
            tiny_config(),
            learner=dataclasses.replace(
                features_learner,
                imitation=dataclasses.replace(features_learner.imitation, bc_dim_scales=(1.0,)),
            ),
        )
    with pytest.raises(ValueError, match="learner.task.bc_held_dim_scales=.*one factor per"):
        dataclasses.replace(
            tiny_config(),
            learner=dataclasses.replace(
                features_learner,
                task=dataclasses.replace(features_learner.task, bc_held_dim_scales=(1.0, 0.0)),
            ),
        )
    with pytest.raises(ValueError, match="success_horizon must be >= 1"):
        dataclasses.replace(features_learner.task, success_horizon=0)
    with pytest.raises(ValueError, match="run.max_updates must be >= 0"):
        dataclasses.replace(tiny_config(), run=RunConfig(max_updates=-1))
    with pytest.raises(ValueError, match="demos.num_train=-1"):
        dataclasses.replace(tiny_config(), demos=DemoSpec(num_train=-1))
    with pytest.raises(ValueError, match="actors.num_envs=8 exceeds env.warp_max_envs=4"):
        dataclasses.replace(
            tiny_config(),
            actors=ActorConfig(num_envs=8),
            env=dataclasses.replace(tiny_config().env, impl="warp", warp_max_envs=4),
        )


def test_guided_envs_take_the_goals_gripper_command_and_the_others_the_policys(setup):
    config, algo, bank, init, chunk, _ = setup
    state, _ = chunk(init(jax.random.PRNGKey(5), bank), bank)
    steps = jax.device_get(  # the chunk's K stored steps of every env: leaves (E, K, ...)
        jax.tree.map(lambda x: x[:, :STEPS_PER_CHUNK], state.replay.experience)
    )
    extras = steps.extras
    goal = demo_lib.goal(bank, extras["demo_idx"], extras["t"] + config.actors.lookahead)
    goal_gap = goal["proprio"][..., PROPRIO_PARTS["finger_gap"]][..., 0]
    command = algo.env.gripper_command_for_gap(goal_gap)
    gripper = steps.action[..., GRIPPER_ACTION]
    guided = algo.imitation.num_guided
    assert guided == NUM_ENVS // 2
    np.testing.assert_allclose(gripper[:guided], command[:guided], atol=1e-6)
    assert np.all(gripper[guided:] != command[guided:])
