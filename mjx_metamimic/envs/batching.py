"""Stepping a batch of envs: vmap, in chunks where the backend needs it.

On XLA:CPU a vmapped ``mjx.step`` over more than ~100 envs can deadlock: the batched
LAPACK Cholesky splits the batch over the 2-thread pool and MJX runs two independent
factorisations that each hold a worker (DESIGN.md). Stepping in chunks (``lax.map`` over
chunks, ``vmap`` inside) removes the cause. Chunks of 16 envs are also the fastest
layout on CPU: 64 envs in 4 chunks of 16 took 14–22% less CPU time per env step than one
vmap of 64 or of 16 (docs/benchmarks.md). Accelerators vmap the whole batch at once.
"""

from collections.abc import Callable

import jax

CPU_CHUNK_SIZE = 16


def default_chunk_size(physics_impl: str = "jax") -> int | None:
    """The env chunk size for the default backend: 16 for MJX's JAX engine on CPU, no
    chunking elsewhere (the C engine steps the whole batch in one call: chunks would
    only split that call)."""
    return CPU_CHUNK_SIZE if jax.default_backend() == "cpu" and physics_impl == "jax" else None


def _chunk_for(batch: int, max_chunk: int) -> int:
    """Largest divisor of ``batch`` that is at most ``max_chunk``."""
    return max(c for c in range(1, min(batch, max_chunk) + 1) if batch % c == 0)


def batched(fn: Callable, chunk_size: int | None = None) -> Callable:
    """Vmaps ``fn`` over the leading axis of all its arguments, ``chunk_size`` at a time.

    Args:
      fn: a function of pytrees without a batch axis.
      chunk_size: most envs vmapped together; ``None`` vmaps the whole batch at once.
        When the batch is not a multiple, its largest divisor below ``chunk_size`` is used.

    Returns:
      A function of pytrees with a leading batch axis, returning the same.
    """
    vmapped = jax.vmap(fn)
    if chunk_size is None:
        return vmapped

    def run(*args):
        batch = jax.tree.leaves(args)[0].shape[0]
        chunk = _chunk_for(batch, chunk_size)
        if chunk == batch:
            return vmapped(*args)
        split = jax.tree.map(lambda x: x.reshape(batch // chunk, chunk, *x.shape[1:]), args)
        out = jax.lax.map(lambda a: vmapped(*a), split)
        return jax.tree.map(lambda x: x.reshape(batch, *x.shape[2:]), out)

    return run
