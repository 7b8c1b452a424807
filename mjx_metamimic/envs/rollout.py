"""Jitted rollouts of the stacking env with a random or zero policy (throughput checks)."""

import jax
import jax.numpy as jnp

from mjx_metamimic.envs.batching import batched


def make_rollout_fn(env, num_envs: int, steps_per_call: int, policy: str):
    """Jitted ``(states, key) -> (states, key, rewards, metrics)`` over ``steps_per_call`` steps."""
    step = batched(env.step, env.step_chunk_size)

    def one_step(carry, _):
        states, key = carry
        key, sub = jax.random.split(key)
        if policy == "random":
            actions = jax.random.uniform(sub, (num_envs, env.action_size), minval=-1, maxval=1)
        else:
            actions = jnp.zeros((num_envs, env.action_size))
        states = step(states, actions)
        return (states, key), (states.reward, states.metrics)

    @jax.jit
    def rollout(states, key):
        (states, key), (rewards, metrics) = jax.lax.scan(
            one_step, (states, key), None, length=steps_per_call
        )
        return states, key, rewards, metrics

    return rollout
