"""Probe environments with analytic action values, for checking that learners learn.

Every probe has a 2-d observation ``{"proprio": (2,)}``, a 1-d action in [-1, 1], one reward
stream ``"reward"`` and a fixed horizon; episodes terminate (discount 0) after the horizon
and auto-reset, except ``endless``'s, which are cut short there (truncated: ``last`` with
discount 1), so its values are those of a learner that treats episode ends as truncations. A
per-episode context c in {-1, +1} is drawn at reset. The probe is selected by a traced int,
so one compiled training function serves all probes.

=============  =======  ============================  ========================  ==============
probe          horizon  observation at step t         reward                    Q(t, c, a)
=============  =======  ============================  ========================  ==============
constant       1        [1, 0]                        1                         1
observation    1        [c, 1]                        c                         c
two_step       2        [1 - t, t]                    t  (0, then 1)            gamma^(1-t)
countdown      8        [1 - t/8, 1]                  1                         sum_{k<8-t} g^k
bandit         1        [c, 1]                        1 - (a - c/2)^2           1 - (a - c/2)^2
late           100      [1 - t/100, 1]                1 at the last step only   g^(99-t)
endless        8        [1, 0.5]                      1                         1 / (1 - g)
=============  =======  ============================  ========================  ==============

``late`` is the sparse, long-horizon case (the stack comes ~100 steps into a task episode);
``endless`` needs ``D4PGConfig.episode_ends="truncation"``.
"""

import flax.struct
import jax
import jax.numpy as jnp

from mjx_metamimic.agents.d4pg import D4PG, D4PGState
from mjx_metamimic.agents.scan import scan_sampled_updates
from mjx_metamimic.replay import NStepReplay, Transition, nstep_batch

PROBES = ("constant", "observation", "two_step", "countdown", "bandit", "late", "endless")
HORIZONS = (1, 1, 2, 8, 1, 100, 8)
TRUNCATED = (False, False, False, False, False, False, True)
STREAM = "reward"
BANDIT_TARGET = 0.5  # best bandit action is BANDIT_TARGET * context


@flax.struct.dataclass
class ProbeState:
    """One probe env (vmap for a batch): step index, episode context, PRNG key."""

    t: jax.Array  # () int32
    context: jax.Array  # () float32, -1 or +1
    key: jax.Array


def probe_index(name: str) -> int:
    """Index of probe ``name`` in ``PROBES`` (the ``kind`` argument of the functions here)."""
    return PROBES.index(name)


def horizon(kind: jax.Array) -> jax.Array:
    """() int32 episode length of probe ``kind``."""
    return jnp.asarray(HORIZONS, jnp.int32)[kind]


def observation(kind: jax.Array, t: jax.Array, context: jax.Array) -> jax.Array:
    """(2,) float32 observation at step ``t`` with episode context ``context``."""
    t = t.astype(jnp.float32)
    candidates = jnp.stack(
        [
            jnp.array([1.0, 0.0]),
            jnp.stack([context, 1.0]),
            jnp.stack([1.0 - t, t]),
            jnp.stack([1.0 - t / HORIZONS[3], 1.0]),
            jnp.stack([context, 1.0]),
            jnp.stack([1.0 - t / HORIZONS[5], 1.0]),
            jnp.array([1.0, 0.5]),
        ]
    )  # (num_probes, 2)
    return candidates[kind]


def reward(kind: jax.Array, t: jax.Array, context: jax.Array, action: jax.Array) -> jax.Array:
    """() float32 reward for ``action`` (A,) at step ``t``."""
    bandit = 1.0 - jnp.square(action[0] - BANDIT_TARGET * context)
    late = (t + 1 >= HORIZONS[5]).astype(jnp.float32)
    candidates = jnp.stack([1.0, context, t.astype(jnp.float32), 1.0, bandit, late, 1.0])
    return candidates[kind]


def q_value(
    kind: jax.Array, t: jax.Array, context: jax.Array, action: jax.Array, gamma: float
) -> jax.Array:
    """() float32 analytic Q(o_t, a) under discount ``gamma`` (any policy)."""
    remaining = (horizon(kind) - t).astype(jnp.float32)
    candidates = jnp.stack(
        [
            1.0,
            context,
            gamma ** (1.0 - t.astype(jnp.float32)),
            (1.0 - gamma**remaining) / (1.0 - gamma),
            1.0 - jnp.square(action[0] - BANDIT_TARGET * context),
            gamma ** (remaining - 1.0),
            1.0 / (1.0 - gamma),
        ]
    )
    return candidates[kind]


def reset(key: jax.Array) -> ProbeState:
    """Starts an episode: t = 0 and a random context."""
    key, context_key = jax.random.split(key)
    context = jnp.where(jax.random.bernoulli(context_key), 1.0, -1.0)
    return ProbeState(t=jnp.zeros((), jnp.int32), context=context, key=key)


def step(kind: jax.Array, state: ProbeState, action: jax.Array) -> tuple[ProbeState, dict]:
    """Acts in one env; auto-resets after the episode's last step.

    Args:
        kind: () int32 probe index.
        state: Env state before the step.
        action: (1,) float32 action.

    Returns:
        The next state and the replay ``Transition`` of this step (``extras`` holds ``t``
        and ``context``).
    """
    last = state.t + 1 >= horizon(kind)
    terminal = last & ~jnp.asarray(TRUNCATED)[kind]
    stored = Transition(
        obs={"proprio": observation(kind, state.t, state.context)},
        action=action,
        reward={STREAM: reward(kind, state.t, state.context, action)},
        discount=jnp.where(terminal, 0.0, 1.0),
        last=last,
        extras={"t": state.t, "context": state.context},
    )
    key, reset_key = jax.random.split(state.key)
    continued = ProbeState(t=state.t + 1, context=state.context, key=key)
    next_state = jax.tree.map(lambda r, c: jnp.where(last, r, c), reset(reset_key), continued)
    return next_state, stored


def train_on_probe(
    learner: D4PG,
    replay: NStepReplay,
    kind: jax.Array,
    key: jax.Array,
    *,
    num_envs: int,
    iterations: int,
    updates_per_iteration: int,
    batch_size: int,
) -> tuple[D4PGState, dict[str, jax.Array]]:
    """Trains ``learner`` on probe ``kind`` from uniformly random actions (jittable).

    A minimal training loop: fill the replay until it can be sampled, then alternate one
    vmapped env step (``replay.add``) with ``updates_per_iteration`` sampled updates, each
    on the learner's own n-step return (``D4PGConfig.n_step``, else the replay's).

    Returns:
        The final learner state and the last iteration's metrics.
    """
    n_step = learner.config.n_step or replay.config.n_step
    key, reset_key, example_key, init_key = jax.random.split(key, 4)
    env_state = jax.vmap(reset)(jax.random.split(reset_key, num_envs))
    _, example_step = step(kind, reset(example_key), jnp.zeros((1,), jnp.float32))
    replay_state = replay.init(example_step)
    learner_state = learner.init(init_key, example_step.obs)

    def collect(carry, action_key):
        env_state, replay_state = carry
        action = jax.random.uniform(action_key, (num_envs, 1), minval=-1.0, maxval=1.0)
        env_state, stored = jax.vmap(step, in_axes=(None, 0, 0))(kind, env_state, action)
        return (env_state, replay.add(replay_state, stored)), None

    key, warmup_key = jax.random.split(key)
    warmup_keys = jax.random.split(warmup_key, replay.min_time_length)
    (env_state, replay_state), _ = jax.lax.scan(collect, (env_state, replay_state), warmup_keys)

    def iteration(carry, iteration_key):
        env_state, replay_state, learner_state = carry
        collect_key, update_key = jax.random.split(iteration_key)
        (env_state, replay_state), _ = collect((env_state, replay_state), collect_key)
        learner_state, metrics = scan_sampled_updates(
            learner.update,
            lambda k: nstep_batch(
                replay.sample_sequences(replay_state, k, batch_size), n_step, replay.config.gamma
            ),
            learner_state,
            update_key,
            updates_per_iteration,
        )
        return (env_state, replay_state, learner_state), metrics

    carry = (env_state, replay_state, learner_state)
    (_, _, learner_state), metrics = jax.lax.scan(
        iteration, carry, jax.random.split(key, iterations)
    )
    return learner_state, jax.tree.map(lambda x: x[-1], metrics)
