"""Mixed sampling from several replays at fixed ratios (e.g. agent replay + demo replay)."""

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from mjx_metamimic.replay.buffer import NStepReplay, ReplayState
from mjx_metamimic.replay.nstep import NStepBatch


def split_batch_size(batch_size: int, fractions: Sequence[float]) -> tuple[int, ...]:
    """Splits ``batch_size`` into integer parts proportional to ``fractions`` (summing exactly).

    Uses largest remainders, so e.g. (256, (0.75, 0.25)) -> (192, 64).
    """
    total = float(sum(fractions))
    if total <= 0 or any(f < 0 for f in fractions):
        raise ValueError(f"fractions must be non-negative with a positive sum, got {fractions}")
    exact = [batch_size * f / total for f in fractions]
    parts = [int(x) for x in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: parts[i] - exact[i])
    for i in by_remainder[: batch_size - sum(parts)]:
        parts[i] += 1
    return tuple(parts)


def sample_mixed(
    sources: Sequence[tuple[NStepReplay, ReplayState]],
    key: jax.Array,
    batch_size: int,
    fractions: Sequence[float],
) -> NStepBatch:
    """Samples ``batch_size`` n-step transitions, a fixed share from each source.

    Args:
        sources: (replay, state) pairs with the same step structure, n_step and gamma.
        key: PRNG key.
        batch_size: Total batch size B.
        fractions: Share of the batch per source (normalised); the split is static.

    Returns:
        The sources' batches concatenated along the batch axis, in ``sources`` order.
    """
    if len(sources) != len(fractions):
        raise ValueError("one fraction per source")
    settings = {(r.config.n_step, r.config.gamma) for r, _ in sources}
    if len(settings) != 1:
        raise ValueError(f"mixed sources need the same n_step and gamma, got {settings}")
    sizes = split_batch_size(batch_size, fractions)
    keys = jax.random.split(key, len(sources))
    batches = [
        replay.sample(state, k, size)
        for (replay, state), k, size in zip(sources, keys, sizes, strict=True)
        if size > 0
    ]
    return jax.tree.map(lambda *xs: jnp.concatenate(xs, axis=0), *batches)
