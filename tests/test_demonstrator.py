"""The scripted demonstrator: it stacks, stays within the action limits, varies between
demos, and its grasp lifts and holds a cube (the physics a controller relies on)."""

import jax
import numpy as np
import pytest

import mjx_metamimic  # noqa: F401  (default XLA flags before jax use)
from mjx_metamimic.demos.demonstrator import DemonstratorConfig
from mjx_metamimic.demos.generate import episode_ends, layout_seeds

NUM_DEMOS, MAX_STEPS, SETTLE = 16, 200, 10


@pytest.fixture(scope="module")
def recorder(demo_recorder):
    assert (demo_recorder.max_steps, demo_recorder.batch_size) == (MAX_STEPS, NUM_DEMOS)
    return demo_recorder  # conftest's (it renders 16x16 frames, which these tests ignore)


@pytest.fixture(scope="module")
def env(recorder):
    return recorder.env


@pytest.fixture(scope="module")
def recording(recorder):
    return jax.tree.map(np.asarray, recorder.record(layout_seeds(0, 0, NUM_DEMOS)))


def test_recording_is_whole_demos(recording):
    assert recording.frames.shape[:2] == (NUM_DEMOS, MAX_STEPS)
    np.testing.assert_array_equal(recording.lengths, MAX_STEPS)
    np.testing.assert_array_equal(recording.layout_seed, layout_seeds(0, 0, NUM_DEMOS))
    assert recording.states.qpos.shape[:2] == (NUM_DEMOS, MAX_STEPS)


def test_stacks_at_least_15_of_16(recording):
    success, length = episode_ends(recording.task_reward, SETTLE)
    assert success.sum() >= 15, f"only {success.sum()} of {NUM_DEMOS} demos stacked"
    for i in np.flatnonzero(success):
        # The task reward is really 1 at the episode's end and stays 1 to the last step.
        assert recording.task_reward[i, length[i] - 1] == 1.0
        assert np.all(recording.task_reward[i, length[i] - SETTLE :] == 1.0)
    # Demos are ~200-step scale and the stack comes well before the end.
    assert 80 <= length[success].mean() <= MAX_STEPS


def test_actions_within_limits(recording):
    actions = recording.privileged_actions  # (B, T, 7)
    assert np.all(np.isfinite(actions))
    assert np.all(np.abs(actions) <= 1.0)
    grip = actions[..., 6]
    cfg = DemonstratorConfig()
    opened = (grip >= cfg.gripper_open[0]) & (grip <= cfg.gripper_open[1])
    assert np.all((grip == -1.0) | opened)


def test_no_two_demos_alike(recorder, recording):
    # Different layouts: different motions.
    proprio = recording.proprio.reshape(NUM_DEMOS, -1)
    distances = np.linalg.norm(proprio[:, None] - proprio[None], axis=-1)
    assert np.all(distances[~np.eye(NUM_DEMOS, dtype=bool)] > 1.0)
    # Every demo draws its own style: speed, heights, noise, gripper opening, ...
    _, controller = recorder.initial(layout_seeds(0, 0, NUM_DEMOS))
    for name in ("speed", "approach_height", "carry_height", "action_noise", "gripper_open"):
        values = np.asarray(getattr(controller.params, name))
        assert len(np.unique(values)) == NUM_DEMOS, name
    _, length = episode_ends(recording.task_reward, SETTLE)
    assert np.std(length[length > 0]) > 5.0


def test_grasp_lifts_cube_5cm_and_holds_it_1s(env, recorder, recording):
    """Replays each demo until its cube is 7 cm up, then holds the arm still for 1 s."""
    hold_steps = int(round(1.0 / env.dt))
    features = recording.features  # (B, T, 26): grip (3), block positions (2x3), ...
    height = features[..., 5:9:3] - env.ids.block_half_size  # (B, T, 2) above the table
    lifted = np.any(height > 0.07, axis=-1)  # (B, T)
    assert np.all(lifted.any(axis=1))
    t_lift = lifted.argmax(axis=1)  # (B,)
    block = height[np.arange(NUM_DEMOS), t_lift].argmax(axis=1)  # (B,) the lifted cube
    actions = recording.privileged_actions.copy()
    after = np.arange(MAX_STEPS)[None] >= t_lift[:, None]  # (B, T)
    actions[after] = np.concatenate([np.zeros(6), [-1.0]])  # arm still, gripper closed
    replay = jax.tree.map(np.asarray, recorder.replay(recording.init_state, actions))
    rows = np.arange(NUM_DEMOS)
    for dt in range(1, hold_steps + 1):
        f = replay.features[rows, t_lift + dt]  # (B, 26)
        pos = f[:, 3:9].reshape(-1, 2, 3)[rows, block]  # (B, 3)
        assert np.all(pos[:, 2] - env.ids.block_half_size > 0.05), dt
        assert np.all(np.linalg.norm(pos - f[:, :3], axis=-1) < 0.03), dt
