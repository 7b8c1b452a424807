"""Episode wrappers for a single env (vmap or ``batching.batched`` them outside)."""

import jax
import jax.numpy as jnp
from brax.envs.base import Env, State, Wrapper


class AutoReset(Wrapper):
    """Ends episodes after ``episode_length`` steps and resets finished ones.

    Unlike brax's AutoResetWrapper, which restores a cached first state, every reset
    draws a fresh layout from the key in ``state.info["rng"]``. After a reset the state
    holds the new episode's observation with the finished step's reward, done and
    metrics; ``info["truncation"]`` is 1 where the episode hit the step limit.
    """

    def __init__(self, env: Env, episode_length: int):
        super().__init__(env)
        if episode_length < 1:
            raise ValueError(f"episode_length must be >= 1, got {episode_length}")
        self.episode_length = episode_length

    def reset(self, rng: jax.Array) -> State:
        state = self.env.reset(rng)
        state.info["steps"] = jnp.zeros((), jnp.int32)
        state.info["truncation"] = jnp.zeros(())
        return state

    def step(self, state: State, action: jax.Array) -> State:
        state = self.env.step(state.replace(done=jnp.zeros_like(state.done)), action)
        steps = state.info["steps"] + 1
        truncation = (steps >= self.episode_length).astype(jnp.float32)
        done = jnp.maximum(state.done, truncation)

        rng, key = jax.random.split(state.info["rng"])
        fresh = self.reset(key)
        keep_old = done == 0
        pipeline_state, obs, info = jax.tree.map(
            lambda old, new: jnp.where(keep_old, old, new),
            (state.pipeline_state, state.obs, {**state.info, "steps": steps}),
            (fresh.pipeline_state, fresh.obs, fresh.info),
        )
        info["rng"] = jnp.where(keep_old, rng, fresh.info["rng"])
        info["truncation"] = truncation
        return state.replace(pipeline_state=pipeline_state, obs=obs, done=done, info=info)
