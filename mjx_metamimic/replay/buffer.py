"""Device-resident n-step replay: a thin layer over flashbax's trajectory buffer.

Storage is one row per env and a time axis (rows x capacity/rows); each env step is stored
once (its frame is not duplicated as the previous step's next observation), leaves keep
their dtypes (uint8 frames stay uint8). Sampling takes sequences of ``n_step + 1`` steps of
one row and turns them into n-step targets (see ``replay.nstep``).

All functions are pure and jittable. Jit ``add`` with ``donate_argnums`` on the state (or
carry the state through the jitted training chunk that donates it) so the buffer is
updated in place instead of copied.
"""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
from flashbax.buffers import trajectory_buffer as fbx_trajectory

from mjx_metamimic.replay.nstep import NStepBatch, Transition, nstep_batch

ReplayState = fbx_trajectory.TrajectoryBufferState


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
        steps = jnp.where(state.is_full, self.time_length, state.current_index)
        return (steps * self.num_rows).astype(jnp.int32)

    def sample_sequences(self, state: ReplayState, key: jax.Array, batch_size: int) -> Transition:
        """Uniformly samples ``batch_size`` windows of ``sequence_length`` steps: leaves
        (B, sequence_length, ...).

        Windows lie within one row and between the oldest and newest stored steps; they may
        span episode boundaries (``nstep_batch`` never uses data past an episode's end).
        """
        sample = fbx_trajectory.sample(state, key, batch_size, self.sequence_length, period=1)
        return sample.experience

    def sample(self, state: ReplayState, key: jax.Array, batch_size: int) -> NStepBatch:
        """Samples a batch of ``batch_size`` n-step transitions."""
        sequences = self.sample_sequences(state, key, batch_size)
        return nstep_batch(sequences, self.config.n_step, self.config.gamma)
