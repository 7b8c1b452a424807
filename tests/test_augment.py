"""Random shifts of a learner's frames (DrQ): what moves, what stays, and the update's use."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mjx_metamimic  # noqa: F401  (default XLA flags before jax use)
from mjx_metamimic.agents import D4PG, D4PGConfig
from mjx_metamimic.agents.augment import random_shift
from mjx_metamimic.networks import NetworkConfig
from mjx_metamimic.replay import NStepBatch


def frames(key, batch=64, size=6):
    return jax.random.randint(key, (batch, size, size, 3), 0, 256).astype(jnp.uint8)


def test_each_sample_is_a_crop_of_its_padded_frame_and_its_goal_moves_with_it():
    pad = 2
    obs = {"pixels": frames(jax.random.key(0)), "proprio": jnp.ones((64, 4))}
    goal = {"pixels": frames(jax.random.key(1)), "proprio": jnp.zeros((64, 4))}
    shifted_obs, shifted_goal = random_shift(jax.random.key(2), pad, obs, goal)
    np.testing.assert_array_equal(shifted_obs["proprio"], obs["proprio"])
    padding = ((0, 0), (pad, pad), (pad, pad), (0, 0))
    padded_obs = np.pad(np.asarray(obs["pixels"]), padding, mode="edge")
    padded_goal = np.pad(np.asarray(goal["pixels"]), padding, mode="edge")
    offsets = set()
    for b in range(64):
        matches = [
            (r, c)
            for r in range(2 * pad + 1)
            for c in range(2 * pad + 1)
            if np.array_equal(shifted_obs["pixels"][b], padded_obs[b, r : r + 6, c : c + 6])
        ]
        assert len(matches) == 1, b
        r, c = matches[0]
        np.testing.assert_array_equal(
            shifted_goal["pixels"][b], padded_goal[b, r : r + 6, c : c + 6]
        )
        offsets.add((r, c))
    assert len(offsets) > 12  # of 25: offsets are drawn per sample


def test_no_pad_or_no_pixels_leaves_the_inputs_alone():
    obs = {"pixels": frames(jax.random.key(0), batch=4)}
    assert random_shift(jax.random.key(1), 0, obs, None) == (obs, None)
    features = {"features": jnp.ones((4, 3))}
    assert random_shift(jax.random.key(1), 2, features, features) == (features, features)


def pixel_learner(random_shift_px: int) -> D4PG:
    network = NetworkConfig(torso="tiny", torso_hidden=(16,), head_hidden=(16,), shared_torso=True)
    config = D4PGConfig(
        stream="imitation",
        goal_conditioned=True,
        network=network,
        critic="scalar",
        num_critics=2,
        random_shift=random_shift_px,
    )
    return D4PG(config, 2)


def pixel_batch(pixels):
    obs = {"pixels": pixels, "proprio": jnp.ones((pixels.shape[0], 3))}
    batch = NStepBatch(
        obs=obs,
        action=jnp.zeros((pixels.shape[0], 2)),
        extras={},
        returns={"imitation": jnp.ones(pixels.shape[0])},
        discounts={"imitation": jnp.full(pixels.shape[0], 0.9)},
        next_obs=obs,
        next_extras={},
    )
    return obs, batch


def test_the_update_trains_on_shifted_frames():
    plain, shifting = pixel_learner(0), pixel_learner(2)
    # One program per learner: the critic loss of an update.
    plain_loss = jax.jit(lambda *a, **k: plain.update(*a, **k)[1]["critic_loss"])
    shifted_update = jax.jit(shifting.update)
    # Uniform frames look the same at every shift: the updates agree exactly.
    obs, batch = pixel_batch(jnp.full((8, 8, 8, 3), 77, jnp.uint8))
    state = plain.init(jax.random.key(0), obs, obs)
    key = jax.random.key(3)
    _, shifted_metrics = shifted_update(state, batch, obs, obs, key=key)
    assert plain_loss(state, batch, obs, obs, key=key) == shifted_metrics["critic_loss"]
    # Textured frames do not; the update stays finite.
    obs, batch = pixel_batch(frames(jax.random.key(4), batch=8, size=8))
    _, shifted_metrics = shifted_update(state, batch, obs, obs, key=key)
    assert plain_loss(state, batch, obs, obs, key=key) != shifted_metrics["critic_loss"]
    assert all(bool(jnp.isfinite(v)) for v in shifted_metrics.values())
    with pytest.raises(ValueError, match="random_shift > 0 needs a PRNG key"):
        shifting.update(state, batch, obs, obs)


def test_impossible_shifts_are_named():
    with pytest.raises(ValueError, match="random_shift must be >= 0"):
        D4PGConfig(random_shift=-1)
    with pytest.raises(ValueError, match="random_shift needs a network that reads pixels"):
        D4PGConfig(random_shift=2, network=NetworkConfig(inputs="features"))
    assert dataclasses.replace(D4PGConfig(), random_shift=2).random_shift == 2
