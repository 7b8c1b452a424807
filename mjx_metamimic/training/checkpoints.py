"""Saving and restoring the whole ``TrainState`` (learners, replay, envs, RNG) with orbax.

A checkpoint is the state's arrays under their names in the state (``learners/imitation/
actor_params/...``, ``replay/experience/obs/pixels``, ``env_state/pipeline_state/qpos``,
``key``, ...), so it can be read without this code and a changed structure fails by name.
orbax cannot store zero-size arrays (MJX's ``Data`` has several): those are left out and
filled back in from the structure of a freshly built state on restore.

What resume needs is all of it: the learners (parameters, targets, optimiser states), the
replay (a run resumed without it would restart learning from an empty buffer), the envs
mid-episode and the RNG key, so that a resumed run continues exactly. The replay dominates
the size: ``replay.memory_estimate`` gives it (see docs/benchmarks.md for each config).
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


def _key_name(entry) -> str:
    """One path entry of a pytree leaf as a name (field, dict key or index)."""
    for attr in ("name", "key", "idx"):
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    raise TypeError(f"unsupported pytree path entry {entry!r}")


def _named_leaves(tree) -> list[tuple[tuple[str, ...], jax.Array]]:
    """(path names, leaf) of every leaf, in flattening order."""
    return [
        (tuple(_key_name(e) for e in path), leaf)
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
    ]


def _nested(named: list[tuple[tuple[str, ...], object]]) -> dict:
    """Nested dicts of the non-empty leaves by their path names."""
    root: dict = {}
    for names, leaf in named:
        if not leaf.size:
            continue
        node = root
        for name in names[:-1]:
            node = node.setdefault(name, {})
        node[names[-1]] = leaf
    return root


def _lookup(tree: dict, names: tuple[str, ...]):
    for name in names:
        tree = tree[name]
    return tree


def _with_weak_type(value, like):
    """``value``, weakly typed where ``like`` is (orbax restores every array strongly typed,
    and a changed weak type would make the training chunk compile again)."""
    if not getattr(like, "weak_type", False):
        return value
    if value.shape:
        raise ValueError(f"cannot restore a weakly typed array of shape {value.shape}")
    return jnp.asarray(value.item())  # a Python scalar becomes a weakly typed array


def save(mgr: ocp.CheckpointManager, step: int, state) -> None:
    """Writes ``state`` as checkpoint ``step`` (atomic: orbax renames a finished temp dir).

    A checkpoint of the same step already on disk is kept as it is: a run resumed from
    step N is at the state that checkpoint holds.
    """
    if step in mgr.all_steps():
        return
    mgr.save(step, args=ocp.args.StandardSave(_nested(_named_leaves(state))), force=True)
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
    named = _named_leaves(like)
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _nested(named))
    try:
        restored = mgr.restore(step, args=ocp.args.StandardRestore(abstract))
    except (ValueError, KeyError) as error:
        raise ValueError(
            f"checkpoint {step} in {mgr.directory} does not fit this run's training state "
            f"(was it saved by another config or version of the networks?): {error}"
        ) from error
    leaves = [_lookup(restored, names) if leaf.size else leaf for names, leaf in named]
    leaves = [_with_weak_type(x, leaf) for x, (_, leaf) in zip(leaves, named, strict=True)]
    state = jax.tree.unflatten(jax.tree.structure(like), leaves)
    # A jitted copy gives arrays like any jitted function's outputs, so the training
    # chunk's compilation cache is hit rather than extended.
    return step, jax.jit(lambda s: jax.tree.map(jnp.copy, s))(state)
