"""Image augmentation of a learner's batch: random shifts (DrQ, Yarats et al. 2021).

Each sample's frames are padded by replicating their border and cropped back to their size
at a random offset. A sample's observation and goal frames move together, so what the goal
asks of the scene (the arm and blocks relative to each other and to the goal's) is
unchanged; only where in the frame it sits moves.
"""

import jax
import jax.numpy as jnp

from mjx_metamimic.networks.heads import Observation


def _shift_frames(frames: jax.Array, offsets: jax.Array, pad: int) -> jax.Array:
    """Shifts each frame of ``frames`` (B, H, W, C) by its (B, 2) row/column ``offsets`` in
    [0, 2 * pad]; an offset of ``pad`` leaves a frame as it was."""
    height, width, channels = frames.shape[-3:]
    padded = jnp.pad(frames, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    crop = lambda frame, offset: jax.lax.dynamic_slice(
        frame, (offset[0], offset[1], 0), (height, width, channels)
    )
    return jax.vmap(crop)(padded, offsets)


def random_shift(
    key: jax.Array, pad: int, obs: Observation, goal: Observation | None = None
) -> tuple[Observation, Observation | None]:
    """``obs`` and ``goal`` (leading batch axis B) with every sample's ``pixels`` shifted by
    up to ``pad`` pixels each way, the same shift for a sample's observation and goal.

    Args:
        key: PRNG key of the offsets.
        pad: Largest shift in pixels (0 returns the inputs unchanged).
        obs: Observations; those without ``pixels`` are returned unchanged.
        goal: Goals of the same samples, or None.
    """
    if pad == 0 or "pixels" not in obs:
        return obs, goal
    batch = obs["pixels"].shape[0]
    offsets = jax.random.randint(key, (batch, 2), 0, 2 * pad + 1)
    shift = lambda o: {**o, "pixels": _shift_frames(o["pixels"], offsets, pad)}
    return shift(obs), (None if goal is None else shift(goal))
