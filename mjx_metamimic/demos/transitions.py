"""D4PGfD: the demos' own transitions, with their privileged actions, as replay steps.

A demo of length L holds L - 1 transitions: at step t (0 <= t <= L - 2) the observation
d_t, the demonstrator's action a_t and the task reward of reaching d_{t+1} (the replay's
convention: a stored step's reward is that of the next observation). Its last transition
ends the episode (``last``, not terminated: bootstrapped with 0 like a time-limited agent
episode). Sequences are read from the ``DemoBank`` directly (no second buffer), uniformly
over all transitions of all demos, in the replay's stored-step format, so that
``replay.nstep_batch`` turns them into n-step batches like the agent's own.

The imitation reward of a demo transition is stored as 0 with ``imitation_weight`` 0: the
imitation learner never learns from demo actions (MetaMimic must not need them); only the
task learner does.
"""

import jax
import jax.numpy as jnp

from mjx_metamimic.demos.bank import DemoBank, goal
from mjx_metamimic.replay import Transition


def sample_transitions(bank: DemoBank, key: jax.Array, batch_size: int) -> tuple[jax.Array, ...]:
    """Uniform (demo_idx, t) over all demo transitions: both (batch_size,) int32, t <= L - 2."""
    counts = jnp.maximum(bank.lengths - 1, 1)  # transitions per demo (a 1-step demo: none)
    ends = jnp.cumsum(counts)
    flat = jax.random.randint(key, (batch_size,), 0, ends[-1], dtype=jnp.int32)
    demo_idx = jnp.searchsorted(ends, flat, side="right").astype(jnp.int32)
    t = flat - (ends[demo_idx] - counts[demo_idx])
    return demo_idx, t


def demo_sequences(
    bank: DemoBank, key: jax.Array, batch_size: int, length: int, obs_keys: tuple[str, ...]
) -> Transition:
    """Samples ``batch_size`` windows of ``length`` consecutive demo steps (stored-step format).

    Args:
      bank: demos with ``privileged_actions``.
      key: PRNG key.
      batch_size: windows B.
      length: steps per window (``n_step + 1``).
      obs_keys: observation parts the networks see.

    Returns:
      A ``Transition`` with leaves (B, length, ...): rewards ``imitation`` (0) and ``task``,
      extras ``demo_idx``, ``t`` and ``imitation_weight`` (0).

    Raises:
      ValueError: the bank holds no privileged actions.
    """
    if bank.privileged_actions is None:
        raise ValueError(
            "learner.demo_fraction > 0 (D4PGfD) needs the demos' privileged_actions: load "
            "them with demos.load(..., privileged_actions=True)"
        )
    demo_idx, t = sample_transitions(bank, key, batch_size)
    demo = jnp.broadcast_to(demo_idx[:, None], (batch_size, length))
    steps = t[:, None] + jnp.arange(length, dtype=jnp.int32)[None]  # (B, length)
    final = bank.lengths[demo] - 1  # the demo's last observation
    step = jnp.minimum(steps, final)
    obs = goal(bank, demo, step)
    zeros = jnp.zeros(steps.shape, jnp.float32)
    action_step = jnp.minimum(steps, jnp.maximum(final - 1, 0))
    task_reward = bank.task_reward[demo, jnp.minimum(steps + 1, final)]
    return Transition(
        obs={k: obs[k] for k in obs_keys},
        action=bank.privileged_actions[demo, action_step],
        reward={"imitation": zeros, "task": task_reward},
        discount=jnp.ones(steps.shape, jnp.float32),
        last=steps >= final - 1,
        extras={"demo_idx": demo, "t": step, "imitation_weight": zeros},
    )
