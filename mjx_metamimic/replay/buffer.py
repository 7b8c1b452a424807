"""Device-resident n-step replay: a thin layer over flashbax's trajectory buffer.

Storage is one row per env and a time axis (rows x capacity/rows); each env step is stored
once (its frame is not duplicated as the previous step's next observation), leaves keep
their dtypes (uint8 frames stay uint8). Sampling (by index, so a window's stored future
can also be read: ``reaches_reward``) takes sequences of ``n_step + 1`` steps of
one row and turns them into n-step targets (see ``replay.nstep``).

All functions are pure and jittable. Jit ``add`` with ``donate_argnums`` on the state (or
carry the state through the jitted training chunk that donates it) so the buffer is
updated in place instead of copied.
"""

import dataclasses
import math

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from flashbax.buffers import trajectory_buffer as fbx_trajectory

from mjx_metamimic.replay.nstep import NStepBatch, Transition, nstep_batch

ReplayState = fbx_trajectory.TrajectoryBufferState


@flax.struct.dataclass
class Windows:
    """Where sampled windows lie: (B,) int32 ``rows`` and ``starts``, the starts counted in
    steps from the row's oldest stored step."""

    rows: jax.Array
    starts: jax.Array


@dataclasses.dataclass(frozen=True)
class ReplayConfig:
    """Replay size and n-step target settings."""

    capacity: int = 100_000
    """Transitions stored over all env rows (rounded down to a multiple of the row count)."""
    n_step: int = 5
    """Transitions per bootstrapped target."""
    gamma: float = 0.99
    """Per-step discount of the n-step returns (all reward streams)."""
    min_size: int = 1_000
    """Transitions stored before sampling is allowed (at least n_step + 1 per row)."""


def _check_step(step: Transition) -> None:
    if not isinstance(step, Transition):
        raise ValueError(f"a stored step is a replay.Transition, got {type(step).__name__}")
    if not isinstance(step.reward, dict) or not step.reward:
        raise ValueError("Transition.reward must be a non-empty dict {stream_name: scalar}")


def memory_estimate(example_step: Transition, capacity: int) -> tuple[int, str]:
    """Bytes needed to store ``capacity`` steps shaped like ``example_step`` (one unbatched step).

    Returns:
        (bytes, human-readable summary).
    """
    per_step = sum(
        math.prod(np.shape(x)) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(example_step)
    )
    total = per_step * capacity
    size, unit = float(total), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            break
        size /= 1024
    return total, f"{capacity:,} transitions x {per_step:,} B = {size:.2f} {unit}"


class NStepReplay:
    """Trajectory replay with one row per env and n-step sampling.

    Args:
        config: Capacity and n-step settings.
        num_rows: Rows of the buffer: the env count E of the steps passed to ``add``.
        max_n_step: the longest n-step return any learner takes from the sampled windows
            (at least ``config.n_step``; windows are ``max_n_step + 1`` steps long).
    """

    def __init__(self, config: ReplayConfig, num_rows: int, max_n_step: int = 0):
        self.config = config
        self.num_rows = num_rows
        self.sequence_length = max(config.n_step, max_n_step) + 1
        self.time_length = config.capacity // num_rows
        if self.time_length < self.sequence_length:
            raise ValueError(
                f"capacity {config.capacity} gives {self.time_length} steps per row for "
                f"{num_rows} rows; need at least the longest n-step + 1 = {self.sequence_length}"
            )
        self.min_time_length = min(
            self.time_length, max(self.sequence_length, -(-config.min_size // num_rows))
        )

    def init(self, example_step: Transition) -> ReplayState:
        """Allocates an empty buffer for steps shaped like ``example_step`` (no env axis)."""
        _check_step(example_step)
        return fbx_trajectory.init(example_step, self.num_rows, self.time_length)

    def add(self, state: ReplayState, step: Transition) -> ReplayState:
        """Appends one env step for every row: leaves of ``step`` are (E, ...)."""
        return self.add_sequence(state, jax.tree.map(lambda x: x[:, None], step))

    def add_sequence(self, state: ReplayState, steps: Transition) -> ReplayState:
        """Appends T consecutive steps for every row: leaves of ``steps`` are (E, T, ...)."""
        return fbx_trajectory.add(state, steps)

    def can_sample(self, state: ReplayState) -> jax.Array:
        """() bool: whether ``min_size`` transitions (and n_step + 1 per row) are stored."""
        return fbx_trajectory.can_sample(state, self.min_time_length)

    def size(self, state: ReplayState) -> jax.Array:
        """() int32: transitions currently stored."""
        return (self._stored_steps(state) * self.num_rows).astype(jnp.int32)

    def sample_windows(self, state: ReplayState, key: jax.Array, batch_size: int) -> Windows:
        """Uniformly samples where ``batch_size`` windows of ``sequence_length`` steps start.

        As flashbax's uniform trajectory sampling (period 1): a row, and a start between the
        oldest stored step and the last one a whole window still fits before the newest.
        Windows may span episode boundaries (``nstep_batch`` never uses data past an
        episode's end).
        """
        key_start, key_row = jax.random.split(key)
        stored = self._stored_steps(state)
        starts = jax.random.randint(
            key_start, (batch_size,), 0, jnp.maximum(stored - self.sequence_length + 1, 0)
        )
        rows = jax.random.randint(key_row, (batch_size,), 0, self.num_rows)
        return Windows(rows=rows, starts=starts)

    def gather(self, state: ReplayState, windows: Windows) -> Transition:
        """The steps of ``windows``: leaves (B, sequence_length, ...)."""
        times = self._physical(state, windows.starts[:, None] + jnp.arange(self.sequence_length))
        return jax.tree.map(lambda x: x[windows.rows[:, None], times], state.experience)

    def sample_sequences(self, state: ReplayState, key: jax.Array, batch_size: int) -> Transition:
        """Uniformly samples ``batch_size`` windows of steps: leaves (B, sequence_length, ...)."""
        return self.gather(state, self.sample_windows(state, key, batch_size))

    def reaches_reward(
        self, state: ReplayState, windows: Windows, stream: str, horizon: int
    ) -> jax.Array:
        """(B,) bool: whether each window's first step is followed, within ``horizon`` steps
        of its episode (itself included), by a positive ``stream`` reward.

        A hindsight label read from the stored future of the row: steps past the episode's
        last stored step, or not stored yet, never count.
        """
        offsets = windows.starts[:, None] + jnp.arange(horizon)  # (B, H) logical times
        times = self._physical(state, offsets)
        rows = windows.rows[:, None]
        positive = state.experience.reward[stream][rows, times] > 0
        last = state.experience.last[rows, times].astype(jnp.int32)
        in_episode = (jnp.cumsum(last, axis=1) - last) == 0  # no episode end before it
        stored = offsets < self._stored_steps(state)
        return jnp.any(positive & in_episode & stored, axis=1)

    def _stored_steps(self, state: ReplayState) -> jax.Array:
        """() int32: steps stored per row."""
        return jnp.where(state.is_full, self.time_length, state.current_index)

    def _physical(self, state: ReplayState, logical: jax.Array) -> jax.Array:
        """Time indices in storage of logical times counted from the oldest stored step."""
        oldest = jnp.where(state.is_full, state.current_index, 0)
        return (oldest + logical) % self.time_length

    def sample(self, state: ReplayState, key: jax.Array, batch_size: int) -> NStepBatch:
        """Samples a batch of ``batch_size`` n-step transitions."""
        sequences = self.sample_sequences(state, key, batch_size)
        return nstep_batch(sequences, self.config.n_step, self.config.gamma)
