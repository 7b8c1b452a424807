"""Demonstrations on device: sampling and goal lookup inside jit.

``DemoBank`` is ``Demos`` (``format``) with jax leaves: ``DemoBank.from_demos(demos)`` or
``demos.to_device()`` puts loaded demos on device. Build one bank per split
(``load(path, "train")`` and ``load(path, "validation")``); the split is fixed by the
dataset's manifest. The bank holds no privileged actions unless they were loaded explicitly
(the D4PGfD baseline).
"""

import jax
import jax.numpy as jnp

from mjx_metamimic.demos.format import Demos
from mjx_metamimic.envs.stack import PROPRIO_PARTS, SimState

DemoBank = Demos
"""Demos on device (jax leaves): the name the training code uses for ``Demos`` there."""


def sample(bank: DemoBank, key: jax.Array, batch_size: int) -> tuple[jax.Array, jax.Array]:
    """Uniform demo indices and, per demo, a uniform step within its episode.

    Returns:
      demo_idx (batch_size,) int32 and t (batch_size,) int32 with 0 <= t < length.
    """
    k_demo, k_step = jax.random.split(key)
    demo_idx = jax.random.randint(k_demo, (batch_size,), 0, bank.num_demos, dtype=jnp.int32)
    length = bank.lengths[demo_idx]
    u = jax.random.uniform(k_step, (batch_size,))
    t = jnp.minimum((u * length).astype(jnp.int32), length - 1)
    return demo_idx, t


def goal(bank: DemoBank, demo_idx: jax.Array, t: jax.Array) -> dict[str, jax.Array]:
    """The observation of demo ``demo_idx`` at step ``t``, clipped to [0, length - 1].

    ``demo_idx`` and ``t`` are int arrays of the same shape S (scalars work too).

    Returns:
      {"pixels": S + (H, W, 3) uint8, "proprio": S + (P,) float32,
       "features": S + (F,) float32}
    """
    t = jnp.clip(t, 0, bank.lengths[demo_idx] - 1)
    return {
        "pixels": bank.frames[demo_idx, t],
        "proprio": bank.proprio[demo_idx, t],
        "features": bank.features[demo_idx, t],
    }


def paused(bank: DemoBank, demo_idx: jax.Array, t: jax.Array) -> jax.Array:
    """Whether demo ``demo_idx`` holds its arm still from step ``t`` to ``t + 1``: its
    controller setpoint is unchanged (the demonstrator's pauses, its grasp and release, the
    steps after the stack; in the shipped demos all but 0.01% of the moving steps change
    it by more than 1e-3). Steps are clipped to the demo as in ``goal``, so its last step
    counts as still.

    Returns:
      bool array of the shape of ``demo_idx`` and ``t``.
    """
    last = bank.lengths[demo_idx] - 1
    setpoint = lambda s: bank.proprio[demo_idx, jnp.clip(s, 0, last), PROPRIO_PARTS["setpoint"]]
    return jnp.all(jnp.abs(setpoint(t + 1) - setpoint(t)) < 1e-6, axis=-1)


def init_states(bank: DemoBank, demo_idx: jax.Array) -> SimState:
    """The initial simulator states of demos ``demo_idx`` (for ``env.reset_to``)."""
    return jax.tree.map(lambda x: x[demo_idx], bank.init_state)


def states_at(bank: DemoBank, demo_idx: jax.Array, t: jax.Array) -> SimState:
    """The simulator states of demos ``demo_idx`` at steps ``t`` (for ``env.reset_to``).

    Raises:
      ValueError: the bank holds no per-step states (a dataset written before they were
        recorded: regenerate it).
    """
    if bank.states is None:
        raise ValueError(
            "the demo bank holds no per-step simulator states (states.*): the dataset "
            "predates them; regenerate it with `mjx-metamimic demos`"
        )
    return jax.tree.map(lambda x: x[demo_idx, t], bank.states)
