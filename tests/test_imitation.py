"""The imitation reward: terms, weights, early termination, config errors."""

import jax.numpy as jnp
import numpy as np
import pytest

from mjx_metamimic.envs.stack import FEATURES_PARTS, FEATURES_SIZE, PROPRIO_PARTS, PROPRIO_SIZE
from mjx_metamimic.imitation_reward import ImitationRewardConfig, imitation_reward


def _obs(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "pixels": jnp.asarray(rng.integers(0, 256, (8, 8, 3)), jnp.uint8),
        "proprio": jnp.asarray(rng.normal(size=PROPRIO_SIZE), jnp.float32),
        "features": jnp.asarray(rng.normal(size=FEATURES_SIZE), jnp.float32),
    }


ALL_TERMS = ImitationRewardConfig(
    pixels_weight=0.2,
    joints_weight=0.2,
    joint_velocities_weight=0.2,
    gripper_weight=0.2,
    blocks_weight=0.2,
)


def test_identical_observations_earn_the_sum_of_weights():
    obs = _obs()
    reward, drifted, metrics = imitation_reward(ALL_TERMS, obs, obs)
    np.testing.assert_allclose(float(reward), 1.0, rtol=1e-6)
    assert not bool(drifted)
    for term in ("pixels", "joints", "joint_velocities", "gripper", "blocks"):
        assert float(metrics[f"imitation/{term}"]) == pytest.approx(1.0)
        assert float(metrics[f"imitation/{term}_error"]) == pytest.approx(0.0, abs=1e-6)


def test_each_term_follows_its_distance():
    obs = _obs()
    target = dict(obs)
    dq = np.zeros(PROPRIO_SIZE, np.float32)
    dq[PROPRIO_PARTS["joint_pos"]] = [0.1, 0, 0, 0, 0, 0]  # |dq| = 0.1 rad
    target["proprio"] = obs["proprio"] + dq
    config = ImitationRewardConfig(joints_weight=1.0, gripper_weight=0.0, blocks_weight=0.0)
    reward, drifted, metrics = imitation_reward(config, obs, target)
    # joints_scale 100: exp(-100 * 0.1^2) = exp(-1)
    np.testing.assert_allclose(float(reward), np.exp(-1.0), rtol=1e-4)
    assert float(metrics["imitation/joints_error"]) == pytest.approx(0.1, rel=1e-4)
    assert not bool(drifted)

    db = np.zeros(FEATURES_SIZE, np.float32)
    db[FEATURES_PARTS["block_pos"].start] = 0.05  # 5 cm: exp(-400 * 0.05^2) = exp(-1)
    target = {**obs, "features": obs["features"] + db}
    config = ImitationRewardConfig(joints_weight=0.0, gripper_weight=0.0, blocks_weight=1.0)
    reward, _, _ = imitation_reward(config, obs, target)
    np.testing.assert_allclose(float(reward), np.exp(-1.0), rtol=1e-4)


def test_pixel_term_is_lower_for_more_different_frames():
    obs = _obs()
    config = ImitationRewardConfig(
        pixels_weight=1.0, joints_weight=0.0, gripper_weight=0.0, blocks_weight=0.0
    )
    near = {
        **obs,
        "pixels": jnp.clip(obs["pixels"].astype(jnp.int32) + 10, 0, 255).astype(jnp.uint8),
    }
    far = {**obs, "pixels": 255 - obs["pixels"]}
    r_near = float(imitation_reward(config, obs, near)[0])
    r_far = float(imitation_reward(config, obs, far)[0])
    assert 1.0 > r_near > r_far > 0.0


def test_drift_beyond_threshold_terminates():
    obs = _obs()
    dq = np.zeros(PROPRIO_SIZE, np.float32)
    dq[PROPRIO_PARTS["joint_pos"]] = [0.3, 0.3, 0.0, 0, 0, 0]  # |dq| = 0.42 rad > 0.4
    target = {**obs, "proprio": obs["proprio"] + dq}
    assert bool(imitation_reward(ImitationRewardConfig(), obs, target)[1])
    off = ImitationRewardConfig(termination_joint_error=0.0)
    assert not bool(imitation_reward(off, obs, target)[1])


def test_bad_configs_are_rejected():
    with pytest.raises(ValueError, match="at least one term"):
        ImitationRewardConfig(joints_weight=0.0, gripper_weight=0.0, blocks_weight=0.0)
    with pytest.raises(ValueError, match="pixels"):
        ImitationRewardConfig(pixels_weight=1.0, pixels_scale=0.0)
