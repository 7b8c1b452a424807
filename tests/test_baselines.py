"""Baseline switches: task actors, task-only D4PG, the demo curriculum and D4PGfD."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_loop import tiny_config

from mjx_metamimic import demos as demo_lib
from mjx_metamimic.agents import D4PG, D4PGConfig
from mjx_metamimic.demos import DemoBank
from mjx_metamimic.envs.stack import PROPRIO_PARTS
from mjx_metamimic.networks import NetworkConfig
from mjx_metamimic.replay import NStepBatch
from mjx_metamimic.training import build, gripper_diagnostics, task_diagnostics
from mjx_metamimic.training.video import ImitationVideo, TaskVideo

DEMO_LENGTHS = (24, 18, 12)
STEPS_PER_CHUNK = 5
SUCCESS_HORIZON = 6
DISTILLING = D4PGConfig(stream="task", bc_weight=1.0, bc_target="imitation")


def recorded_bank(env, seed: int = 0) -> DemoBank:
    """Rollouts of a random policy recorded like demos: observations, simulator states and
    actions at every step (the curriculum and D4PGfD need the last two); demos shorter than
    the recording are padded with later steps, which no consumer may use."""
    num, steps = len(DEMO_LENGTHS), max(DEMO_LENGTHS)
    first = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(seed), num))
    actions = jax.random.uniform(jax.random.PRNGKey(seed + 1), (steps, num, 7), minval=-1.0)

    def step(states, action):
        recorded = (states.obs, states.reward, jax.vmap(env.sim_state)(states))
        return jax.vmap(env.step)(states, action), recorded

    _, (obs, reward, sim) = jax.lax.scan(step, first, actions)
    obs, reward, sim, actions = jax.tree.map(
        lambda x: jnp.swapaxes(x, 0, 1), (obs, reward, sim, actions)
    )
    return DemoBank(
        frames=jnp.zeros((num, steps, 1, 1, 3), jnp.uint8),
        proprio=obs["proprio"],
        features=obs["features"],
        task_reward=reward,
        lengths=jnp.asarray(DEMO_LENGTHS, jnp.int32),
        init_state=jax.tree.map(lambda x: x[:, 0], sim),
        privileged_actions=actions,
        states=sim,
    )


def baseline_config(num_envs=4, actors=None, min_size=40, **learner):
    """The tiny features config of test_loop with baseline switches; without the imitation
    learner, the task learner's regression has no demo pauses to read (no pause factors)."""
    base = tiny_config()
    if not learner.get("train_imitation", True) and "task" not in learner:
        learner["task"] = dataclasses.replace(base.learner.task, bc_pause_dim_scales=())
    actors = dataclasses.replace(
        base.actors, num_envs=num_envs, steps_per_chunk=STEPS_PER_CHUNK, **(actors or {})
    )
    return dataclasses.replace(
        base,
        actors=actors,
        learner=dataclasses.replace(base.learner, **learner),
        replay=dataclasses.replace(base.replay, min_size=min_size),
    )


def run(config, num_chunks: int):
    """Builds ``config`` and runs ``num_chunks`` jitted chunks on a recorded bank."""
    algo = build(config)
    bank = jax.jit(lambda: recorded_bank(algo.env))()
    state = jax.jit(algo.init)(jax.random.PRNGKey(0), bank)
    initial = jax.device_get(state)
    chunk = jax.jit(algo.train_chunk)
    metrics = []
    for _ in range(num_chunks):
        state, m = chunk(state, bank)
        metrics.append(jax.device_get(m))
    return algo, bank, initial, state, metrics


def distance_to_demo_states(obs: dict, bank: DemoBank) -> np.ndarray:
    """Per observation (..., obs), the max-abs distance of proprio and features to the
    nearest step of any demo (within its length)."""
    parts = ("proprio", "features")
    ours = np.concatenate([np.asarray(obs[k]) for k in parts], -1)  # (M, D)
    demos = np.concatenate([np.asarray(getattr(bank, k)) for k in parts], -1)  # (N, T, D)
    valid = np.arange(demos.shape[1])[None] < np.asarray(bank.lengths)[:, None]
    demos = demos[valid]  # (S, D)
    return np.abs(ours[:, None] - demos[None]).max(-1).min(-1)


def replay_rows(state, length: int):
    """The first ``length`` stored steps of every replay row: a Transition, leaves
    (E, length, ...)."""
    return jax.device_get(jax.tree.map(lambda x: x[:, :length], state.replay.experience))


# ---------------------------------------------- MetaMimic + task actors + D4PGfD
@pytest.fixture(scope="module")
def mixed():
    config = baseline_config(
        actors={"task_fraction": 0.5, "task_episode_steps": 4},
        demo_fraction=0.25,
        task=dataclasses.replace(
            tiny_config().learner.task,
            n_step=5,
            bc_weight=1.0,
            bc_filter="success",
            success_horizon=SUCCESS_HORIZON,
        ),
    )
    assert config.num_task_envs == 2 and config.demo_batch_size == 4
    assert config.replay.n_step == 3
    return run(config, num_chunks=3)


def test_task_actors_store_transitions_the_imitation_learner_ignores(mixed):
    algo, bank, initial, state, metrics = mixed
    steps = 3 * STEPS_PER_CHUNK
    rows = replay_rows(state, steps)
    weight = rows.extras["imitation_weight"]
    np.testing.assert_array_equal(weight[:2], 1.0)  # imitation actors
    np.testing.assert_array_equal(weight[2:], 0.0)  # task actors
    np.testing.assert_array_equal(rows.reward["imitation"][2:], 0.0)
    # Task episodes last task_episode_steps (no physics blow-ups in 15 steps).
    np.testing.assert_array_equal(rows.last[2:], np.tile(np.arange(steps) % 4 == 3, (2, 1)))
    last = metrics[-1]
    for name in ("task_reward", "episode_end", "env/stacked"):
        assert np.isfinite(last[f"train/task_actor/{name}"]), name
    assert "train/actor/imitation_reward" in last and "train/imitation/critic_loss" in last
    assert int(last["train/updates"]) > 0
    for name in ("imitation", "task"):
        before = initial.learners[name].actor_params
        after = jax.device_get(state.learners[name].actor_params)
        changed = jax.tree.map(lambda a, b: np.any(a != b), before, after)
        assert any(jax.tree.leaves(changed)), name


def test_task_actors_start_on_fresh_layouts(mixed):
    algo, bank, initial, state, metrics = mixed
    rows = replay_rows(state, 3 * STEPS_PER_CHUNK)
    starts = rows.obs
    task_starts = jax.tree.map(lambda x: x[2:, ::4].reshape(-1, x.shape[-1]), starts)
    assert distance_to_demo_states(task_starts, bank).min() > 1e-3
    # The imitation actors' episodes start on their demos' first states (a contrast check).
    imitation_starts = jax.tree.map(lambda x: x[:2, 0], starts)
    assert distance_to_demo_states(imitation_starts, bank).max() < 1e-5


def test_d4pgfd_batches_hold_demo_actions_at_the_configured_fraction(mixed):
    algo, bank, initial, state, metrics = mixed
    sampled, _ = jax.device_get(
        jax.jit(algo.sample_learner_batch)(state.replay, bank, jax.random.PRNGKey(7))
    )
    batch, goal, weights = sampled.transitions, sampled.goal, sampled.weights
    assert batch.action.shape[0] == 16
    np.testing.assert_array_equal(weights["imitation"], batch.extras["imitation_weight"])
    demo = slice(12, 16)  # the last demo_batch_size samples
    np.testing.assert_array_equal(batch.extras["imitation_weight"][demo], 0.0)
    idx, t = batch.extras["demo_idx"][demo], batch.extras["t"][demo]
    lengths = np.asarray(bank.lengths)[idx]
    assert np.all(t <= lengths - 2)  # a transition of the demo, never padding
    np.testing.assert_array_equal(batch.action[demo], np.asarray(bank.privileged_actions)[idx, t])
    np.testing.assert_array_equal(batch.obs["proprio"][demo], np.asarray(bank.proprio)[idx, t])
    # Agent samples: actions the actors took (never equal to a demo's privileged action).
    demo_actions = np.asarray(bank.privileged_actions).reshape(-1, 7)
    agent = batch.action[:12]
    assert np.abs(agent[:, None] - demo_actions[None]).max(-1).min() > 0
    assert goal["proprio"].shape == (16, batch.obs["proprio"].shape[1])


def test_a_learner_with_its_own_n_step_gets_those_returns_on_the_same_samples(mixed):
    algo, bank, _, state, _ = mixed
    sampled, _ = jax.device_get(
        jax.jit(algo.sample_learner_batch)(state.replay, bank, jax.random.PRNGKey(7))
    )
    shared, task = sampled.transitions, sampled.own_transitions["task"]
    assert list(sampled.own_transitions) == ["task"]
    np.testing.assert_array_equal(task.obs["proprio"], shared.obs["proprio"])
    np.testing.assert_array_equal(task.action, shared.action)
    gamma = algo.config.replay.gamma
    running = task.ended == 0
    assert running.any() and (task.ended == 1).any()
    np.testing.assert_allclose(task.discounts["task"][running], gamma**5, rtol=1e-6)
    np.testing.assert_array_equal(task.discounts["task"][~running], 0.0)
    discounts = shared.discounts["task"]
    assert np.all(np.isclose(discounts, 0.0) | np.isclose(discounts, gamma**3))
    # a 5-step window that never ends adds up to 5 rewards, the 3-step one to its first 3
    assert np.all(task.returns["task"][running] >= shared.returns["task"][running] - 1e-6)


def test_a_success_filter_labels_the_samples_whose_episode_goes_on_to_a_stack(mixed):
    """Task reward planted in the replay: each agent sample's label says whether its
    episode reaches it within the horizon; demo samples are never labelled."""
    algo, bank, _, state, metrics = mixed
    assert 0.0 <= float(metrics[-1]["train/task/bc_share"]) <= 1.0
    stored = 3 * STEPS_PER_CHUNK
    planted = np.zeros(state.replay.experience.last.shape, np.float32)
    planted[:, [4, 9, 13]] = 1.0
    experience = state.replay.experience
    replay = state.replay.replace(
        experience=experience.replace(reward={**experience.reward, "task": jnp.asarray(planted)})
    )
    sampled, _ = jax.device_get(
        jax.jit(algo.sample_learner_batch)(replay, bank, jax.random.PRNGKey(3))
    )
    reaches = sampled.reaches_reward["task"]
    rows = replay_rows(state, stored)
    expected = []
    for action in sampled.transitions.action[:12]:  # agent samples: found by their action
        row, t = (int(i[0]) for i in np.nonzero((rows.action == action).all(-1)))
        ahead = range(t, min(t + SUCCESS_HORIZON, stored))
        ends = [k for k in ahead if rows.last[row, k]]
        ahead = range(t, ends[0] + 1) if ends else ahead
        expected.append(any(planted[row, k] > 0 for k in ahead))
    np.testing.assert_array_equal(reaches[:12], expected)
    assert 0 < np.mean(expected) < 1
    np.testing.assert_array_equal(reaches[12:], False)  # demo samples


def test_a_success_mixed_batch_gives_the_task_learner_its_share_and_the_imitation_learner_none(
    mixed,
):
    algo, bank, _, state, _ = mixed
    config = algo.config
    learner = dataclasses.replace(config.learner, success_fraction=0.5)
    mixing = build(dataclasses.replace(config, learner=learner))
    assert mixing.config.success_batch_size == 6  # half of the 12 replay samples
    planted = np.zeros(state.replay.experience.last.shape, np.float32)
    planted[:, 4] = 1.0  # a stack at step 4 of every row: few steps go on to it
    experience = state.replay.experience
    replay = state.replay.replace(
        experience=experience.replace(reward={**experience.reward, "task": jnp.asarray(planted)})
    )
    task_shares, imitation_shares = [], []
    for seed in range(4):
        sampled, _ = jax.device_get(
            jax.jit(mixing.sample_learner_batch)(replay, bank, jax.random.PRNGKey(seed))
        )
        assert sampled.transitions.action.shape[0] == 16 + 6  # 6 uniform rows added
        task, imitation = sampled.for_learner("task"), sampled.for_learner("imitation")
        assert task.transitions.action.shape[0] == imitation.transitions.action.shape[0] == 16
        reaches = sampled.reaches_reward["task"]
        task_reaches = task.reaches_reward["task"]
        assert task_reaches[:6].all()  # the mixed share
        task_shares.append(task_reaches[6:12].mean())  # uniform: as often as the replay has
        np.testing.assert_array_equal(task_reaches[12:], False)  # demo samples
        # The imitation learner: the task learner's uniform rows and demos, then 6 more
        # uniform rows in place of the success-mixed ones.
        np.testing.assert_array_equal(imitation.transitions.action, sampled.transitions.action[6:])
        np.testing.assert_array_equal(imitation.weights["imitation"][6:10], 0.0)  # demos
        imitation_shares.append(np.concatenate([reaches[6:12], reaches[16:]]).mean())
    assert np.mean(task_shares) < 0.5 and np.mean(imitation_shares) < 0.5
    uniform, _ = jax.device_get(
        jax.jit(algo.sample_learner_batch)(replay, bank, jax.random.PRNGKey(0))
    )
    assert uniform.rows == () and uniform.for_learner("task") is uniform
    assert uniform.reaches_reward["task"][:12].mean() < 0.5
    learned, metrics = jax.jit(mixing.learn)(state.replace(replay=replay), bank)
    assert int(learned.updates) > int(state.updates)
    for name in ("imitation", "task"):
        assert np.isfinite(float(metrics[f"train/{name}/critic_loss"])), name


def test_a_regression_gated_on_a_held_block_reads_it_from_the_batch_observations(mixed):
    """``bc_held_dim_scales`` (the features config's task setting) adds the env's
    held-block flags of the batch's observations to the batch; without it the batch
    carries none."""
    algo, bank, _, state, _ = mixed
    config = algo.config
    assert config.learner.task.bc_held_dim_scales == (1.0,) * 6 + (0.0,)
    task = dataclasses.replace(config.learner.task, bc_held_dim_scales=())
    ungated = build(
        dataclasses.replace(config, learner=dataclasses.replace(config.learner, task=task))
    )
    sample = lambda system: jax.device_get(
        jax.jit(system.sample_learner_batch)(state.replay, bank, jax.random.PRNGKey(3))
    )[0]
    sampled = sample(algo)
    np.testing.assert_array_equal(sampled.holding, algo.env.holds_block(sampled.transitions.obs))
    assert sample(ungated).holding is None
    _, metrics = jax.jit(algo.learn)(state, bank)
    assert 0.0 <= float(metrics["train/task/bc_held_share"].mean()) <= 1.0
    assert np.isfinite(float(metrics["train/task/actor_loss"].mean()))


def test_a_regression_scaled_in_demo_pauses_reads_them_from_the_bank(mixed):
    """``demo_lib.paused`` flags the demo steps whose controller setpoint does not change;
    ``bc_pause_dim_scales`` adds those flags to the batch for the imitation actors' rows
    (task actors' and demos' rows follow no actor's demo: never flagged)."""
    algo, bank, _, state, _ = mixed
    setpoint = PROPRIO_PARTS["setpoint"]
    proprio = np.array(bank.proprio)
    steps = np.arange(proprio.shape[1])
    still = np.broadcast_to((steps >= 3) & (steps < 6), proprio.shape[:2])
    ramp = 0.01 * np.where(steps < 3, steps, np.maximum(steps - 3, 3))
    proprio[:, :, setpoint] = ramp[None, :, None]  # moves 0.01 a step but for steps 3 to 6
    bank = bank.replace(proprio=jnp.asarray(proprio))
    idx, t = np.meshgrid(np.arange(bank.num_demos), np.arange(bank.proprio.shape[1]))
    last = np.asarray(bank.lengths)[:, None] - 1
    expected = still | (steps[None] >= last)  # a demo's last step is clipped onto itself
    np.testing.assert_array_equal(demo_lib.paused(bank, idx, t).T, expected)
    config = algo.config
    task = dataclasses.replace(config.learner.task, bc_pause_dim_scales=(0.0,) * 6 + (1.0,))
    pausing = build(
        dataclasses.replace(config, learner=dataclasses.replace(config.learner, task=task))
    )
    sampled = jax.device_get(
        jax.jit(pausing.sample_learner_batch)(state.replay, bank, jax.random.PRNGKey(3))
    )[0]
    extras = sampled.transitions.extras
    np.testing.assert_array_equal(
        sampled.pausing,
        demo_lib.paused(bank, extras["demo_idx"], extras["t"]) & (extras["imitation_weight"] > 0),
    )
    assert sampled.pausing.any() and not sampled.pausing[extras["imitation_weight"] == 0].any()
    _, metrics = jax.jit(pausing.learn)(state, bank)
    assert 0.0 < float(metrics["train/task/bc_pause_share"].mean()) < 1.0
    no_imitation = dataclasses.replace(config.learner, task=task, train_imitation=False)
    with pytest.raises(ValueError, match="bc_pause_dim_scales .* needs learner.train_imitation"):
        dataclasses.replace(config, learner=no_imitation)


def test_task_diagnostics_measure_backoff_starts_and_the_critic_against_returns(mixed):
    algo, bank, _, state, _ = mixed
    stack_at = 6  # pretend every demo stacks at step 6 and holds it
    steps = np.arange(bank.task_reward.shape[1])
    stacked = np.broadcast_to(steps >= stack_at, bank.task_reward.shape)
    bank = bank.replace(task_reward=jnp.asarray(stacked, jnp.float32))
    result = task_diagnostics.diagnose(algo, state.learners, bank, jax.random.PRNGKey(0))
    assert set(result["backoff"]) == {"agent", "zero"}
    for per_k in result["backoff"].values():
        assert list(per_k) == list(task_diagnostics.BACKOFFS)
        assert all(0.0 <= v <= 1.0 for v in per_k.values())
    rows = {(r["from"], r["to"]): r for r in result["critic"]}
    assert sum(r["steps"] for r in rows.values()) == int(np.sum(np.asarray(bank.lengths) - 1))
    gamma = algo.config.replay.gamma
    held = [  # Monte-Carlo returns from t >= stack_at, cut at each demo's end
        sum(gamma ** (k - t) for k in range(t, length - 1))
        for length in np.asarray(bank.lengths)
        for t in range(stack_at, length - 1)
    ]
    np.testing.assert_allclose(rows[(0, 200)]["return"], np.mean(held), rtol=1e-5)
    assert rows[(0, 200)]["steps"] == len(held)
    assert np.isfinite([r["q"] for r in rows.values()]).all()


def test_gripper_diagnostics_group_steps_around_the_goals_gripper_changes(mixed):
    algo, bank, _, state, _ = mixed
    gap = gripper_diagnostics.GAP
    steps = np.arange(bank.proprio.shape[1])
    wide = 2 * algo.env.config.gripper_open  # command +1: open
    gaps = np.where(steps < 8, wide, 0.0)[None, :, None]  # the demos shut at step 8
    proprio = np.array(bank.proprio)
    proprio[..., gap] = gaps
    bank = bank.replace(proprio=jnp.asarray(proprio))
    measured = gripper_diagnostics.gripper_diagnostics(algo, state.learners, bank)
    rows = {r["steps"]: r for r in measured}
    # goals are one step ahead, so the choice changes at t = 7: steps 2..12 are near it
    valid = np.asarray(bank.lengths) - 1
    near = [len(range(2, min(13, v))) for v in valid]
    assert rows["grasp/release"]["count"] == sum(near)
    assert rows["elsewhere"]["count"] == int(valid.sum()) - sum(near)
    assert rows["all"]["count"] == int(valid.sum())
    for row in rows.values():
        for name in ("actor_agrees", "critic_prefers_goal"):
            assert 0.0 <= row[name] <= 1.0
        assert np.isfinite([row["actor_gap_sensitivity"], row["critic_value_gap"]]).all()


def test_task_video_shows_the_task_policy_beside_the_demo(mixed):
    algo, bank, _, state, _ = mixed
    video = TaskVideo(algo, size=16)
    out = video.rollouts(state.learners["task"].actor_params, bank, [0, 2])
    assert out["agent"].shape == out["demo"].shape == (2, bank.max_steps, 16, 16, 3)
    assert not out["drifted"].any() and set(np.unique(out["reward"])) <= {0.0, 1.0}
    # the task policy starts from the demo's own first state, as the imitation policy does
    imitation = ImitationVideo(algo, size=16)
    first = imitation.rollouts(state.learners["imitation"].actor_params, bank, [2])["agent"][0, 0]
    np.testing.assert_array_equal(first, out["agent"][1, 0])
    assert video.frames(state.learners["task"].actor_params, bank, [0]).shape[2] == 32


# ------------------------------- distilling the imitation learner into the task learner
def test_distilling_task_actors_start_on_demo_layouts_and_the_task_learner_trains():
    """``task_reset="demo"``: task episodes start on a training demo's first state with
    the steps counted as the demo's, which the imitation learner's goals need."""
    task = dataclasses.replace(
        tiny_config().learner.task, bc_weight=1.0, bc_filter="none", bc_target="imitation"
    )
    config = baseline_config(
        actors={"task_fraction": 0.5, "task_reset": "demo", "task_episode_steps": 4}, task=task
    )
    algo, bank, initial, state, metrics = run(config, num_chunks=3)
    rows = replay_rows(state, 3 * STEPS_PER_CHUNK)
    np.testing.assert_array_equal(rows.extras["t"][2:], np.tile(np.arange(15) % 4, (2, 1)))
    first = {k: np.asarray(getattr(bank, k))[:, 0] for k in ("proprio", "features")}
    for row in (2, 3):  # the task actors
        for t0 in range(0, 15, 4):
            demo = int(rows.extras["demo_idx"][row, t0])
            for k in first:
                np.testing.assert_allclose(rows.obs[k][row, t0], first[k][demo], atol=1e-5)
    last = metrics[-1]
    assert int(last["train/updates"]) > 0 and float(last["train/task/bc_share"]) == 1.0
    assert np.isfinite(last["train/task/actor_loss"])
    before, after = initial.learners["task"].actor_params, state.learners["task"].actor_params
    changed = jax.tree.map(lambda a, b: np.any(a != np.asarray(b)), before, after)
    assert any(jax.tree.leaves(changed))


# ------------------------------------------- task-only D4PG with a demo curriculum
@pytest.fixture(scope="module")
def curriculum():
    config = baseline_config(
        num_envs=2,
        actors={"task_reset": "curriculum", "task_episode_steps": 3},
        min_size=16,  # learning starts in the second chunk
        train_imitation=False,
    )
    return run(config, num_chunks=5)  # 2 envs x 5 steps x 5 chunks: past min_size (40)


def test_task_only_trains_only_the_task_learner(curriculum):
    algo, bank, initial, state, metrics = curriculum
    assert set(state.learners) == {"task"}
    last = metrics[-1]
    assert not [k for k in last if k.startswith(("train/imitation/", "train/actor/"))]
    assert np.isfinite(last["train/task/critic_loss"]) and int(last["train/updates"]) > 0
    assert float(last["train/task_actor/episode_end"]) > 0


def test_curriculum_resets_land_on_demo_states(curriculum):
    algo, bank, initial, state, metrics = curriculum
    rows = replay_rows(state, 2 * STEPS_PER_CHUNK)
    np.testing.assert_array_equal(rows.last, np.tile(np.arange(10) % 3 == 2, (2, 1)))
    np.testing.assert_array_equal(rows.extras["t"], np.tile(np.arange(10) % 3, (2, 1)))
    starts = jax.tree.map(lambda x: x[:, ::3].reshape(-1, x.shape[-1]), rows.obs)
    assert distance_to_demo_states(starts, bank).max() < 1e-5
    # ... at different steps of the demos (not only their first states).
    first = np.concatenate([np.asarray(bank.proprio[:, 0]), np.asarray(bank.features[:, 0])], -1)
    ours = np.concatenate([starts["proprio"], starts["features"]], -1)
    assert np.abs(ours[:, None] - first[None]).max(-1).min(-1).max() > 1e-3


def test_task_only_with_layouts_needs_no_demos():
    algo = build(baseline_config(num_envs=2, train_imitation=False))
    state = jax.eval_shape(algo.init, jax.random.PRNGKey(0), None)
    new_state, metrics = jax.eval_shape(algo.train_chunk, state, None)
    assert set(new_state.learners) == {"task"}
    assert "train/task_actor/task_reward" in metrics and "train/task/critic_loss" in metrics


# ----------------------------------------------------------------------- the loss
def test_zero_weight_samples_do_not_change_an_update():
    network = NetworkConfig(inputs="features", torso_hidden=(16,), head_hidden=(16,))
    learner = D4PG(D4PGConfig(network=network, num_atoms=11), action_dim=3)
    keys = iter(jax.random.split(jax.random.PRNGKey(0), 8))

    def batch(size):
        obs = lambda: {"proprio": jax.random.normal(next(keys), (size, 5))}
        return NStepBatch(
            obs=obs(),
            action=jax.random.uniform(next(keys), (size, 3), minval=-1),
            extras={},
            returns={"task": jnp.linspace(0.0, 3.0, size)},
            discounts={"task": jnp.full((size,), 0.9)},
            next_obs=obs(),
            next_extras={},
        )

    real, junk = batch(8), batch(8)
    both = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), real, junk)
    weights = jnp.concatenate([jnp.ones(8), jnp.zeros(8)])
    state = learner.init(jax.random.PRNGKey(1), real.obs)
    update = jax.jit(learner.update)
    alone, alone_metrics = update(state, real)
    weighted, weighted_metrics = update(state, both, weights=weights)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), alone, weighted
    )
    for name in ("critic_loss", "actor_loss", "q_mean", "return_mean"):
        np.testing.assert_allclose(alone_metrics[name], weighted_metrics[name], rtol=1e-5)
    unweighted, _ = update(state, both)  # the junk does matter without weights
    differs = jax.tree.map(lambda a, b: not np.allclose(a, b), unweighted, alone)
    assert any(jax.tree.leaves(differs.critic_params))


# ------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "actors, learner, problem",
    [
        ({"task_fraction": 1.0}, {}, "actors.task_fraction=1.0 must be in"),
        ({"task_fraction": 0.1}, {}, "gives 0 task-actor envs"),
        ({"task_fraction": 0.5}, {"train_task": False}, "need learner.train_task=true"),
        ({}, {"train_imitation": False, "train_task": False}, "are both false"),
        ({"task_reset": "curriculum"}, {}, "'curriculum' needs task actors"),
        ({"task_reset": "demo"}, {}, "'demo' needs task actors"),
        (
            {"task_fraction": 0.5},
            {"task": DISTILLING},
            r"bc_target='imitation' with task actors needs actors.task_reset='demo'",
        ),
        ({}, {"task": DISTILLING, "train_imitation": False}, "needs the imitation learner"),
        ({}, {"imitation": DISTILLING}, "cannot distil itself"),
        ({"task_episode_steps": 0}, {}, "task_episode_steps must be >= 1"),
        ({}, {"demo_fraction": -0.1}, "learner.demo_fraction=-0.1 must be in"),
        ({}, {"demo_fraction": 0.01}, "gives 0 demo transitions"),
        ({}, {"demo_fraction": 0.5, "train_task": False}, r"\(D4PGfD\) needs learner.train_task"),
    ],
)
def test_impossible_baseline_combinations_are_rejected(actors, learner, problem):
    with pytest.raises(ValueError, match=problem):
        baseline_config(actors=actors, **learner)


def test_d4pgfd_without_privileged_actions_is_rejected():
    algo = build(baseline_config(demo_fraction=0.25))
    bank = jax.eval_shape(lambda: recorded_bank(algo.env).replace(privileged_actions=None))
    state = jax.eval_shape(algo.init, jax.random.PRNGKey(0), bank)
    with pytest.raises(ValueError, match="demo_fraction > 0 \\(D4PGfD\\) needs the demos'"):
        jax.eval_shape(algo.sample_learner_batch, state.replay, bank, jax.random.PRNGKey(1))
