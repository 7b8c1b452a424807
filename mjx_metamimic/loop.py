"""The fused MetaMimic training chunk: K actor steps for E envs, then U learner updates.

``train_chunk(state, bank) -> (state, metrics)`` is one jitted function (the state is
donated). Actors follow training demos: each env is reset to a demo's first simulator
state; at step t the goal is the demo's observation at t + lookahead; the imitation reward
compares the next observation with the demo's next one; episodes end when the arm drifts
too far from the demo or the demo ends. The K steps are collected by a ``lax.scan``
whose outputs (not its carry) hold the transitions, then appended to the replay in one
write; the learners' scan only reads the replay. Nothing large rides in a scan carry.
"""


import flax.struct
import jax
import jax.numpy as jnp
from brax.envs.base import State

from mjx_metamimic import demos as demo_lib
from mjx_metamimic.agents import D4PG, MultiD4PG, scan_sampled_updates
from mjx_metamimic.demos import DemoBank
from mjx_metamimic.envs.batching import batched, default_chunk_size
from mjx_metamimic.envs.stack import StackEnv
from mjx_metamimic.imitation import imitation_reward
from mjx_metamimic.networks import InputScales, observation_vectors, set_input_scales
from mjx_metamimic.replay import NStepReplay, ReplayState
from mjx_metamimic.train_config import TrainConfig

PARAM_FIELDS = ("actor_params", "critic_params", "target_actor_params", "target_critic_params")


@flax.struct.dataclass
class TrainState:
    """Everything that changes during training (one pytree, donated to each chunk)."""

    learners: dict  # name -> D4PGState
    replay: ReplayState
    env_state: State  # leaves (E, ...)
    demo_idx: jax.Array  # (E,) int32 training demo each env follows
    t: jax.Array  # (E,) int32 step within the demo
    key: jax.Array
    env_steps: jax.Array  # () int32, summed over envs
    updates: jax.Array  # () int32
    chunks: jax.Array  # () int32


def select_obs(obs: dict, keys: tuple[str, ...]) -> dict:
    """The observation parts the networks see (e.g. no privileged features with pixels)."""
    return {k: obs[k] for k in keys}


def demo_input_scales(bank: DemoBank, obs_keys: tuple[str, ...], floor: float = 0.01):
    """Standardisation of the networks' vector inputs, measured on the demos.

    Observations and goals: mean and std over every demo step. goal - obs: the RMS of the
    demos' one-step change (the goal is one step ahead), so a tracking error of one typical
    step reads as ~1. Stds below ``floor`` (near-constant parts) are raised to it.
    """
    parts = {"proprio": bank.proprio, "features": bank.features}
    vectors = observation_vectors({k: parts[k] for k in obs_keys if k in parts})  # (N, T, V)
    valid = (jnp.arange(vectors.shape[1])[None] < bank.lengths[:, None])[..., None]
    mean = jnp.sum(vectors * valid, (0, 1)) / jnp.sum(valid)
    std = jnp.sqrt(jnp.sum(jnp.square(vectors - mean) * valid, (0, 1)) / jnp.sum(valid))
    steps = (vectors[:, 1:] - vectors[:, :-1]) * valid[:, 1:]
    step_rms = jnp.sqrt(jnp.sum(jnp.square(steps), (0, 1)) / jnp.sum(valid[:, 1:]))
    return InputScales(mean, jnp.maximum(std, floor), jnp.maximum(step_rms, floor))


class MetaMimic:
    """Builds the pure functions of a MetaMimic run from its config.

    Args:
      config: the run config.
      env: the stacking env (with pixels iff ``config.image_size``).
    """

    def __init__(self, config: TrainConfig, env: StackEnv):
        self.config = config
        self.env = env
        self.learners = MultiD4PG(
            {name: D4PG(c, env.action_size) for name, c in config.learner_configs().items()}
        )
        self.replay = NStepReplay(config.replay, config.actors.num_envs)
        self.chunk_size = default_chunk_size()

    # ------------------------------------------------------------------ actors
    def goal(self, bank: DemoBank, demo_idx: jax.Array, t: jax.Array) -> dict:
        """The goal of step ``t``: the demo's observation at ``t + lookahead``."""
        target = demo_lib.goal(bank, demo_idx, t + self.config.actors.lookahead)
        return select_obs(target, self.config.obs_keys)

    def _reset_env(self, bank: DemoBank, key: jax.Array) -> tuple[State, jax.Array]:
        """Resets one env to a random training demo's first state."""
        key_demo, key_env = jax.random.split(key)
        demo_idx = jax.random.randint(key_demo, (), 0, bank.num_demos, dtype=jnp.int32)
        state = self.env.reset_to(key_env, demo_lib.init_states(bank, demo_idx))
        return state, demo_idx

    def reset_envs(self, bank: DemoBank, key: jax.Array) -> tuple[State, jax.Array]:
        """Resets all E envs to random training demos: states (E, ...), demo_idx (E,)."""
        keys = jax.random.split(key, self.config.actors.num_envs)
        return batched(lambda k: self._reset_env(bank, k), self.chunk_size)(keys)

    def _env_step(self, params, bank, env_state, demo_idx, t, key):
        """One imitation-actor step of one env: (stored step, metrics, next state, last)."""
        cfg = self.config
        obs = select_obs(env_state.obs, cfg.obs_keys)
        goal = self.goal(bank, demo_idx, t)
        imitation = self.learners.learners["imitation"]
        action = imitation.act(params, obs, goal)
        noise = cfg.actors.noise_std * jax.random.normal(key, action.shape)
        action = jnp.clip(action + noise, -1.0, 1.0)

        next_state = self.env.step(env_state, action)
        target = demo_lib.goal(bank, demo_idx, t + 1)  # d_{t+1}, all observation parts
        reward, drifted, reward_metrics = imitation_reward(
            cfg.imitation_reward, next_state.obs, target
        )
        terminated = drifted | (next_state.done > 0)
        demo_over = t + 1 >= bank.lengths[demo_idx] - 1
        last = terminated | demo_over
        stored = {
            "obs": obs,
            "action": action,
            "reward": {"imitation": reward, "task": next_state.reward},
            "discount": 1.0 - terminated.astype(jnp.float32),
            "last": last,
            "extras": {"demo_idx": demo_idx, "t": t},
        }
        metrics = {
            **reward_metrics,
            "actor/imitation_reward": reward,
            "actor/task_reward": next_state.reward,
            "actor/episode_end": last.astype(jnp.float32),
            "actor/drifted": drifted.astype(jnp.float32),
            **next_state.metrics,
        }
        return stored, metrics, next_state, last

    def collect(self, state: TrainState, bank: DemoBank) -> tuple[TrainState, dict, dict]:
        """K env steps of every env: returns the state, steps (E, K, ...) and mean metrics."""
        params = state.learners["imitation"].actor_params
        step_all = batched(
            lambda s, i, t, k: self._env_step(params, bank, s, i, t, k), self.chunk_size
        )
        num_envs = self.config.actors.num_envs

        def one_step(carry, _):
            env_state, demo_idx, t, key = carry
            key, key_step, key_reset = jax.random.split(key, 3)
            stored, metrics, next_state, last = step_all(
                env_state, demo_idx, t, jax.random.split(key_step, num_envs)
            )

            # Reset finished envs to new demos; skipped (a real branch, outside vmap) in
            # steps where no episode ended, which is most of them.
            def reset_finished(_):
                fresh, fresh_idx = self.reset_envs(bank, key_reset)
                pick = lambda new, old: jnp.where(
                    last.reshape(last.shape + (1,) * (new.ndim - 1)), new, old
                )
                return (
                    jax.tree.map(pick, fresh, next_state),
                    jnp.where(last, fresh_idx, demo_idx),
                )

            env_state, demo_idx = jax.lax.cond(
                jnp.any(last), reset_finished, lambda _: (next_state, demo_idx), None
            )
            t = jnp.where(last, 0, t + 1)
            return (env_state, demo_idx, t, key), (stored, metrics)

        carry = (state.env_state, state.demo_idx, state.t, state.key)
        (env_state, demo_idx, t, key), (steps, metrics) = jax.lax.scan(
            one_step, carry, None, length=self.config.actors.steps_per_chunk
        )
        steps = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), steps)  # (K, E) -> (E, K)
        state = state.replace(
            env_state=env_state,
            demo_idx=demo_idx,
            t=t,
            key=key,
            env_steps=state.env_steps + num_envs * self.config.actors.steps_per_chunk,
        )
        return state, steps, jax.tree.map(jnp.mean, metrics)

    # ---------------------------------------------------------------- learners
    def _sample(self, replay: ReplayState, bank: DemoBank, key: jax.Array):
        batch = self.replay.sample(replay, key, self.config.learner.batch_size)
        goal = self.goal(bank, batch.extras["demo_idx"], batch.extras["t"])
        next_goal = self.goal(bank, batch.next_extras["demo_idx"], batch.next_extras["t"])
        return batch, goal, next_goal

    def learn(self, state: TrainState, bank: DemoBank) -> tuple[TrainState, dict]:
        """U learner updates from the replay (skipped until it holds ``min_size`` steps)."""
        num_updates = self.config.learner.updates_per_chunk
        key, key_learn = jax.random.split(state.key)

        def update(learners, sampled):
            batch, goal, next_goal = sampled
            return self.learners.update(learners, batch, goal, next_goal)

        def run(learners):
            return scan_sampled_updates(
                update,
                lambda k: self._sample(state.replay, bank, k),
                learners,
                key_learn,
                num_updates,
            )

        def skip(learners):
            zeros = jax.eval_shape(run, learners)[1]
            return learners, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), zeros)

        ready = self.replay.can_sample(state.replay) & (num_updates > 0)
        learners, metrics = jax.lax.cond(ready, run, skip, state.learners)
        updates = state.updates + jnp.where(ready, num_updates, 0)
        return state.replace(learners=learners, key=key, updates=updates), metrics

    # ------------------------------------------------------------------- chunk
    def train_chunk(self, state: TrainState, bank: DemoBank) -> tuple[TrainState, dict]:
        """Collect K steps per env, store them, then run U learner updates."""
        state, steps, actor_metrics = self.collect(state, bank)
        state = state.replace(replay=self.replay.add_sequence(state.replay, steps))
        state, learner_metrics = self.learn(state, bank)
        state = state.replace(chunks=state.chunks + 1)
        metrics = {
            **{f"train/{k}": v for k, v in actor_metrics.items()},
            **learner_metrics,
            "train/replay_size": self.replay.size(state.replay),
            "train/env_steps": state.env_steps,
            "train/updates": state.updates,
        }
        return state, metrics

    def init(self, key: jax.Array, bank: DemoBank) -> TrainState:
        """The initial training state: fresh learners, empty replay, envs on demos."""
        key, key_env, key_learn = jax.random.split(key, 3)
        env_state, demo_idx = self.reset_envs(bank, key_env)
        one_obs = select_obs(jax.tree.map(lambda x: x[0], env_state.obs), self.config.obs_keys)
        goal = self.goal(bank, demo_idx[0], jnp.zeros((), jnp.int32))
        learners = self.learners.init(key_learn, one_obs, goal)
        scales = demo_input_scales(bank, self.config.obs_keys)
        learners = {
            name: learner.replace(
                **{
                    field: set_input_scales(getattr(learner, field), scales)
                    for field in PARAM_FIELDS
                }
            )
            for name, learner in learners.items()
        }
        example_step = {
            "obs": one_obs,
            "action": jnp.zeros(self.env.action_size),
            "reward": {"imitation": jnp.zeros(()), "task": jnp.zeros(())},
            "discount": jnp.zeros(()),
            "last": jnp.zeros((), bool),
            "extras": {"demo_idx": jnp.zeros((), jnp.int32), "t": jnp.zeros((), jnp.int32)},
        }
        num_envs = self.config.actors.num_envs
        state = TrainState(
            learners=learners,
            replay=self.replay.init(example_step),
            env_state=env_state,
            demo_idx=demo_idx,
            t=jnp.zeros((num_envs,), jnp.int32),
            key=key,
            env_steps=jnp.zeros((), jnp.int32),
            updates=jnp.zeros((), jnp.int32),
            chunks=jnp.zeros((), jnp.int32),
        )
        # Target networks start as the online ones: copy so that no two leaves share a
        # buffer (the chunk donates the whole state).
        return jax.tree.map(jnp.copy, state)
