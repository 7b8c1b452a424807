"""Side-by-side imitation videos: the agent's rollout rendered beside the demo's frames."""

from pathlib import Path

import imageio.v3 as iio
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_loop import tiny_config

from mjx_metamimic.demos import DemoBank
from mjx_metamimic.render.video_file import mp4_available, write_video
from mjx_metamimic.training import build
from mjx_metamimic.training.actors import select_obs
from mjx_metamimic.training.video import ImitationVideo, bar_height, resize_nearest

SIZE = 32
LENGTHS = (14, 10)  # the second demo ends early and then holds its last frame
FRAME = 8  # the demos' own frame size


def demo_bank(env) -> DemoBank:
    """Demos that start from fresh layouts and stand still, with distinctive frames (a
    moving square per demo); the physics is not stepped, to keep compile time low."""
    num, steps = len(LENGTHS), max(LENGTHS)
    states = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(0), num))
    tile = lambda x: jnp.repeat(x[:, None], steps, axis=1)
    frames = np.zeros((num, steps, FRAME, FRAME, 3), np.uint8)
    for n in range(num):
        for t in range(steps):
            frames[n, t, :, :] = (30 + 100 * n, 60, 90)
            frames[n, t, t % FRAME, :3] = (250, 250, 40 * n)
    return DemoBank(
        frames=jnp.asarray(frames),
        proprio=tile(states.obs["proprio"]),
        features=tile(states.obs["features"]),
        task_reward=jnp.zeros((num, steps)),
        lengths=jnp.asarray(LENGTHS, jnp.int32),
        init_state=jax.vmap(env.sim_state)(states),
    )


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    algo = build(tiny_config())
    bank = demo_bank(algo.env)
    obs = select_obs(
        {"proprio": bank.proprio[0, 0], "features": bank.features[0, 0]}, algo.config.obs_keys
    )
    goal = algo.imitation.goal(bank, jnp.int32(0), jnp.int32(0))
    params = algo.learners.learners["imitation"].actor.init(jax.random.PRNGKey(1), obs, goal)
    video = ImitationVideo(algo, SIZE)
    path = video.write(params, bank, tmp_path_factory.mktemp("video") / "imitation.gif", 2)
    return algo, bank, params, video, path


def test_video_file_has_one_frame_per_demo_step(setup):
    _, _, _, _, path = setup
    frames = iio.imread(path, index=None)
    row = SIZE + bar_height(SIZE)
    assert frames.shape == (max(LENGTHS), 2 * row, 2 * SIZE, 3)


def test_right_half_shows_the_demo_frames(setup):
    _, bank, _, _, path = setup
    frames = iio.imread(path, index=None).astype(np.float32)
    row = SIZE + bar_height(SIZE)
    demos = np.asarray(resize_nearest(bank.frames, SIZE), np.float32)
    for n, length in enumerate(LENGTHS):
        t = np.minimum(np.arange(max(LENGTHS)), length - 1)  # held after the demo ends
        right = frames[:, n * row : n * row + SIZE, SIZE:]
        assert np.abs(right - demos[n, t]).mean() < 2.0, n  # GIF palettes may shift colours


def test_left_half_shows_the_agent_moving(setup):
    algo, bank, params, video, path = setup
    frames = iio.imread(path, index=None).astype(np.float32)
    left = frames[:, :SIZE, :SIZE]
    change = np.abs(np.diff(left, axis=0)).mean(axis=(1, 2, 3))
    assert np.count_nonzero(change > 0) >= LENGTHS[0] // 2  # the arm moves on most steps
    assert np.abs(left[-1] - left[0]).mean() > 1.0
    # Frame 0 is the demo's first simulator state: the same render for both demos' starts
    # would be a bug (the two layouts differ).
    out = video.rollouts(params, bank, [0, 1])
    assert np.abs(out["agent"][0, 0].astype(float) - out["agent"][1, 0]).mean() > 1.0


def test_rollouts_are_deterministic_and_compiled_once(setup):
    algo, bank, params, video, _ = setup
    a = video.rollouts(params, bank, [0, 1])
    b = video.rollouts(params, bank, [0, 1])
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert a["agent"].dtype == np.uint8 and a["agent"].shape[-3:] == (SIZE, SIZE, 3)
    assert a["reward"][:, 0].tolist() == [0.0, 0.0]
    assert np.all((a["reward"] >= 0) & (a["reward"] <= video.max_reward + 1e-6))
    assert video._rollout._cache_size() == 1


def test_resize_nearest_repeats_pixels():
    image = jnp.arange(2 * 2 * 3, dtype=jnp.uint8).reshape(2, 2, 3)
    np.testing.assert_array_equal(
        resize_nearest(image, 6), np.repeat(np.repeat(np.asarray(image), 3, 0), 3, 1)
    )


def test_video_formats(tmp_path: Path):
    frames = np.zeros((3, 4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="unknown video format"):
        write_video(tmp_path / "clip.avi", frames, 20)
    if mp4_available():
        write_video(tmp_path / "clip.mp4", frames, 20)
        assert iio.imread(tmp_path / "clip.mp4", index=None, plugin="pyav").shape == frames.shape
    else:
        with pytest.raises(ValueError, match="PyAV"):
            write_video(tmp_path / "clip.mp4", frames, 20)
