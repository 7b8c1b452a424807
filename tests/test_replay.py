"""Replay: known values eager and jitted, n-step targets vs a direct Python computation,
episode boundaries, uint8 storage, wrap-around, memory estimate."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mjx_metamimic  # noqa: F401  (default XLA flags before jax use)
from mjx_metamimic.replay import (
    NStepReplay,
    ReplayConfig,
    Transition,
    Windows,
    memory_estimate,
    nstep_batch,
)
from mjx_metamimic.training.config import split_batch_size

ROWS, STEPS, N, GAMMA = 3, 40, 3, 0.9
STREAMS = ("imitation", "task")


def make_steps(rows: int, steps: int, seed: int = 0) -> Transition:
    """Stored steps with leaves (rows, steps, ...) and random episode ends.

    Pixels encode (row, t); proprio is [row, t]; extras hold a global episode id.
    """
    rng = np.random.default_rng(seed)
    last = rng.random((rows, steps)) < 0.25
    terminated = last & (rng.random((rows, steps)) < 0.5)  # the rest are truncations
    episode = np.cumsum(np.concatenate([np.zeros((rows, 1), bool), last[:, :-1]], 1), 1)
    episode = episode + 1000 * np.arange(rows)[:, None]
    r, t = np.meshgrid(np.arange(rows), np.arange(steps), indexing="ij")
    pixels = np.broadcast_to(
        ((7 * r + t) % 256).astype(np.uint8)[..., None, None, None], (rows, steps, 4, 4, 3)
    )
    return Transition(
        obs={"pixels": pixels, "proprio": np.stack([r, t], -1).astype(np.float32)},
        action=rng.uniform(-1, 1, (rows, steps, 2)).astype(np.float32),
        reward={s: rng.normal(size=(rows, steps)).astype(np.float32) for s in STREAMS},
        discount=np.where(terminated, 0.0, 1.0).astype(np.float32),
        last=last,
        extras={"episode": episode.astype(np.int32)},
    )


def unbatched(steps: Transition) -> Transition:
    return jax.tree.map(lambda x: x[0, 0], steps)


def reference_nstep(steps: Transition, row: int, t: int, n: int, gamma: float):
    """Direct Python n-step target for the transition at (row, t)."""
    returns = dict.fromkeys(STREAMS, 0.0)
    discount = 1.0
    for k in range(n):
        for s in STREAMS:
            returns[s] += discount * float(steps.reward[s][row, t + k])
        discount *= gamma * float(steps.discount[row, t + k])
        if steps.last[row, t + k]:
            return returns, 0.0, t + k
    return returns, discount, t + n


def fill(replay: NStepReplay, steps: Transition, add_fn=None):
    state = replay.init(unbatched(steps))
    add_fn = add_fn or jax.jit(replay.add, donate_argnums=0)
    for t in range(steps.last.shape[1]):
        state = add_fn(state, jax.tree.map(lambda x, t=t: x[:, t], steps))
    return state


@pytest.fixture(scope="module")
def filled():
    steps = make_steps(ROWS, STEPS)
    replay = NStepReplay(
        ReplayConfig(capacity=ROWS * STEPS, n_step=N, gamma=GAMMA, min_size=12), ROWS
    )
    return replay, fill(replay, steps), steps


@pytest.fixture(scope="module")
def sample_jit(filled):
    replay, _, _ = filled
    return jax.jit(replay.sample, static_argnums=2)


def check_against_reference(batch, steps):
    batch = jax.device_get(batch)
    proprio = batch.obs["proprio"]
    for i, (row, t) in enumerate(proprio.astype(int)):
        returns, discount, next_t = reference_nstep(steps, row, t, N, GAMMA)
        for s in STREAMS:
            np.testing.assert_allclose(batch.returns[s][i], returns[s], rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(batch.discounts[s][i], discount, rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(batch.next_obs["proprio"][i], [row, next_t])
        np.testing.assert_array_equal(batch.action[i], steps.action[row, t])
        assert int(batch.next_extras["episode"][i]) == int(steps.extras["episode"][row, t])
        assert int(batch.obs["pixels"][i, 0, 0, 0]) == (7 * row + t) % 256


def test_nstep_hand_example():
    """n=3, gamma=0.5: no end / termination at step 1 / truncation at step 0."""
    rewards = np.array([[1.0, 2.0, 4.0, 8.0]] * 3, np.float32)
    last = np.array([[0, 0, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0]], bool)
    discount = np.array([[1, 1, 1, 1], [1, 0, 1, 1], [1, 1, 1, 1]], np.float32)
    t = np.tile(np.arange(4, dtype=np.int32), (3, 1))
    sequences = Transition(
        obs={"t": t},
        action=np.zeros((3, 4, 1), np.float32),
        reward={"r": rewards},
        discount=discount,
        last=last,
        extras={"t": t},
    )
    batch = nstep_batch(jax.tree.map(jnp.asarray, sequences), n=3, gamma=0.5)
    np.testing.assert_allclose(batch.returns["r"], [1 + 1 + 1, 1 + 1, 1])
    np.testing.assert_allclose(batch.discounts["r"], [0.125, 0.0, 0.0])
    np.testing.assert_array_equal(batch.next_obs["t"], [3, 1, 0])
    np.testing.assert_array_equal(batch.next_extras["t"], [3, 1, 0])
    np.testing.assert_array_equal(batch.ended, [0.0, 1.0, 1.0])
    # A window longer than n (a learner with a shorter n-step than the replay's windows)
    # reads only its first n + 1 steps: n=1 here never reaches row 1's end at step 1.
    short = nstep_batch(jax.tree.map(jnp.asarray, sequences), n=1, gamma=0.5)
    np.testing.assert_allclose(short.returns["r"], [1, 1, 1])
    np.testing.assert_allclose(short.discounts["r"], [0.5, 0.5, 0.0])
    np.testing.assert_array_equal(short.ended, [0.0, 0.0, 1.0])


def test_sampled_nstep_matches_python_reference_eager(filled):
    replay, state, steps = filled
    check_against_reference(replay.sample(state, jax.random.key(1), 48), steps)


def test_sampled_nstep_matches_python_reference_jit(filled, sample_jit):
    replay, state, steps = filled
    batch = sample_jit(state, jax.random.key(1), 48)
    check_against_reference(batch, steps)
    eager = replay.sample(state, jax.random.key(1), 48)  # same key: same samples
    np.testing.assert_array_equal(batch.obs["pixels"], eager.obs["pixels"])
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6), batch, eager)


def test_sampling_never_mixes_episodes(filled, sample_jit):
    replay, state, steps = filled
    batch = sample_jit(state, jax.random.key(2), 1024)
    ends = steps.last
    ended = [i for i in range(1024) if ends[tuple(batch.obs["proprio"][i].astype(int))]]
    assert ended, "no sample started on an episode's last step"
    np.testing.assert_array_equal(batch.next_extras["episode"], batch.extras["episode"])
    assert bool(jnp.all(batch.next_obs["proprio"][:, 1] >= batch.obs["proprio"][:, 1]))
    assert bool(jnp.all(batch.next_obs["proprio"][:, 1] <= batch.obs["proprio"][:, 1] + N))
    # Episodes that end within the window never bootstrap.
    cut = batch.next_obs["proprio"][:, 1] < batch.obs["proprio"][:, 1] + N
    assert bool(jnp.any(cut)) and bool(jnp.all(batch.discounts["task"][cut] == 0.0))


def test_uint8_in_uint8_out(filled, sample_jit):
    replay, state, _ = filled
    assert state.experience.obs["pixels"].dtype == jnp.uint8
    batch = sample_jit(state, jax.random.key(3), 8)
    assert batch.obs["pixels"].dtype == jnp.uint8
    assert batch.next_obs["pixels"].dtype == jnp.uint8
    assert batch.obs["pixels"].shape == (8, 4, 4, 3)


def test_add_is_donated_in_place():
    steps = make_steps(2, 4)
    replay = NStepReplay(ReplayConfig(capacity=8, n_step=1, min_size=2), 2)
    state = replay.init(unbatched(steps))
    add = jax.jit(replay.add, donate_argnums=0)
    new_state = add(state, jax.tree.map(lambda x: x[:, 0], steps))
    assert state.experience.obs["pixels"].is_deleted()
    assert int(new_state.current_index) == 1


def test_capacity_wraps_around_oldest_first():
    rows, time_length, added = 2, 8, 13
    steps = make_steps(rows, added, seed=3)
    replay = NStepReplay(ReplayConfig(capacity=rows * time_length, n_step=2, min_size=4), rows)
    state = fill(replay, steps)
    assert int(replay.size(state)) == rows * time_length
    stored_t = np.sort(np.asarray(state.experience.obs["proprio"][0, :, 1]))
    np.testing.assert_array_equal(stored_t, np.arange(added - time_length, added))
    seqs = replay.sample_sequences(state, jax.random.key(0), 512)
    t = np.asarray(seqs.obs["proprio"][..., 1]).astype(int)  # (512, 3)
    np.testing.assert_array_equal(np.diff(t, axis=1), 1)  # consecutive, never across the head
    assert set(t[:, 0]) == set(range(added - time_length, added - 2))


def reference_reaches(steps: Transition, row: int, t: int, horizon: int, stored: int) -> bool:
    """Whether a positive task reward follows (row, t) within ``horizon`` steps of its
    episode, among the ``stored`` steps: a direct loop."""
    for k in range(horizon):
        if t + k >= stored:
            return False
        if steps.reward["task"][row, t + k] > 0:
            return True
        if steps.last[row, t + k]:
            return False
    return False


@pytest.mark.parametrize("horizon", [1, 4, 40])
def test_reaches_reward_reads_the_stored_future_of_the_episode(horizon):
    rows, stored = 3, 30
    steps = make_steps(rows, 40, seed=4)
    sparse = np.where(np.random.default_rng(5).random((rows, 40)) < 0.1, 1.0, 0.0)
    steps = steps.replace(reward={**steps.reward, "task": sparse.astype(np.float32)})
    replay = NStepReplay(ReplayConfig(capacity=rows * 40, n_step=2, min_size=4), rows)
    state = fill(replay, jax.tree.map(lambda x: x[:, :stored], steps))  # the rest unseen
    windows = replay.sample_windows(state, jax.random.key(0), 256)
    reaches = np.asarray(
        jax.jit(replay.reaches_reward, static_argnums=(2, 3))(state, windows, "task", horizon)
    )
    expected = [
        reference_reaches(steps, int(r), int(t), horizon, stored)
        for r, t in zip(windows.rows, windows.starts, strict=True)
    ]
    np.testing.assert_array_equal(reaches, expected)
    assert 0 < np.mean(expected) < 1


def test_reaches_reward_after_wrap_around():
    rows, time_length, added = 2, 8, 13
    steps = make_steps(rows, added, seed=6)
    task = np.zeros((rows, added), np.float32)
    task[:, added - 3] = 1.0  # stored at the end; the oldest stored step is added - 8
    last = np.zeros((rows, added), bool)
    last[0, added - 5] = True  # row 0: an episode ends before the reward
    steps = steps.replace(reward={**steps.reward, "task": task}, last=last)
    replay = NStepReplay(ReplayConfig(capacity=rows * time_length, n_step=2, min_size=4), rows)
    state = fill(replay, steps)
    starts = jnp.arange(time_length - 2)
    windows = Windows(rows=jnp.repeat(jnp.arange(rows), starts.size), starts=jnp.tile(starts, 2))
    reaches = np.asarray(replay.reaches_reward(state, windows, "task", time_length))
    oldest = added - time_length
    for r, t, got in zip(windows.rows, windows.starts, reaches, strict=True):
        t = oldest + int(t)  # the step's time in ``steps``
        assert got == reference_reaches(steps, int(r), t, time_length, added), (r, t)
    assert reaches[:6].tolist() == [False] * 4 + [True] * 2  # row 0: only after its end
    assert reaches[6:].all()


def test_can_sample_after_min_size():
    steps = make_steps(2, 6)
    replay = NStepReplay(ReplayConfig(capacity=12, n_step=2, min_size=8), 2)
    state = replay.init(unbatched(steps))
    ready = []
    for t in range(6):
        state = replay.add(state, jax.tree.map(lambda x, t=t: x[:, t], steps))
        ready.append(bool(replay.can_sample(state)))
    assert ready == [False, False, False, True, True, True]  # 4 steps x 2 rows = 8


def test_split_batch_size():
    assert split_batch_size(256, (0.75, 0.25)) == (192, 64)
    assert split_batch_size(10, (1, 1, 1)) in {(4, 3, 3), (3, 4, 3), (3, 3, 4)}
    assert sum(split_batch_size(7, (0.3, 0.3, 0.4))) == 7
    assert split_batch_size(5, (0.0, 1.0)) == (0, 5)
    with pytest.raises(ValueError):
        split_batch_size(5, (0.0, 0.0))


def test_memory_estimate_matches_allocated_buffer(filled):
    _, state, steps = filled
    per_step = 4 * 4 * 3 + 2 * 4 + 2 * 4 + 2 * 4 + 4 + 1 + 4  # = 81 bytes
    total, text = memory_estimate(unbatched(steps), ROWS * STEPS)
    assert total == per_step * ROWS * STEPS
    assert total == sum(x.nbytes for x in jax.tree.leaves(state.experience))
    assert "120 transitions" in text and "KiB" in text
    frames, _ = memory_estimate({"f": jax.ShapeDtypeStruct((64, 64, 3), jnp.uint8)}, 100_000)
    assert frames == 100_000 * 64 * 64 * 3
