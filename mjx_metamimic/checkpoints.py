"""Saving and restoring the whole ``TrainState`` (learners, replay, envs, RNG) with orbax.

orbax cannot store zero-size arrays (MJX's ``Data`` has several), so a checkpoint holds
the state's non-empty leaves in flattening order; restoring fills the empty ones back in
from the structure of a freshly built state.
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp


def manager(run_dir: Path, max_to_keep: int = 2) -> ocp.CheckpointManager:
    """The run's checkpoint manager (``<run_dir>/checkpoints``), saving synchronously."""
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, enable_async_checkpointing=False, create=True
    )
    return ocp.CheckpointManager(Path(run_dir).resolve() / "checkpoints", options=options)


def _non_empty(leaves) -> dict[str, jax.Array]:
    return {f"{i:05d}": x for i, x in enumerate(leaves) if x.size}


def save(mgr: ocp.CheckpointManager, step: int, state) -> None:
    """Writes ``state`` as checkpoint ``step`` (atomic: orbax renames a finished temp dir)."""
    mgr.save(step, args=ocp.args.StandardSave(_non_empty(jax.tree.leaves(state))), force=True)
    mgr.wait_until_finished()


def restore_latest(mgr: ocp.CheckpointManager, like) -> tuple[int, object]:
    """Restores the newest checkpoint into the structure of ``like`` (a state of the run).

    Raises:
      FileNotFoundError: the run has no checkpoint.
      ValueError: the checkpoint's arrays do not fit ``like`` (another config or version of
        the networks made it).
    """
    step = mgr.latest_step()
    if step is None:
        raise FileNotFoundError(f"no checkpoint in {mgr.directory}")
    leaves, treedef = jax.tree.flatten(like)
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _non_empty(leaves))
    try:
        restored = mgr.restore(step, args=ocp.args.StandardRestore(abstract))
    except ValueError as error:
        raise ValueError(
            f"checkpoint {step} in {mgr.directory} does not fit this run's training state "
            f"(was it saved by another config or version of the networks?): {error}"
        ) from error
    leaves = [restored.get(f"{i:05d}", x) for i, x in enumerate(leaves)]
    # A jitted copy gives arrays like any jitted function's outputs, so the training
    # chunk's compilation cache is hit rather than extended.
    return step, jax.jit(lambda s: jax.tree.map(jnp.copy, s))(jax.tree.unflatten(treedef, leaves))
