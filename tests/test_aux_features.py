"""The auxiliary feature prediction of a shared pixel encoder (``aux_features_weight``):
what it predicts, that it trains the encoder, that features never become an input, and
the configs it needs."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mjx_metamimic  # noqa: F401  (default XLA flags before jax use)
from mjx_metamimic import configs
from mjx_metamimic.agents import D4PG, D4PGConfig
from mjx_metamimic.networks import InputScales, NetworkConfig, set_input_scales
from mjx_metamimic.networks.heads import AUX_FEATURES
from mjx_metamimic.replay import NStepBatch
from mjx_metamimic.training import TrainConfig

NETWORK = NetworkConfig(torso="tiny", torso_hidden=(16,), head_hidden=(16,), shared_torso=True)


def learner(weight: float, network: NetworkConfig = NETWORK) -> D4PG:
    config = D4PGConfig(
        stream="imitation",
        goal_conditioned=True,
        network=network,
        critic="scalar",
        num_critics=2,
        aux_features_weight=weight,
    )
    return D4PG(config, 2)


def batch_of(key, size=16):
    """Frames whose mean colour is the privileged features (a function of the pixels)."""
    colours = jax.random.uniform(key, (size, 3))
    pixels = jnp.broadcast_to((colours * 255)[:, None, None, :], (size, 8, 8, 3))
    obs = {
        "pixels": pixels.astype(jnp.uint8),
        "proprio": jnp.zeros((size, 2)),
        "features": colours,
    }
    batch = NStepBatch(
        obs=obs,
        action=jnp.zeros((size, 2)),
        extras={},
        returns={"imitation": jnp.ones(size)},
        discounts={"imitation": jnp.full(size, 0.9)},
        next_obs=obs,
        next_extras={},
    )
    return obs, batch


def test_the_loss_adds_to_the_critics_and_leaves_their_td_loss_alone():
    plain, aux = learner(0.0), learner(1.0)
    obs, batch = batch_of(jax.random.key(0))
    plain_state = plain.init(jax.random.key(1), obs, obs)
    aux_state = aux.init(jax.random.key(1), obs, obs)
    # The predictor's parameters are the only new ones; the rest are the same draws.
    assert AUX_FEATURES in aux_state.critic_params["params"]
    assert AUX_FEATURES not in plain_state.critic_params["params"]
    without = {k: v for k, v in aux_state.critic_params["params"].items() if k != AUX_FEATURES}
    jax.tree.map(np.testing.assert_array_equal, without, plain_state.critic_params["params"])
    key = jax.random.key(2)
    _, plain_metrics = plain.update(plain_state, batch, obs, obs, key=key)
    _, aux_metrics = aux.update(aux_state, batch, obs, obs, key=key)
    np.testing.assert_allclose(aux_metrics["critic_loss"], plain_metrics["critic_loss"], rtol=1e-6)
    assert plain_metrics["aux_features_loss"] == 0.0
    assert aux_metrics["aux_features_loss"] > 0.0
    # It trains the shared encoder: the encoder's gradient differs from the TD loss's alone.
    assert aux_metrics["critic_grad_norm"] != plain_metrics["critic_grad_norm"]


def test_updates_learn_to_read_the_features_from_the_pixels():
    aux = learner(1.0)
    obs, batch = batch_of(jax.random.key(3))
    state = aux.init(jax.random.key(4), obs, obs)
    update = jax.jit(aux.update)
    losses = []
    for i in range(60):
        state, metrics = update(state, batch, obs, obs, key=jax.random.key(i))
        losses.append(float(metrics["aux_features_loss"]))
    assert losses[-1] < 0.4 * losses[0], losses[::10]


def test_features_are_targets_never_inputs():
    aux = learner(1.0)
    obs, _ = batch_of(jax.random.key(5))
    state = aux.init(jax.random.key(6), obs, obs)
    moved = {**obs, "features": obs["features"] + 10.0}
    np.testing.assert_array_equal(
        aux.act(state.actor_params, obs, obs), aux.act(state.actor_params, moved, moved)
    )
    np.testing.assert_array_equal(
        aux.q_mean(state.critic_params, obs, obs, jnp.zeros((16, 2))),
        aux.q_mean(state.critic_params, moved, moved, jnp.zeros((16, 2))),
    )


def test_targets_are_standardised_by_the_input_scales():
    aux = learner(1.0, dataclasses.replace(NETWORK, standardize_inputs=True))
    obs, _ = batch_of(jax.random.key(7), size=4)
    state = aux.init(jax.random.key(8), obs, obs)
    shift, scale = jnp.arange(5.0), jnp.full((5,), 2.0)  # proprio (2) + features (3)
    scaled = set_input_scales(state.critic_params, InputScales(shift, scale, scale))
    scales = scaled["input_scales"][AUX_FEATURES]
    np.testing.assert_array_equal(scales["shift"], shift)
    np.testing.assert_array_equal(scales["scale"], scale)
    # The encoder's own scales cover its inputs (proprio) only.
    assert scaled["input_scales"]["Encoder_0"]["shift"].shape == (2,)


def test_configs_it_needs():
    with pytest.raises(ValueError, match="aux_features_weight must be >= 0"):
        D4PGConfig(aux_features_weight=-1.0)
    with pytest.raises(ValueError, match="aux_features_weight needs a network that reads pix"):
        D4PGConfig(aux_features_weight=1.0, network=NetworkConfig(inputs="features"))
    with pytest.raises(ValueError, match="needs network.shared_torso"):
        D4PG(D4PGConfig(aux_features_weight=1.0), 2)
    cpu = configs.load(TrainConfig, "cpu")
    assert cpu.obs_keys == ("pixels", "proprio")
    with_aux = dataclasses.replace(
        cpu.learner, imitation=dataclasses.replace(cpu.learner.imitation, aux_features_weight=1.0)
    )
    assert dataclasses.replace(cpu, learner=with_aux).obs_keys == ("pixels", "proprio", "features")
    unshared = dataclasses.replace(
        with_aux, network=dataclasses.replace(cpu.learner.network, shared_torso=False)
    )
    with pytest.raises(ValueError, match="aux_features_weight > 0 needs learner.network.shared"):
        dataclasses.replace(cpu, learner=unshared)
