"""n-step targets from sampled sequences of stored steps.

A stored step (one env row, one time index) is a ``Transition``: ``discount`` is 0.0 when
the episode terminated after this step, ``last`` is True when this step is the last of its
episode (the row's next stored step starts a new episode, auto-reset). Given a sequence
s_t .. s_{t+n} of one row:

* ``m`` = number of transitions used: n, or fewer when the episode ends at t+k (k < n),
  then m = k + 1 (rewards after the episode's last step are never used).
* return R = sum_{k<m} gamma^k (prod_{j<k} d_{t+j}) r_{t+k}, per reward stream.
* bootstrap discount = gamma^n prod_{k<n} d_{t+k} when the episode did not end in the
  window, else 0. A truncated episode (``last`` with ``discount`` 1) is bootstrapped with
  0 as well: its terminal observation is never stored (the env auto-resets and each frame is
  stored once), so there is nothing to bootstrap from. This treats time-limit truncation as
  termination - a bias for the last n steps of a truncated episode, which a learner avoids
  by leaving out the samples marked ``ended`` (``D4PGConfig.episode_ends="truncation"``).
* bootstrap obs/extras = those of step t+m when the episode continues, else of the
  episode's last step t+m-1 (unused since its discount is 0, but from the same episode):
  a batch element never holds two episodes' data.
"""

import flax.struct
import jax
import jax.numpy as jnp


@flax.struct.dataclass
class Transition:
    """One stored env step (leading axes, if any, are the caller's: (E,), (B, L), ...).

    Attributes:
        obs: Observation the action was taken in, e.g. ``pixels`` (H, W, 3) uint8.
        action: (A,) float32 action taken.
        reward: {stream: () float32} reward of reaching the next observation.
        discount: () float32, 0.0 when the episode terminated after this step.
        last: () bool, whether this is the episode's last stored step.
        extras: Anything else stored with the step (e.g. demo index, weights).
    """

    obs: dict
    action: jax.Array
    reward: dict
    discount: jax.Array
    last: jax.Array
    extras: dict


@flax.struct.dataclass
class NStepBatch:
    """A batch of n-step transitions (leading batch axis B on every leaf).

    Attributes:
        obs: Observation at t, e.g. ``pixels`` (B, H, W, 3) uint8, ``proprio`` (B, P) f32.
        action: (B, A) float32 action taken at t.
        extras: Extras stored at t (e.g. goal indices), leaves (B, ...).
        returns: {stream: (B,) float32} discounted n-step return.
        discounts: {stream: (B,) float32} bootstrap discount (0 if the episode ended).
        next_obs: Bootstrap observation, same form as ``obs``.
        next_extras: Extras stored with the bootstrap observation.
        ended: (B,) float32, 1.0 when the window reached its episode's last stored step
            (nothing to bootstrap from, whether the episode terminated or was cut short);
            None where the batch was built without it.
    """

    obs: dict
    action: jax.Array
    extras: dict
    returns: dict
    discounts: dict
    next_obs: dict
    next_extras: dict
    ended: jax.Array | None = None


def nstep_batch(sequences: Transition, n: int, gamma: float) -> NStepBatch:
    """Computes n-step targets from sampled sequences.

    Args:
        sequences: Stored steps with leading axes (B, L), L >= n + 1.
        n: Number of transitions per target.
        gamma: Discount factor applied per step.

    Returns:
        The batch of n-step transitions starting at each sequence's first step.
    """
    last = sequences.last[:, :n].astype(jnp.float32)  # (B, n)
    env_discount = sequences.discount[:, :n].astype(jnp.float32)  # (B, n)
    batch_size = last.shape[0]
    # alive[:, k] = 1 while steps 0..k-1 did not end the episode; alive[:, 0] = 1.
    alive = jnp.cumprod(jnp.concatenate([jnp.ones((batch_size, 1)), 1.0 - last], 1), 1)
    # cumulative discount before step k: gamma^k prod_{j<k} d_j, for k = 0..n.
    step_discount = jnp.concatenate([jnp.ones((batch_size, 1)), gamma * env_discount], 1)
    cum_discount = jnp.cumprod(step_discount, axis=1)  # (B, n + 1)
    weights = alive[:, :n] * cum_discount[:, :n]  # (B, n)
    returns = {
        name: jnp.sum(weights * reward[:, :n].astype(jnp.float32), axis=1)
        for name, reward in sequences.reward.items()
    }
    bootstrap = alive[:, n] * cum_discount[:, n]  # (B,)
    num_used = jnp.sum(alive[:, :n], axis=1).astype(jnp.int32)  # m in [1, n]
    next_index = num_used - (1 - alive[:, n].astype(jnp.int32))  # m, or m - 1 if ended
    rows = jnp.arange(batch_size)

    def first(tree):
        return jax.tree.map(lambda x: x[:, 0], tree)

    def bootstrap_step(tree):
        return jax.tree.map(lambda x: x[rows, next_index], tree)

    return NStepBatch(
        obs=first(sequences.obs),
        action=sequences.action[:, 0],
        extras=first(sequences.extras),
        returns=returns,
        discounts={name: bootstrap for name in returns},
        next_obs=bootstrap_step(sequences.obs),
        next_extras=bootstrap_step(sequences.extras),
        ended=1.0 - alive[:, n],
    )
