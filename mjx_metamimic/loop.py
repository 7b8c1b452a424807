"""The fused MetaMimic training chunk: K actor steps for E envs, then U learner updates.

``train_chunk(state, bank) -> (state, metrics)`` is one jitted function (the state is
donated). Actors follow training demos: each env is reset to a demo's first simulator
state; at step t the goal is the demo's observation at t + lookahead; the imitation reward
compares the next observation with the demo's next one; episodes end when the arm drifts
too far from the demo or the demo ends. The K steps are collected by a ``lax.scan``
whose outputs (not its carry) hold the transitions, then appended to the replay in one
write; the learners' scan only reads the replay. Nothing large rides in a scan carry.

Baselines (``TrainConfig`` switches, all off by default): the last ``num_task_envs`` envs
run the task actor (task policy + noise) from fresh layouts or, as a demo curriculum, from
states along training demos; without an imitation learner every env does (task-reward-only
D4PG); D4PGfD mixes the demos' transitions with their privileged actions into every batch.
Transitions the imitation learner must not learn from (task actors', demos') are stored
with ``extras["imitation_weight"]`` 0, which weighs the imitation learner's losses.
"""


import flax.struct
import jax
import jax.numpy as jnp
from brax.envs.base import State

from mjx_metamimic import demos as demo_lib
from mjx_metamimic.agents import D4PG, MultiD4PG, scan_sampled_updates
from mjx_metamimic.demos import DemoBank
from mjx_metamimic.demos.transitions import demo_sequences
from mjx_metamimic.envs.batching import batched, default_chunk_size
from mjx_metamimic.envs.stack import GRIPPER_ACTION, PROPRIO_PARTS, StackEnv
from mjx_metamimic.imitation import imitation_reward
from mjx_metamimic.networks import InputScales, observation_vectors, set_input_scales
from mjx_metamimic.replay import NStepReplay, ReplayState, nstep_batch
from mjx_metamimic.train_config import TrainConfig

PARAM_FIELDS = ("actor_params", "critic_params", "target_actor_params", "target_critic_params")


@flax.struct.dataclass
class TrainState:
    """Everything that changes during training (one pytree, donated to each chunk)."""

    learners: dict  # name -> D4PGState
    replay: ReplayState
    env_state: State  # leaves (E, ...)
    demo_idx: jax.Array  # (E,) int32 training demo each env follows (task actors: started in)
    t: jax.Array  # (E,) int32 step within the demo (task actors: within the episode)
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


def _join(first, second):
    """Concatenates two env groups' pytrees along the env axis (either may be None)."""
    if first is None or second is None:
        return second if first is None else first
    return jax.tree.map(lambda a, b: jnp.concatenate([a, b]), first, second)


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
        self.num_task_envs = config.num_task_envs
        self.num_imitation_envs = config.actors.num_envs - self.num_task_envs
        self.num_guided_envs = round(
            config.actors.gripper_guided_fraction * self.num_imitation_envs
        )
        # Store per-transition imitation weights only when some transitions need weight 0.
        self.weighted = bool(self.num_task_envs or config.demo_batch_size)

    @property
    def trains_imitation(self) -> bool:
        """Whether there is an imitation learner (false for task-only D4PG)."""
        return "imitation" in self.learners.learners

    def _groups(self, tree):
        """Splits per-env leaves (E, ...) into (imitation envs, task envs); None if empty."""
        split = self.num_imitation_envs
        if not self.num_task_envs:
            return tree, None
        if not split:
            return None, tree
        return jax.tree.map(lambda x: x[:split], tree), jax.tree.map(lambda x: x[split:], tree)

    def _extras(self, demo_idx: jax.Array, t: jax.Array, imitation_weight: float) -> dict:
        extras = {"demo_idx": demo_idx, "t": t}
        if self.weighted:
            extras["imitation_weight"] = jnp.full(jnp.shape(t), imitation_weight, jnp.float32)
        return extras

    def explore(self, action: jax.Array, key: jax.Array) -> jax.Array:
        """The actors' exploration: ``action`` (any shape) plus Gaussian noise of std
        ``actors.noise_std``, clipped to [-1, 1]."""
        noise = self.config.actors.noise_std * jax.random.normal(key, action.shape)
        return jnp.clip(action + noise, -1.0, 1.0)

    def guide_gripper(self, action: jax.Array, goal_proprio: jax.Array) -> jax.Array:
        """``action`` with the gripper command that holds the goal's finger gap: what a
        guided env does (``actors.gripper_guided_fraction``)."""
        gap = goal_proprio[..., PROPRIO_PARTS["finger_gap"]][..., 0]
        return action.at[..., GRIPPER_ACTION].set(self.env.gripper_command_for_gap(gap))

    # ------------------------------------------------------------------ actors
    def goal(self, bank: DemoBank, demo_idx: jax.Array, t: jax.Array) -> dict:
        """The goal of step ``t``: the demo's observation at ``t + lookahead``."""
        return select_obs(self._full_goal(bank, demo_idx, t), self.config.obs_keys)

    def _full_goal(self, bank: DemoBank, demo_idx: jax.Array, t: jax.Array) -> dict:
        """Every part of the demo's observation at ``t + lookahead``, seen by the policy
        or not."""
        return demo_lib.goal(bank, demo_idx, t + self.config.actors.lookahead)

    def _reset_env(self, bank: DemoBank, key: jax.Array) -> tuple[State, jax.Array]:
        """Resets one env to a random training demo's first state."""
        key_demo, key_env = jax.random.split(key)
        demo_idx = jax.random.randint(key_demo, (), 0, bank.num_demos, dtype=jnp.int32)
        state = self.env.reset_to(key_env, demo_lib.init_states(bank, demo_idx))
        return state, demo_idx

    def _reset_task_env(self, bank: DemoBank, key: jax.Array) -> tuple[State, jax.Array]:
        """Resets one task-actor env: a fresh layout, or a random state along a random
        training demo (curriculum). Returns the state and the demo index (0 for layouts)."""
        if self.config.actors.task_reset == "layout":
            return self.env.reset(key), jnp.zeros((), jnp.int32)
        key_demo, key_env = jax.random.split(key)
        demo_idx, t = demo_lib.sample(bank, key_demo, 1)
        state = self.env.reset_to(key_env, demo_lib.states_at(bank, demo_idx[0], t[0]))
        return state, demo_idx[0]

    def reset_envs(self, bank: DemoBank, key: jax.Array) -> tuple[State, jax.Array]:
        """Resets all E envs: imitation actors to random training demos' first states, task
        actors as configured. Returns states (E, ...) and demo_idx (E,)."""
        keys_imitation, keys_task = self._groups(
            jax.random.split(key, self.config.actors.num_envs)
        )
        imitation = task = None
        if keys_imitation is not None:
            imitation = batched(lambda k: self._reset_env(bank, k), self.chunk_size)(keys_imitation)
        if keys_task is not None:
            task = batched(lambda k: self._reset_task_env(bank, k), self.chunk_size)(keys_task)
        return _join(imitation, task)

    def _env_step(self, params, bank, env_state, demo_idx, t, key, guided):
        """One imitation-actor step of one env: (stored step, metrics, next state, last).
        ``guided``: whether this env's gripper follows the goal (``guide_gripper``)."""
        cfg = self.config
        obs = select_obs(env_state.obs, cfg.obs_keys)
        full_goal = self._full_goal(bank, demo_idx, t)
        goal = select_obs(full_goal, cfg.obs_keys)
        imitation = self.learners.learners["imitation"]
        action = self.explore(imitation.act(params, obs, goal), key)
        if self.num_guided_envs:
            guided_action = self.guide_gripper(action, full_goal["proprio"])
            action = jnp.where(guided, guided_action, action)

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
            "extras": self._extras(demo_idx, t, 1.0),
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

    def _task_step(self, params, env_state, demo_idx, t, key):
        """One task-actor step of one env: (stored step, metrics, next state, last).

        ``t`` counts the episode's steps; ``demo_idx`` (stored for analysis only) is the
        demo a curriculum episode started in."""
        cfg = self.config
        obs = select_obs(env_state.obs, cfg.obs_keys)
        action = self.explore(self.learners.learners["task"].act(params, obs), key)
        next_state = self.env.step(env_state, action)
        terminated = next_state.done > 0
        last = terminated | (t + 1 >= cfg.actors.task_episode_steps)
        stored = {
            "obs": obs,
            "action": action,
            "reward": {"imitation": jnp.zeros(()), "task": next_state.reward},
            "discount": 1.0 - terminated.astype(jnp.float32),
            "last": last,
            "extras": self._extras(demo_idx, t, 0.0),
        }
        metrics = {
            "task_reward": next_state.reward,
            "episode_end": last.astype(jnp.float32),
            **next_state.metrics,
        }
        return stored, metrics, next_state, last

    def _step_envs(self, learners, bank, env_state, demo_idx, t, keys):
        """One step of every env, each group with its actor: (stored, metrics, next, last)."""
        groups = [self._groups(x) for x in (env_state, demo_idx, t, keys)]
        (s_im, s_task), (i_im, i_task), (t_im, t_task), (k_im, k_task) = groups
        outs, metrics = [None, None], {}
        if s_im is not None:
            params = learners["imitation"].actor_params
            step = lambda s, i, t, k, g: self._env_step(params, bank, s, i, t, k, g)
            guided = jnp.arange(self.num_imitation_envs) < self.num_guided_envs
            outs[0] = batched(step, self.chunk_size)(s_im, i_im, t_im, k_im, guided)
            metrics.update(outs[0][1])
        if s_task is not None:
            params = learners["task"].actor_params
            step = lambda s, i, t, k: self._task_step(params, s, i, t, k)
            outs[1] = batched(step, self.chunk_size)(s_task, i_task, t_task, k_task)
            metrics.update({f"task_actor/{k}": v for k, v in outs[1][1].items()})
        stored, next_state, last = (
            _join(*(None if o is None else o[i] for o in outs)) for i in (0, 2, 3)
        )
        return stored, metrics, next_state, last

    def collect(self, state: TrainState, bank: DemoBank) -> tuple[TrainState, dict, dict]:
        """K env steps of every env: returns the state, steps (E, K, ...) and mean metrics
        (imitation actors' as before; task actors' under ``task_actor/``)."""
        step_all = lambda *args: self._step_envs(state.learners, bank, *args)
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
    def sample_learner_batch(self, replay: ReplayState, bank: DemoBank, key: jax.Array):
        """A learner batch (agent replay, plus demo transitions for D4PGfD), the goals of the
        imitation learner (None without one), its per-sample weights (None: uniform) and a
        key for the learners' own randomness."""
        cfg = self.config
        key, key_learners = jax.random.split(key)
        demo_size = cfg.demo_batch_size
        if demo_size:
            key, key_demo = jax.random.split(key)
        batch = self.replay.sample(replay, key, cfg.learner.batch_size - demo_size)
        if demo_size:
            sequences = demo_sequences(
                bank, key_demo, demo_size, self.replay.sequence_length, cfg.obs_keys
            )
            demo_batch = nstep_batch(sequences, cfg.replay.n_step, cfg.replay.gamma)
            batch = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), batch, demo_batch)
        if not self.trains_imitation:
            return batch, None, None, None, key_learners
        goal = self.goal(bank, batch.extras["demo_idx"], batch.extras["t"])
        next_goal = self.goal(bank, batch.next_extras["demo_idx"], batch.next_extras["t"])
        weights = {"imitation": batch.extras["imitation_weight"]} if self.weighted else None
        return batch, goal, next_goal, weights, key_learners

    def learn(self, state: TrainState, bank: DemoBank) -> tuple[TrainState, dict]:
        """U learner updates from the replay (skipped until it holds ``min_size`` steps)."""
        num_updates = self.config.learner.updates_per_chunk
        key, key_learn = jax.random.split(state.key)

        def update(learners, sampled):
            return self.learners.update(learners, *sampled)

        def run(learners):
            return scan_sampled_updates(
                update,
                lambda k: self.sample_learner_batch(state.replay, bank, k),
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

    def _with_input_scales(self, learners: dict, bank: DemoBank) -> dict:
        """Every network of every learner standardises its inputs with the demos' stats."""
        scales = demo_input_scales(bank, self.config.obs_keys)
        return {
            name: learner.replace(
                **{f: set_input_scales(getattr(learner, f), scales) for f in PARAM_FIELDS}
            )
            for name, learner in learners.items()
        }

    def init(self, key: jax.Array, bank: DemoBank) -> TrainState:
        """The initial training state: fresh learners, empty replay, envs on demos."""
        key, key_env, key_learn = jax.random.split(key, 3)
        env_state, demo_idx = self.reset_envs(bank, key_env)
        one_obs = select_obs(jax.tree.map(lambda x: x[0], env_state.obs), self.config.obs_keys)
        zero = jnp.zeros((), jnp.int32)
        goal = self.goal(bank, demo_idx[0], zero) if self.trains_imitation else None
        learners = self.learners.init(key_learn, one_obs, goal)
        if self.config.learner.network.standardize_inputs:
            learners = self._with_input_scales(learners, bank)
        example_step = {
            "obs": one_obs,
            "action": jnp.zeros(self.env.action_size),
            "reward": {"imitation": jnp.zeros(()), "task": jnp.zeros(())},
            "discount": jnp.zeros(()),
            "last": jnp.zeros((), bool),
            "extras": self._extras(zero, zero, 0.0),
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
