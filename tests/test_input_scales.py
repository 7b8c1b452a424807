"""Input standardisation: constants set from statistics act like pre-scaled inputs."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from mjx_metamimic.demos import DemoBank
from mjx_metamimic.networks import InputScales, NetworkConfig, set_input_scales
from mjx_metamimic.networks.heads import Actor
from mjx_metamimic.training.input_scales import demo_input_scales


def assert_same_actions(actual, expected):
    """Actions equal up to float rounding (standardising in the network vs by hand)."""
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)


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

    assert_same_actions(
        actor.apply(scaled, obs, goal), actor.apply(identity, by_hand(obs), by_hand(goal))
    )
    assert not np.allclose(actor.apply(scaled, obs, goal), actor.apply(identity, obs, goal))
    # Without the switch there is nothing to set: the networks see raw inputs.
    plain = Actor(dataclasses.replace(config, standardize_inputs=False), action_dim=3)
    assert "input_scales" not in plain.init(keys[2], obs, goal)


def test_pixel_encoder_standardises_its_vectors_too():
    """The cpu config standardises a pixel network: the vectors joined after the conv
    torso are scaled like the features path's, the frames are untouched."""
    config = NetworkConfig(
        inputs="pixels", torso="tiny", torso_hidden=(8,), head_hidden=(8,), standardize_inputs=True
    )
    actor = Actor(config, action_dim=2)
    keys = jax.random.split(jax.random.PRNGKey(1), 5)
    pixels = jax.random.randint(keys[0], (3, 8, 8, 3), 0, 256).astype(jnp.uint8)
    obs = {"pixels": pixels, "proprio": jax.random.normal(keys[1], (3, 4))}
    goal = {"pixels": pixels[::-1], "proprio": jax.random.normal(keys[2], (3, 4))}
    identity = actor.init(keys[3], obs, goal)
    shift = jax.random.normal(keys[4], (4,))
    scale, difference_scale = jnp.full((4,), 0.5), jnp.full((4,), 0.25)
    scaled = set_input_scales(identity, InputScales(shift, scale, difference_scale))
    # With scale == difference_scale the standardised goal - obs is the difference of the
    # standardised parts, so standardising by hand reproduces it.
    same = set_input_scales(identity, InputScales(shift, scale, scale))
    by_hand = lambda o: {**o, "proprio": (o["proprio"] - shift) / scale}
    assert_same_actions(
        actor.apply(same, obs, goal), actor.apply(identity, by_hand(obs), by_hand(goal))
    )
    # The difference has its own scale: changing it changes the actions.
    assert not np.allclose(actor.apply(scaled, obs, goal), actor.apply(same, obs, goal))


def test_demo_input_scales_known_values():
    """Mean and std over the demos' valid steps, RMS of their one-step change, floored."""
    proprio = np.zeros((2, 4, 2), np.float32)
    proprio[0, :, 0] = [0.0, 1.0, 2.0, 3.0]  # demo 0: all 4 steps valid
    proprio[1, :, 0] = [5.0, 7.0, 99.0, 99.0]  # demo 1: 2 valid steps (99 = padding)
    proprio[..., 1] = 0.001  # near-constant: std and step RMS go to the floor
    bank = DemoBank(
        frames=jnp.zeros((2, 4, 1, 1, 3), jnp.uint8),
        proprio=jnp.asarray(proprio),
        features=jnp.zeros((2, 4, 0)),
        task_reward=jnp.zeros((2, 4)),
        lengths=jnp.asarray([4, 2], jnp.int32),
        init_state=None,
    )
    scales = demo_input_scales(bank, ("pixels", "proprio"), floor=0.01)
    valid = np.array([0.0, 1.0, 2.0, 3.0, 5.0, 7.0])
    steps = np.array([1.0, 1.0, 1.0, 2.0])  # demo 0's three changes, demo 1's one
    np.testing.assert_allclose(scales.shift, [valid.mean(), 0.001], rtol=1e-6)
    np.testing.assert_allclose(scales.scale, [valid.std(), 0.01], rtol=1e-6)
    np.testing.assert_allclose(
        scales.difference_scale, [np.sqrt(np.mean(steps**2)), 0.01], rtol=1e-6
    )


def test_asymmetric_critic_reads_features_and_the_actor_only_pixels():
    """critic_inputs="features": the critic is the features MLP (frames ignored), the pixel
    actor never reads the privileged features, and one set of scales (proprio first)
    standardises both."""
    from mjx_metamimic.networks import CriticEnsemble

    config = NetworkConfig(
        inputs="pixels",
        torso="tiny",
        torso_hidden=(8,),
        head_hidden=(8,),
        standardize_inputs=True,
        critic_inputs="features",
    )
    keys = jax.random.split(jax.random.PRNGKey(2), 6)
    pixels = jax.random.randint(keys[0], (3, 8, 8, 3), 0, 256).astype(jnp.uint8)
    obs = {
        "pixels": pixels,
        "proprio": jax.random.normal(keys[1], (3, 4)),
        "features": jax.random.normal(keys[2], (3, 2)),
    }
    goal = {**obs, "pixels": pixels[::-1], "features": obs["features"] + 1.0}
    actor, critic = Actor(config, action_dim=2), CriticEnsemble(config, 1, 2)
    action = jnp.zeros((3, 2))
    scales = InputScales(jnp.arange(6.0), jnp.full((6,), 2.0), jnp.full((6,), 0.5))
    actor_vars = set_input_scales(actor.init(keys[3], obs, goal), scales)
    critic_vars = set_input_scales(critic.init(keys[4], obs, goal, action), scales)
    assert jax.tree.leaves(actor_vars["input_scales"])[0].shape == (4,)
    assert jax.tree.leaves(critic_vars["input_scales"])[0].shape == (6,)
    paths = lambda tree: str(jax.tree_util.tree_leaves_with_path(tree))
    assert "ResNetTorso" in paths(actor_vars) and "ResNetTorso" not in paths(critic_vars)
    other_frames = {**obs, "pixels": 255 - pixels}
    other_features = {**obs, "features": -obs["features"]}
    q = critic.apply(critic_vars, obs, goal, action)
    np.testing.assert_array_equal(critic.apply(critic_vars, other_frames, goal, action), q)
    assert not np.allclose(critic.apply(critic_vars, other_features, goal, action), q)
    a = actor.apply(actor_vars, obs, goal)
    np.testing.assert_array_equal(actor.apply(actor_vars, other_features, goal), a)
    assert not np.allclose(actor.apply(actor_vars, other_frames, goal), a)
