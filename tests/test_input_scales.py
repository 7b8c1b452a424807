"""Input standardisation: constants set from statistics act like pre-scaled inputs."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from mjx_metamimic.networks import InputScales, NetworkConfig, set_input_scales
from mjx_metamimic.networks.heads import Actor


def test_set_scales_equal_standardising_the_inputs_by_hand():
    config = NetworkConfig(
        inputs="features", torso_hidden=(16,), head_hidden=(16,), standardize_inputs=True
    )
    actor = Actor(config, action_dim=3)
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    obs = {"proprio": jax.random.normal(keys[0], (5, 4)), "features": jnp.ones((5, 2))}
    goal = {"proprio": jax.random.normal(keys[1], (5, 4)), "features": jnp.zeros((5, 2))}
    identity = actor.init(keys[2], obs, goal)
    shift = jax.random.normal(keys[3], (6,))
    scale = jnp.full((6,), 2.0)
    scaled = set_input_scales(identity, InputScales(shift, scale, scale))

    def by_hand(o):
        v = (jnp.concatenate([o["proprio"], o["features"]], -1) - shift) / scale
        return {"proprio": v[:, :4], "features": v[:, 4:]}

    np.testing.assert_allclose(
        actor.apply(scaled, obs, goal),
        actor.apply(identity, by_hand(obs), by_hand(goal)),
        rtol=1e-5,
        atol=1e-6,
    )
    assert not np.allclose(actor.apply(scaled, obs, goal), actor.apply(identity, obs, goal))
    # Without the switch there is nothing to set: the networks see raw inputs.
    plain = Actor(dataclasses.replace(config, standardize_inputs=False), action_dim=3)
    assert "input_scales" not in plain.init(keys[2], obs, goal)
