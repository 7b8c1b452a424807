"""Several learner updates per jit call, as one ``lax.scan``."""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

UpdateFn = Callable[[Any, Any], tuple[Any, dict[str, jax.Array]]]


def scan_updates(update_fn: UpdateFn, state: Any, batches: Any) -> tuple[Any, dict[str, jax.Array]]:
    """Applies ``update_fn`` once per batch along the leading axis U of ``batches``.

    Args:
        update_fn: (state, batch) -> (state, metrics).
        state: Initial learner state.
        batches: Pytree whose leaves have a leading axis U (one batch per update).

    Returns:
        The final state and the metrics averaged over the U updates.
    """
    state, metrics = jax.lax.scan(update_fn, state, batches)
    return state, jax.tree.map(lambda x: jnp.mean(x, axis=0), metrics)


def scan_sampled_updates(
    update_fn: UpdateFn,
    sample_fn: Callable[[jax.Array], Any],
    state: Any,
    key: jax.Array,
    num_updates: int,
) -> tuple[Any, dict[str, jax.Array]]:
    """Runs ``num_updates`` updates, sampling a fresh batch inside the scan for each.

    The replay state should be closed over by ``sample_fn`` (not carried): sampling only
    reads it, and keeping it out of the scan carry avoids copying the buffer.

    Args:
        update_fn: (state, batch) -> (state, metrics).
        sample_fn: key -> batch.
        state: Initial learner state.
        key: PRNG key, split once per update.
        num_updates: U, a static Python int.

    Returns:
        The final state and the metrics averaged over the U updates.
    """

    def body(carry, step_key):
        return update_fn(carry, sample_fn(step_key))

    state, metrics = jax.lax.scan(body, state, jax.random.split(key, num_updates))
    return state, jax.tree.map(lambda x: jnp.mean(x, axis=0), metrics)
