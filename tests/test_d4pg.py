"""D4PG: categorical projection by hand, targets, scanned updates, and probe problems whose
analytic values the critic must reach (and a bandit whose best action the actor must find)."""

import dataclasses
import functools
from types import SimpleNamespace

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import rlax

import mjx_metamimic  # noqa: F401  (default XLA flags before jax use)
from mjx_metamimic.agents import (
    D4PG,
    D4PGConfig,
    LearnerBatch,
    MultiD4PG,
    categorical_critic_loss,
    follow_targets,
    nonfinite_counts,
    probes,
    scan_sampled_updates,
    scan_updates,
)
from mjx_metamimic.networks import NetworkConfig, count_params
from mjx_metamimic.replay import NStepBatch, NStepReplay, ReplayConfig
from mjx_metamimic.training.trainer import write_totals

GAMMA = 0.9
SMALL_MLP = NetworkConfig(inputs="features", torso_hidden=(64,), head_hidden=(64, 64))
PROBE_CONFIG = D4PGConfig(
    stream=probes.STREAM,
    network=SMALL_MLP,
    num_atoms=101,
    v_min=-2.0,
    v_max=8.0,
    actor_lr=1e-3,
    critic_lr=1e-3,
    target_tau=0.01,
)
# TD3's critic options on the same probes: twin scalar critics (clipped double Q).
TWIN_SCALAR_CONFIG = dataclasses.replace(PROBE_CONFIG, critic="scalar", num_critics=2)
# The same with one torso for both critics, read by the actor without a gradient.
SHARED_TORSO_CONFIG = dataclasses.replace(
    TWIN_SCALAR_CONFIG, network=dataclasses.replace(SMALL_MLP, shared_torso=True)
)
ACTIONS = (-1.0, -0.5, 0.0, 0.5, 1.0)
SHORT_PROBES = ("constant", "observation", "two_step", "countdown", "bandit")


# ---------------------------------------------------------------- categorical projection


def test_categorical_projection_hand_example():
    support = jnp.array([0.0, 1.0, 2.0])
    # Mass 0.4 at 0.5 splits evenly between atoms 0 and 1; mass 0.6 at 2.5 clips to atom 2.
    projected = rlax.categorical_l2_project(jnp.array([0.5, 2.5]), jnp.array([0.4, 0.6]), support)
    np.testing.assert_allclose(projected, [0.2, 0.2, 0.6], atol=1e-6)
    # 0.25 sits a quarter of the way from atom 0 to atom 1.
    projected = rlax.categorical_l2_project(jnp.array([0.25]), jnp.array([1.0]), support)
    np.testing.assert_allclose(projected, [0.75, 0.25, 0.0], atol=1e-6)


def test_categorical_critic_loss_hand_example():
    atoms = jnp.array([0.0, 1.0, 2.0])
    target_logits = jnp.array([[-1e9, 0.0, -1e9]] * 2)  # all target mass on atom 1
    logits = jnp.log(jnp.array([[0.2, 0.3, 0.5]] * 2))
    # Row 0: r=0.5, discount 1 -> target atoms shift to 1.5 -> {1: 0.5, 2: 0.5}.
    # Row 1: discount 0 -> every target atom is r=0.5 -> {0: 0.5, 1: 0.5}.
    loss = categorical_critic_loss(
        logits, atoms, jnp.array([0.5, 0.5]), jnp.array([1.0, 0.0]), target_logits
    )
    expected = [-(0.5 * np.log(0.3) + 0.5 * np.log(0.5)), -(0.5 * np.log(0.2) + 0.5 * np.log(0.3))]
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


# ---------------------------------------------------------------- targets


def test_polyak_and_periodic_targets():
    online, targets = {"w": jnp.full(3, 10.0)}, {"w": jnp.zeros(3)}
    polyak = D4PGConfig(target_update="polyak", target_tau=0.1)
    np.testing.assert_allclose(follow_targets(polyak, online, targets, 1)["w"], 1.0)
    periodic = D4PGConfig(target_update="periodic", target_period=3)
    for steps, expected in ((1, 0.0), (2, 0.0), (3, 10.0), (4, 0.0), (6, 10.0)):
        got = follow_targets(periodic, online, targets, jnp.int32(steps))["w"]
        np.testing.assert_allclose(got, expected, err_msg=f"steps={steps}")


# ---------------------------------------------------------------- TD3 critic options


def test_twin_scalar_critics_bootstrap_from_the_smaller_target():
    learner = D4PG(TWIN_SCALAR_CONFIG, action_dim=1)
    outputs = jnp.array([[[1.0], [2.0]], [[0.0], [0.0]]])  # (B=2, N=2, K=1)
    target_outputs = jnp.array([[[5.0], [3.0]], [[-1.0], [4.0]]])
    returns, discounts = jnp.array([1.0, 2.0]), jnp.array([0.5, 1.0])
    # Targets: 1 + 0.5 * min(5, 3) = 2.5 and 2 + 1 * min(-1, 4) = 1.
    expected = [0.5 * (1.5**2 + 0.5**2), 0.5 * (1.0**2 + 1.0**2)]
    losses = learner.critic_losses(outputs, target_outputs, returns, discounts)
    np.testing.assert_allclose(losses, expected, rtol=1e-6)


def test_twin_categorical_critics_bootstrap_from_the_lower_mean():
    config = dataclasses.replace(PROBE_CONFIG, num_atoms=3, v_min=0.0, v_max=2.0, num_critics=2)
    learner = D4PG(config, action_dim=1)
    certain = lambda atom: jnp.where(jnp.arange(3) == atom, 0.0, -1e9)
    target_outputs = jnp.stack([certain(2), certain(1)])[None]  # means 2 and 1: use the 2nd
    outputs = jnp.log(jnp.array([[[0.2, 0.3, 0.5], [0.6, 0.2, 0.2]]]))
    losses = learner.critic_losses(outputs, target_outputs, jnp.array([0.5]), jnp.array([1.0]))
    # Target atom 1 shifted by 0.5 -> mass {1: 0.5, 2: 0.5}; cross-entropy per critic, summed.
    expected = -(0.5 * np.log(0.3) + 0.5 * np.log(0.5)) - (0.5 * np.log(0.2) + 0.5 * np.log(0.2))
    np.testing.assert_allclose(losses, [expected], rtol=1e-5)


def test_target_noise_changes_the_target_and_needs_a_key():
    learner = D4PG(dataclasses.replace(TWIN_SCALAR_CONFIG, target_noise_std=0.5), action_dim=1)
    state = jax.jit(learner.init)(jax.random.key(0), {"proprio": jnp.zeros((2,))})
    batch = random_batch(jax.random.key(1))
    with pytest.raises(ValueError, match="needs a PRNG key"):
        learner.update(state, batch)
    update = jax.jit(learner.update)
    _, first = update(state, batch, key=jax.random.key(2))
    _, again = update(state, batch, key=jax.random.key(2))
    _, other = update(state, batch, key=jax.random.key(3))
    assert float(first["critic_loss"]) == float(again["critic_loss"])
    assert float(first["target_q_mean"]) != float(other["target_q_mean"])


@pytest.mark.parametrize(
    "change, message",
    [
        ({"critic": "quantile"}, "critic must be"),
        ({"num_critics": 0}, "num_critics"),
        ({"target_noise_std": -0.1}, "target_noise_std"),
        ({"v_max": -3.0}, "v_max > v_min"),
    ],
)
def test_impossible_critic_options_are_named(change, message):
    with pytest.raises(ValueError, match=message):
        D4PG(dataclasses.replace(PROBE_CONFIG, **change), action_dim=1)


# ---------------------------------------------------------------- update mechanics


def random_batch(key, batch_size=16) -> NStepBatch:
    """One-step features batch for the probe learner (2-d obs, 1-d action)."""
    obs_key, action_key, reward_key = jax.random.split(key, 3)
    obs = {"proprio": jax.random.normal(obs_key, (batch_size, 2))}
    return NStepBatch(
        obs=obs,
        action=jax.random.uniform(action_key, (batch_size, 1), minval=-1, maxval=1),
        extras={},
        returns={probes.STREAM: jax.random.normal(reward_key, (batch_size,))},
        discounts={probes.STREAM: jnp.full((batch_size,), GAMMA)},
        next_obs=obs,
        next_extras={},
    )


@pytest.fixture(scope="module")
def probe_learner():
    learner = D4PG(PROBE_CONFIG, action_dim=1)
    state = jax.jit(learner.init)(jax.random.key(0), {"proprio": jnp.zeros((2,))})
    return learner, state


def test_scanned_updates_equal_sequential_updates_without_retracing(probe_learner):
    learner, state = probe_learner
    batches = [random_batch(jax.random.key(i)) for i in range(3)]

    @jax.jit
    @chex.assert_max_traces(n=1)
    def update(state, batch):
        return learner.update(state, batch)

    sequential, losses = state, []
    for batch in batches:
        sequential, metrics = update(sequential, batch)
        losses.append(metrics["critic_loss"])
    chex.clear_trace_counter()
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *batches)
    scanned, scan_metrics = jax.jit(functools.partial(scan_updates, learner.update))(state, stacked)
    assert int(scanned.steps) == 3
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
        scanned.critic_params,
        sequential.critic_params,
    )
    np.testing.assert_allclose(scan_metrics["critic_loss"], np.mean(losses), rtol=1e-4)
    moved = jax.tree.map(
        lambda a, b: float(jnp.max(jnp.abs(a - b))), state.actor_params, sequential.actor_params
    )
    assert max(jax.tree.leaves(moved)) > 0


def test_a_nonfinite_gradient_skips_the_step_and_is_counted(probe_learner):
    learner, state = probe_learner
    batch = random_batch(jax.random.key(0))
    poisoned = batch.returns[probes.STREAM].at[3].set(jnp.nan)
    bad = batch.replace(returns={probes.STREAM: poisoned})
    update = jax.jit(learner.update)
    skipped, _ = update(state, bad)
    chex.assert_trees_all_equal(skipped.critic_params, state.critic_params)
    counts = nonfinite_counts(skipped)
    assert int(counts["in_a_row"]) == 1 and int(counts["total"]) == 1
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(skipped.critic_params))
    recovered, _ = update(skipped, batch)  # a finite step resets the streak, not the total
    counts = nonfinite_counts(recovered)
    assert int(counts["in_a_row"]) == 0 and int(counts["total"]) == 1
    moved = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), recovered.critic_params,
                         state.critic_params)  # fmt: skip
    assert any(jax.tree.leaves(moved))


def test_update_checks_goal_conditioning(probe_learner):
    learner, state = probe_learner
    batch = random_batch(jax.random.key(0))
    with pytest.raises(ValueError, match="expects no goal"):
        learner.update(state, batch, goal=batch.obs, next_goal=batch.obs)


# ---------------------------------------------------------------- probe problems


@pytest.fixture(scope="module", params=["categorical", "twin_scalar", "shared_torso"])
def probe_results(request):
    """Trains the probe learner once per probe; one compiled function serves all probes."""
    config = {
        "categorical": PROBE_CONFIG,
        "twin_scalar": TWIN_SCALAR_CONFIG,
        "shared_torso": SHARED_TORSO_CONFIG,
    }[request.param]
    learner = D4PG(config, action_dim=1)
    replay = NStepReplay(ReplayConfig(capacity=4096, n_step=3, gamma=GAMMA, min_size=256), 16)
    train = jax.jit(
        functools.partial(
            probes.train_on_probe,
            learner,
            replay,
            num_envs=16,
            iterations=400,
            updates_per_iteration=4,
            batch_size=128,
        )
    )
    results = {
        name: train(jnp.int32(probes.probe_index(name)), jax.random.key(7)) for name in SHORT_PROBES
    }
    return learner, results


def q_errors(learner, critic_params, name):
    """|learned - analytic| Q over all steps, contexts and ACTIONS of probe ``name``."""
    kind = probes.probe_index(name)
    grid = [(t, c, a) for t in range(probes.HORIZONS[kind]) for c in (-1.0, 1.0) for a in ACTIONS]
    t, c, a = (np.asarray(v) for v in zip(*grid, strict=True))
    t, c, a = t.astype(np.int32), c.astype(np.float32), a[:, None].astype(np.float32)

    @jax.jit
    def evaluate(critic_params, kind, t, c, a):
        obs = {"proprio": jax.vmap(probes.observation, (None, 0, 0))(kind, t, c)}
        analytic = jax.vmap(probes.q_value, (None, 0, 0, 0, None))(kind, t, c, a, GAMMA)
        return learner.q_mean(critic_params, obs, None, a), analytic

    learned, analytic = evaluate(critic_params, jnp.int32(kind), t, c, a)
    return np.abs(np.asarray(learned - analytic)), np.asarray(analytic)


@pytest.mark.parametrize(
    "name, tolerance",
    [
        ("constant", 0.05),
        ("observation", 0.05),
        ("two_step", 0.05),
        ("countdown", 0.1),
        ("bandit", 0.3),
    ],
)
def test_probe_critic_reaches_analytic_q(probe_results, name, tolerance):
    learner, results = probe_results
    state, metrics = results[name]
    errors, analytic = q_errors(learner, state.critic_params, name)
    assert errors.max() < tolerance, (errors.max(), errors)
    assert errors.mean() < tolerance / 2
    assert np.ptp(analytic) > 0 or name == "constant"
    assert bool(jnp.isfinite(metrics["critic_loss"]))


def expected_bandit_reward(actions_by_context: dict[float, float]) -> float:
    return float(
        np.mean([1 - (a - probes.BANDIT_TARGET * c) ** 2 for c, a in actions_by_context.items()])
    )


def test_bandit_actor_moves_to_best_action(probe_results):
    learner, results = probe_results
    state, _ = results["bandit"]
    initial = learner.init(jax.random.key(0), {"proprio": jnp.zeros((2,))})
    kind = jnp.int32(probes.probe_index("bandit"))

    def greedy(params):
        contexts = jnp.array([-1.0, 1.0])
        obs = {
            "proprio": jax.vmap(probes.observation, (None, None, 0))(kind, jnp.int32(0), contexts)
        }
        actions = learner.act(params, obs)[:, 0]
        return {float(c): float(a) for c, a in zip(contexts, actions, strict=True)}

    trained, start = greedy(state.actor_params), greedy(initial.actor_params)
    for c, a in trained.items():
        assert abs(a - probes.BANDIT_TARGET * c) < 0.1, trained
    random_policy = 1 - (1 / 3 + probes.BANDIT_TARGET**2)  # E[1 - (a - c/2)^2], a ~ U[-1, 1]
    assert expected_bandit_reward(trained) > 0.98
    assert expected_bandit_reward(trained) > expected_bandit_reward(start) + 0.15
    assert expected_bandit_reward(trained) > random_policy + 0.5


# ------------------------------------------- the task learner's settings: n-step, truncation


def train_probe_q_errors(config: D4PGConfig, name: str, gamma: float, iterations: int):
    """Trains ``config`` on probe ``name`` from random actions; |learned - analytic| Q."""
    learner = D4PG(config, action_dim=1)
    replay_config = ReplayConfig(capacity=16 * 512, n_step=1, gamma=gamma, min_size=1024)
    replay = NStepReplay(replay_config, 16, max_n_step=config.n_step)
    train = jax.jit(
        functools.partial(
            probes.train_on_probe,
            learner,
            replay,
            num_envs=16,
            iterations=iterations,
            updates_per_iteration=4,
            batch_size=128,
        )
    )
    kind = probes.probe_index(name)
    state, _ = train(jnp.int32(kind), jax.random.key(3))
    t = jnp.arange(probes.HORIZONS[kind], dtype=jnp.int32)
    obs = {"proprio": jax.vmap(probes.observation, (None, 0, None))(kind, t, 1.0)}
    actions = jnp.zeros((len(t), 1))
    analytic = jax.vmap(probes.q_value, (None, 0, None, 0, None))(kind, t, 1.0, actions, gamma)
    learned = learner.q_mean(state.critic_params, obs, None, actions)
    return np.abs(np.asarray(learned - analytic))


def test_n_step_returns_solve_a_reward_100_steps_away():
    """The ``late`` probe pays 1 only at step 100 (gamma 0.99: Q(0) = 0.37). On the same
    updates a 5-step learner gets Q right at every step; a 1-step learner does not."""
    config = dataclasses.replace(TWIN_SCALAR_CONFIG, target_tau=0.05)
    five = train_probe_q_errors(dataclasses.replace(config, n_step=5), "late", 0.99, 250)
    one = train_probe_q_errors(dataclasses.replace(config, n_step=1), "late", 0.99, 250)
    assert five.max() < 0.1 and five.mean() < 0.05, five
    assert one.max() > 0.1 and one.mean() > 2 * five.mean(), (one.max(), one.mean(), five.mean())


def test_truncation_bootstraps_past_cut_episodes():
    """``endless`` cuts its episodes after 8 steps of reward 1; treated as truncations
    the value is 1 / (1 - gamma) = 10 at every step, treated as terminals it is far below."""
    config = dataclasses.replace(TWIN_SCALAR_CONFIG, n_step=3)
    truncation = dataclasses.replace(config, episode_ends="truncation")
    errors = train_probe_q_errors(truncation, "endless", GAMMA, 400)
    terminal = train_probe_q_errors(config, "endless", GAMMA, 400)
    assert errors.max() < 0.5, errors
    assert terminal.min() > 2.0, terminal


def test_truncation_leaves_samples_that_reach_an_episode_end_out():
    """An update with ``episode_ends="truncation"`` is the same whatever the returns of the
    samples marked ``ended`` are; with "terminal" it is not."""
    batch = random_batch(jax.random.key(4))
    ended = (jnp.arange(batch.action.shape[0]) % 3 == 0).astype(jnp.float32)
    changed = batch.returns[probes.STREAM] + 100.0 * ended
    batch = batch.replace(ended=ended)
    other = batch.replace(returns={probes.STREAM: changed})
    for episode_ends, same in (("truncation", True), ("terminal", False)):
        learner = D4PG(dataclasses.replace(TWIN_SCALAR_CONFIG, episode_ends=episode_ends), 1)
        state = learner.init(jax.random.key(0), jax.tree.map(lambda x: x[0], batch.obs))
        update = jax.jit(learner.update)
        a, _ = update(state, batch, key=jax.random.key(1))
        b, _ = update(state, other, key=jax.random.key(1))
        close = jax.tree.map(
            lambda x, y: bool(jnp.allclose(x, y)), a.critic_params, b.critic_params
        )
        assert all(jax.tree.leaves(close)) == same, episode_ends


def test_bc_adds_the_filtered_regression_to_the_actor_loss():
    """actor_loss(weight w) - actor_loss(0) = w * mean(1[Q(s, a) > Q(s, pi(s))] (pi(s) - a)^2)
    over samples and action dimensions (3 here)."""
    batch = random_batch(jax.random.key(5))
    batch = batch.replace(action=jnp.tile(batch.action, (1, 3)) * jnp.array([1.0, -0.5, 0.2]))
    weight = 0.7
    plain = D4PG(TWIN_SCALAR_CONFIG, 3)
    bc = D4PG(dataclasses.replace(TWIN_SCALAR_CONFIG, bc_weight=weight), 3)
    unfiltered_config = dataclasses.replace(TWIN_SCALAR_CONFIG, bc_weight=weight, bc_filter="none")
    unfiltered = D4PG(unfiltered_config, 3)
    state = plain.init(jax.random.key(0), jax.tree.map(lambda x: x[0], batch.obs))
    _, without = plain.update(state, batch, key=jax.random.key(1))
    _, with_bc = bc.update(state, batch, key=jax.random.key(1))
    policy = plain.act(state.actor_params, batch.obs)
    q_policy = plain.q_mean(state.critic_params, batch.obs, None, policy)
    q_data = plain.q_mean(state.critic_params, batch.obs, None, batch.action)
    better = np.asarray(q_data > q_policy, np.float32)
    regression = np.square(np.asarray(policy - batch.action))  # (B, 3)
    expected = weight * np.mean(better[:, None] * regression)
    assert 0 < better.mean() < 1
    np.testing.assert_allclose(with_bc["actor_loss"] - without["actor_loss"], expected, rtol=1e-4)
    np.testing.assert_allclose(with_bc["bc_share"], better.mean(), rtol=1e-6)
    assert float(without["bc_share"]) == 0.0
    _, every = unfiltered.update(state, batch, key=jax.random.key(1))  # TD3+BC: no filter
    np.testing.assert_allclose(
        every["actor_loss"] - without["actor_loss"], weight * np.mean(regression), rtol=1e-4
    )
    assert float(every["bc_share"]) == 1.0
    success_config = dataclasses.replace(unfiltered_config, bc_filter="success")
    success = D4PG(success_config, 3)
    reaches = jnp.arange(batch.action.shape[0]) % 3 == 0  # the hindsight label, given
    _, filtered = success.update(state, batch, key=jax.random.key(1), reaches_reward=reaches)
    labelled = np.asarray(reaches, np.float32)
    np.testing.assert_allclose(
        filtered["actor_loss"] - without["actor_loss"],
        weight * np.mean(labelled[:, None] * regression),
        rtol=1e-4,
    )
    np.testing.assert_allclose(filtered["bc_share"], labelled.mean(), rtol=1e-6)
    labelled_rms = np.sqrt(np.mean(regression[labelled > 0]))
    np.testing.assert_allclose(filtered["bc_rms"], labelled_rms, rtol=1e-5)
    assert float(without["bc_rms"]) == 0.0
    with pytest.raises(ValueError, match="reaches_reward"):
        success.update(state, batch, key=jax.random.key(1))
    # both filters: the successes whose action the critic values above the actor's
    both = D4PG(dataclasses.replace(success_config, bc_filter="success_advantage"), 3)
    _, both_filtered = both.update(state, batch, key=jax.random.key(1), reaches_reward=reaches)
    kept = labelled * better
    assert 0 < kept.sum() < min(labelled.sum(), better.sum())
    np.testing.assert_allclose(
        both_filtered["actor_loss"] - without["actor_loss"],
        weight * np.mean(kept[:, None] * regression),
        rtol=1e-4,
    )
    np.testing.assert_allclose(both_filtered["bc_share"], kept.mean(), rtol=1e-6)
    with pytest.raises(ValueError, match="reaches_reward"):
        both.update(state, batch, key=jax.random.key(1))
    teacher = D4PG(dataclasses.replace(unfiltered_config, bc_target="imitation"), 3)
    targets = -0.5 * batch.action  # given teacher actions replace the replay's as targets
    _, distilled = teacher.update(state, batch, key=jax.random.key(1), teacher_actions=targets)
    np.testing.assert_allclose(
        distilled["bc_rms"], np.sqrt(np.mean(np.square(np.asarray(policy - targets)))), rtol=1e-5
    )
    np.testing.assert_allclose(
        distilled["actor_loss"] - without["actor_loss"],
        weight * np.mean(np.square(np.asarray(policy - targets))),
        rtol=1e-4,
    )
    with pytest.raises(ValueError, match="teacher_actions"):
        teacher.update(state, batch, key=jax.random.key(1))


def test_bc_weight_decays_linearly_and_scales_per_action_dimension():
    """With ``bc_weight_final`` the regression's weight goes linearly from ``bc_weight`` to it
    over ``bc_decay_updates`` and stays there; ``bc_dim_scales`` multiplies each action
    dimension's share of the regression (0: that output follows dQ/da alone), and
    ``bc_held_dim_scales`` replaces it on the samples with a block held."""
    batch = random_batch(jax.random.key(6))
    batch = batch.replace(action=jnp.tile(batch.action, (1, 3)) * jnp.array([1.0, -0.5, 0.2]))
    plain = D4PG(TWIN_SCALAR_CONFIG, 3)
    regressing = dataclasses.replace(TWIN_SCALAR_CONFIG, bc_weight=2.0, bc_filter="none")
    decaying = D4PG(dataclasses.replace(regressing, bc_weight_final=0.4, bc_decay_updates=8), 3)
    state = plain.init(jax.random.key(0), jax.tree.map(lambda x: x[0], batch.obs))
    regression = np.square(np.asarray(plain.act(state.actor_params, batch.obs) - batch.action))
    for steps, weight in [(0, 2.0), (2, 1.6), (8, 0.4), (20, 0.4)]:
        at = state.replace(steps=jnp.asarray(steps, jnp.int32))
        _, without = plain.update(at, batch, key=jax.random.key(1))
        _, with_bc = decaying.update(at, batch, key=jax.random.key(1))
        np.testing.assert_allclose(with_bc["bc_weight"], weight, rtol=1e-6)
        np.testing.assert_allclose(
            with_bc["actor_loss"] - without["actor_loss"], weight * np.mean(regression), rtol=1e-4
        )
    _, without = plain.update(state, batch, key=jax.random.key(1))
    scales = np.array([1.0, 0.5, 0.0])
    scaled = D4PG(dataclasses.replace(regressing, bc_dim_scales=tuple(scales)), 3)
    _, with_scales = scaled.update(state, batch, key=jax.random.key(1))
    np.testing.assert_allclose(  # a mean over samples and all 3 dimensions
        with_scales["actor_loss"] - without["actor_loss"],
        2.0 * np.mean(regression * scales),
        rtol=1e-4,
    )
    # the RMS over the dimensions regressed onto, unscaled
    np.testing.assert_allclose(with_scales["bc_rms"], np.sqrt(regression[:, :2].mean()), rtol=1e-5)
    with pytest.raises(ValueError, match="2 factors for 3 actions"):
        D4PG(dataclasses.replace(regressing, bc_dim_scales=(1.0, 0.0)), 3)
    with pytest.raises(ValueError, match="bc_dim_scales must be >= 0"):
        dataclasses.replace(regressing, bc_dim_scales=(1.0, -1.0, 1.0))
    # on samples with a block held, bc_held_dim_scales replace bc_dim_scales
    held_scales = np.array([1.0, 1.0, 0.0])
    gated = D4PG(
        dataclasses.replace(
            regressing, bc_dim_scales=tuple(scales), bc_held_dim_scales=tuple(held_scales)
        ),
        3,
    )
    holding = jnp.arange(regression.shape[0]) % 3 == 0
    _, with_gate = gated.update(state, batch, key=jax.random.key(1), holding=holding)
    per_sample = np.where(np.asarray(holding)[:, None], held_scales, scales)
    np.testing.assert_allclose(
        with_gate["actor_loss"] - without["actor_loss"],
        2.0 * np.mean(regression * per_sample),
        rtol=1e-4,
    )
    np.testing.assert_allclose(with_gate["bc_held_share"], np.mean(holding), rtol=1e-6)
    assert float(with_scales["bc_held_share"]) == 0.0
    with pytest.raises(ValueError, match="holding"):
        gated.update(state, batch, key=jax.random.key(1))
    with pytest.raises(ValueError, match="bc_held_dim_scales has 2 factors"):
        D4PG(dataclasses.replace(regressing, bc_held_dim_scales=(1.0, 0.0)), 3)
    # on samples in a demo's pause, bc_pause_dim_scales multiply the factors above
    pause_scales = np.array([0.0, 0.5, 1.0])
    paused = D4PG(dataclasses.replace(gated.config, bc_pause_dim_scales=tuple(pause_scales)), 3)
    pausing = jnp.arange(regression.shape[0]) % 2 == 0
    _, with_pause = paused.update(
        state, batch, key=jax.random.key(1), holding=holding, pausing=pausing
    )
    per_sample = per_sample * np.where(np.asarray(pausing)[:, None], pause_scales, 1.0)
    np.testing.assert_allclose(
        with_pause["actor_loss"] - without["actor_loss"],
        2.0 * np.mean(regression * per_sample),
        rtol=1e-4,
    )
    np.testing.assert_allclose(with_pause["bc_pause_share"], np.mean(pausing), rtol=1e-6)
    with pytest.raises(ValueError, match="pausing"):
        paused.update(state, batch, key=jax.random.key(1), holding=holding)
    with pytest.raises(ValueError, match="bc_decay_updates"):
        dataclasses.replace(regressing, bc_weight_final=0.0)
    with pytest.raises(ValueError, match="bc_weight_final"):
        dataclasses.replace(regressing, bc_decay_updates=10)


# ---------------------------------------------------------------- two streams, one batch


def goal_bandit_batch(key, batch_size=128):
    """Imitation reward 1 - (a - g)^2 given a goal g; task reward 1 - (a - c/2)^2."""
    context_key, goal_key, action_key = jax.random.split(key, 3)
    c = jnp.where(jax.random.bernoulli(context_key, shape=(batch_size,)), 1.0, -1.0)
    g = jnp.where(jax.random.bernoulli(goal_key, shape=(batch_size,)), 0.5, -0.5)
    a = jax.random.uniform(action_key, (batch_size, 1), minval=-1, maxval=1)
    ones = jnp.ones_like(c)
    obs, goal = {"proprio": jnp.stack([c, ones], -1)}, {"proprio": jnp.stack([g, ones], -1)}
    batch = NStepBatch(
        obs=obs,
        action=a,
        extras={},
        returns={"imitation": 1 - (a[:, 0] - g) ** 2, "task": 1 - (a[:, 0] - c / 2) ** 2},
        discounts={"imitation": jnp.zeros_like(c), "task": jnp.zeros_like(c)},
        next_obs=obs,
        next_extras={},
    )
    return LearnerBatch(batch, goal=goal, next_goal=goal)


def test_imitation_and_task_learners_share_batches():
    common = dict(
        network=SMALL_MLP, num_atoms=51, v_min=-2.0, v_max=2.0, actor_lr=1e-3, critic_lr=1e-3
    )
    multi = MultiD4PG(
        {
            "imitation": D4PG(D4PGConfig(stream="imitation", goal_conditioned=True, **common), 1),
            "task": D4PG(D4PGConfig(stream="task", **common), 1),
        }
    )
    example = {"proprio": jnp.zeros((2,))}

    @jax.jit
    def train(key):
        init_key, update_key = jax.random.split(key)
        states = multi.init(init_key, example, example)
        return scan_sampled_updates(multi.update, goal_bandit_batch, states, update_key, 800)

    states, metrics = train(jax.random.key(3))
    assert {f"train/{n}/critic_loss" for n in ("imitation", "task")} <= set(metrics)
    assert all(bool(jnp.isfinite(v)) for v in metrics.values())
    imitation, task = multi.learners["imitation"], multi.learners["task"]
    for c in (-1.0, 1.0):
        obs = {"proprio": jnp.array([c, 1.0])}
        task_action = float(task.act(states["task"].actor_params, obs)[0])
        assert abs(task_action - c / 2) < 0.1
        for g in (-0.5, 0.5):
            goal = {"proprio": jnp.array([g, 1.0])}
            action = float(imitation.act(states["imitation"].actor_params, obs, goal)[0])
            assert abs(action - g) < 0.1, (c, g, action)


def test_a_distilling_task_learner_takes_up_the_imitation_actors_actions():
    """No task reward at all, replay actions uniform: only the imitation learner's actions
    (a = g, and here g = c / 2 follows from the task learner's own input c) can teach the
    task actor a = c / 2. Regressing onto the replay's actions instead (the baseline, same
    run) gives their mean, 0."""

    def batch(key, batch_size=128):
        bandit = goal_bandit_batch(key, batch_size)
        c = bandit.transitions.obs["proprio"][:, 0]
        goal = {"proprio": jnp.stack([c / 2, jnp.ones_like(c)], -1)}
        a = bandit.transitions.action[:, 0]
        transitions = bandit.transitions.replace(
            returns={"imitation": 1 - (a - c / 2) ** 2, "task": jnp.zeros_like(c)}
        )
        return LearnerBatch(transitions, goal=goal, next_goal=goal)

    common = dict(network=SMALL_MLP, critic="scalar", num_critics=2, actor_lr=1e-3, critic_lr=1e-3)
    imitation = D4PG(D4PGConfig(stream="imitation", goal_conditioned=True, **common), 1)
    example = {"proprio": jnp.zeros((2,))}
    final = {}
    for target in ("imitation", "replay"):
        task_config = D4PGConfig(
            stream="task", bc_weight=5.0, bc_filter="none", bc_target=target, **common
        )
        multi = MultiD4PG({"imitation": imitation, "task": D4PG(task_config, 1)})

        @jax.jit
        def train(key, multi=multi):
            init_key, update_key = jax.random.split(key)
            states = multi.init(init_key, example, example)
            return scan_sampled_updates(multi.update, batch, states, update_key, 800)

        states, _ = train(jax.random.key(3))
        final[target] = [
            float(
                multi.learners["task"].act(
                    states["task"].actor_params, {"proprio": jnp.array([c, 1.0])}
                )[0]
            )
            for c in (-1.0, 1.0)
        ]
    np.testing.assert_allclose(final["imitation"], [-0.5, 0.5], atol=0.1)
    assert max(abs(a) for a in final["replay"]) < 0.2, final


def still_imitation_batch(obs: dict) -> NStepBatch:
    """4 imitation-stream samples of ``obs`` staying at ``obs``: return 1, discount 0.9,
    2-dimensional zero actions."""
    return NStepBatch(
        obs=obs,
        action=jnp.zeros((4, 2)),
        extras={},
        returns={"imitation": jnp.ones(4)},
        discounts={"imitation": jnp.full(4, 0.9)},
        next_obs=obs,
        next_extras={},
    )


def test_pixel_learner_updates_with_goal_frames():
    """The MetaMimic imitation learner at toy size: tiny ResNet over obs + goal uint8 frames."""
    network = NetworkConfig(torso="tiny", torso_hidden=(16,), head_hidden=(16,))
    learner = D4PG(
        D4PGConfig(stream="imitation", goal_conditioned=True, network=network, num_atoms=11), 2
    )
    pixel_key, goal_key = jax.random.split(jax.random.key(0))
    obs = {
        "pixels": jax.random.randint(pixel_key, (4, 8, 8, 3), 0, 256).astype(jnp.uint8),
        "proprio": jnp.ones((4, 3)),
    }
    goal = dict(obs, pixels=jax.random.randint(goal_key, (4, 8, 8, 3), 0, 256).astype(jnp.uint8))
    batch = still_imitation_batch(obs)

    @jax.jit
    def init_and_update(key):
        state = learner.init(key, obs, goal)
        return state, learner.update(state, batch, goal, goal)

    state, (new_state, metrics) = init_and_update(jax.random.key(1))
    assert all(bool(jnp.isfinite(v)) for v in metrics.values())
    assert int(new_state.steps) == 1
    conv = "critics", "Encoder_0", "ResNetTorso_0", "Conv_0", "kernel"
    old, new = state.critic_params["params"], new_state.critic_params["params"]
    for name in conv:
        old, new = old[name], new[name]
    assert old.shape[3] == 6  # (critics, 3, 3, C, D): obs and goal frames channel-stacked
    assert float(jnp.max(jnp.abs(new - old))) > 0


def test_shared_torso_keeps_the_actor_on_the_critics_encoder_and_cuts_the_update():
    network = NetworkConfig(torso="tiny", torso_hidden=(16,), head_hidden=(16,))
    shared = dataclasses.replace(network, shared_torso=True)
    configs = {
        name: D4PGConfig(
            stream="imitation", goal_conditioned=True, network=net, critic="scalar", num_critics=2
        )
        for name, net in (("separate", network), ("shared", shared))
    }
    obs = {
        "pixels": jax.random.randint(jax.random.key(0), (4, 8, 8, 3), 0, 256).astype(jnp.uint8),
        "proprio": jax.random.normal(jax.random.key(1), (4, 3)),
    }
    batch = still_imitation_batch(obs)
    flops = {}
    for name, config in configs.items():
        learner = D4PG(config, 2)
        state = learner.init(jax.random.key(2), obs, obs)
        update = jax.jit(learner.update)
        flops[name] = update.lower(state, batch, obs, obs).cost_analysis()["flops"]
    new_state, metrics = update(state, batch, obs, obs)
    assert all(bool(jnp.isfinite(v)) for v in metrics.values())

    def encoder(variables):
        return variables["params"]["Encoder_0"]

    for actor, critic in (
        (new_state.actor_params, new_state.critic_params),
        (new_state.target_actor_params, new_state.target_critic_params),
    ):
        chex.assert_trees_all_equal(encoder(actor), encoder(critic))
    old_kernel = encoder(state.critic_params)["ResNetTorso_0"]["Conv_0"]["kernel"]
    new_kernel = encoder(new_state.critic_params)["ResNetTorso_0"]["Conv_0"]["kernel"]
    assert float(jnp.max(jnp.abs(new_kernel - old_kernel))) > 0  # the critic loss trains it
    # The twin critics share the encoder: one set of conv kernels, two heads.
    assert old_kernel.ndim == 4
    assert new_state.critic_params["params"]["critics"]["Dense_0"]["kernel"].shape[0] == 2
    # Acting through the Actor equals the head on the critics' embedding.
    embedding = learner.shared.embed(new_state.critic_params, obs, obs)
    np.testing.assert_allclose(
        learner.act(new_state.actor_params, obs, obs),
        learner.shared.policy(new_state.actor_params, embedding),
        rtol=1e-6,
        atol=1e-6,
    )
    # One torso pass with its gradient and one target pass, instead of one per network.
    assert flops["shared"] < 0.5 * flops["separate"], flops


def test_shared_torso_needs_the_critics_to_read_the_actors_inputs():
    with pytest.raises(ValueError, match="shared_torso needs critic_inputs='same'"):
        NetworkConfig(shared_torso=True, critic_inputs="features")


def test_totals_count_a_shared_encoder_once(tmp_path):
    config = dataclasses.replace(SHARED_TORSO_CONFIG, stream="imitation")
    learner = D4PG(config, action_dim=1)
    state = learner.init(jax.random.key(0), {"proprio": jnp.zeros((2,))})
    run = SimpleNamespace(learners={"imitation": state}, env_steps=0, updates=0, chunks=0)
    totals = write_totals(tmp_path, run, 0.0, shared_torso=True)
    encoder = count_params(state.critic_params["params"]["Encoder_0"])
    everything = count_params((state.actor_params, state.critic_params))
    assert totals["num_params"] == everything - encoder
