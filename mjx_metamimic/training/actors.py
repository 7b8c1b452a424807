"""The actors: what each env does in a training step, and the one imitation step.

An imitation actor (paper Fig. 2) follows one training demo at a time: it starts from the
demo's first simulator state; at step t its goal is the demo's observation at
t + lookahead; it acts (policy + exploration), steps the env, and scores the next
observation against the demo's next one with the imitation reward; its episode ends when
the arm drifts too far from the demo or the demo ends. ``ImitationActor.follow`` is that
step without exploration's specifics: training, evaluation and the video all use it.

A task actor runs the task policy (no goal) + exploration from fresh layouts or, as a demo
curriculum, from states along training demos, for episodes of ``task_episode_steps``.

Each actor's ``reset`` and ``step`` act on its own group of envs (leading env axis),
stepped in chunks of ``chunk_size`` (``envs.batching``).
"""

import dataclasses
from collections.abc import Callable

import flax.struct
import jax
import jax.numpy as jnp
from brax.envs.base import State

from mjx_metamimic import demos as demo_lib
from mjx_metamimic.agents import D4PG
from mjx_metamimic.demos import DemoBank
from mjx_metamimic.envs.batching import batched
from mjx_metamimic.envs.stack import GRIPPER_ACTION, PROPRIO_PARTS, StackEnv
from mjx_metamimic.imitation_reward import imitation_reward
from mjx_metamimic.replay import Transition
from mjx_metamimic.training.config import TrainConfig

# (obs the networks see, goal they see, every part of the goal) -> action (A,)
ActionFn = Callable[[dict, dict, dict], jax.Array]


def select_obs(obs: dict, keys: tuple[str, ...]) -> dict:
    """The observation parts the networks see (e.g. no privileged features with pixels)."""
    return {k: obs[k] for k in keys}


def step_extras(demo_idx: jax.Array, t: jax.Array, imitation_weight: float, weighted: bool):
    """The extras stored with a step: its demo and step (goal lookup when sampled) and,
    when ``weighted``, its weight for the imitation learner."""
    extras = {"demo_idx": demo_idx, "t": t}
    if weighted:
        extras["imitation_weight"] = jnp.full(jnp.shape(t), imitation_weight, jnp.float32)
    return extras


def start_on_random_demo(env: StackEnv, bank: DemoBank, key: jax.Array):
    """An env at a random training demo's first simulator state: (state, demo_idx)."""
    key_demo, key_env = jax.random.split(key)
    demo_idx = jax.random.randint(key_demo, (), 0, bank.num_demos, dtype=jnp.int32)
    return env.reset_to(key_env, demo_lib.init_states(bank, demo_idx)), demo_idx


@dataclasses.dataclass(frozen=True)
class GaussianExploration:
    """The actors' exploration: Gaussian noise of std ``noise_std``, clipped to [-1, 1]."""

    noise_std: float

    def __call__(self, action: jax.Array, key: jax.Array) -> jax.Array:
        noise = self.noise_std * jax.random.normal(key, action.shape)
        return jnp.clip(action + noise, -1.0, 1.0)


@dataclasses.dataclass(frozen=True)
class GripperGuide:
    """Exploration of the imitation actor's gripper (``actors.gripper_guided_fraction``):
    a guided env's gripper command holds the goal's finger gap; its arm stays the policy's.
    Reads only the goal's finger gap, never a demo's actions."""

    env: StackEnv

    def __call__(self, action: jax.Array, goal_proprio: jax.Array) -> jax.Array:
        gap = goal_proprio[..., PROPRIO_PARTS["finger_gap"]][..., 0]
        return action.at[..., GRIPPER_ACTION].set(self.env.gripper_command_for_gap(gap))


@flax.struct.dataclass
class ImitationStep:
    """One step of following a demo (unbatched)."""

    next_state: State
    action: jax.Array  # (A,)
    reward: jax.Array  # () imitation reward of reaching the next observation
    drifted: jax.Array  # () bool: the arm is too far from the demo
    terms: dict  # the reward's terms and distances, namespaced ``imitation/``
    target: dict  # the demo's next observation d_{t+1}, every part


class ImitationActor:
    """Imitation actors: envs following training demos with the imitation policy.

    Args:
      env: the stacking env.
      config: the run config (goal lookahead, reward, exploration, guided share).
      policy: the imitation learner (None without one: ``follow`` still serves the
        evaluation's baselines).
      num_envs: envs in this group (the first ``round(gripper_guided_fraction *
        num_envs)`` are guided).
      chunk_size: envs vmapped together (``envs.batching``).
      weighted: whether stored steps carry ``imitation_weight``.
    """

    metrics_prefix = ""

    def __init__(
        self,
        env: StackEnv,
        config: TrainConfig,
        policy: D4PG | None,
        num_envs: int,
        chunk_size: int | None,
        weighted: bool,
    ):
        self.env, self.config, self.policy = env, config, policy
        self.num_envs, self.chunk_size, self.weighted = num_envs, chunk_size, weighted
        self.num_guided = round(config.actors.gripper_guided_fraction * num_envs)
        self.explore = GaussianExploration(config.actors.noise_std)
        self.guide = GripperGuide(env)

    def full_goal(self, bank: DemoBank, demo_idx: jax.Array, t: jax.Array) -> dict:
        """Every part of the demo's observation at ``t + lookahead``."""
        return demo_lib.goal(bank, demo_idx, t + self.config.actors.lookahead)

    def goal(self, bank: DemoBank, demo_idx: jax.Array, t: jax.Array) -> dict:
        """The goal the networks see at step ``t``: the demo's observation at
        ``t + lookahead``, the parts in ``obs_keys``."""
        return select_obs(self.full_goal(bank, demo_idx, t), self.config.obs_keys)

    def follow(
        self, bank: DemoBank, state: State, demo_idx: jax.Array, t: jax.Array, act: ActionFn
    ) -> ImitationStep:
        """One step of following demo ``demo_idx`` at step ``t`` with action ``act``."""
        full_goal = self.full_goal(bank, demo_idx, t)
        obs = select_obs(state.obs, self.config.obs_keys)
        action = act(obs, select_obs(full_goal, self.config.obs_keys), full_goal)
        next_state = self.env.step(state, action)
        target = demo_lib.goal(bank, demo_idx, t + 1)  # d_{t+1}, all observation parts
        reward, drifted, terms = imitation_reward(
            self.config.imitation_reward, next_state.obs, target
        )
        return ImitationStep(next_state, action, reward, drifted, terms, target)

    def start(self, bank: DemoBank, demo_idx: jax.Array, key: jax.Array) -> State:
        """An env at the first simulator state of demo ``demo_idx``."""
        return self.env.reset_to(key, demo_lib.init_states(bank, demo_idx))

    def reset(self, bank: DemoBank, keys: jax.Array) -> tuple[State, jax.Array]:
        """Resets each env (one key each) to a random training demo's first state.
        Returns states and demo_idx (n,)."""
        one = lambda k: start_on_random_demo(self.env, bank, k)
        return batched(one, self.chunk_size)(keys)

    def _step_one(self, params, bank, env_state, demo_idx, t, key, guided):
        def act(obs, goal, full_goal):
            action = self.explore(self.policy.act(params, obs, goal), key)
            if self.num_guided:
                action = jnp.where(guided, self.guide(action, full_goal["proprio"]), action)
            return action

        step = self.follow(bank, env_state, demo_idx, t, act)
        next_state = step.next_state
        terminated = step.drifted | (next_state.done > 0)
        last = terminated | (t + 1 >= bank.lengths[demo_idx] - 1)  # or the demo is over
        stored = Transition(
            obs=select_obs(env_state.obs, self.config.obs_keys),
            action=step.action,
            reward={"imitation": step.reward, "task": next_state.reward},
            discount=1.0 - terminated.astype(jnp.float32),
            last=last,
            extras=step_extras(demo_idx, t, 1.0, self.weighted),
        )
        metrics = {
            **step.terms,
            "actor/imitation_reward": step.reward,
            "actor/task_reward": next_state.reward,
            "actor/episode_end": last.astype(jnp.float32),
            "actor/drifted": step.drifted.astype(jnp.float32),
            **next_state.metrics,
        }
        return stored, metrics, next_state, last

    def step(self, learners: dict, bank: DemoBank, env_state, demo_idx, t, keys):
        """One step of every env of the group: (Transition, metrics, next states, last),
        each with a leading env axis."""
        params = learners["imitation"].actor_params
        guided = jnp.arange(self.num_envs) < self.num_guided
        one = lambda s, i, t, k, g: self._step_one(params, bank, s, i, t, k, g)
        return batched(one, self.chunk_size)(env_state, demo_idx, t, keys, guided)


class TaskActor:
    """Task actors: envs running the task policy (no goal) + exploration, from fresh
    layouts or, with ``actors.task_reset="curriculum"``, from random states along random
    training demos, or with ``"demo"`` from random training demos' first states. ``t``
    counts an episode's steps; ``demo_idx`` is the demo an episode started in (0 for
    fresh layouts): the policy never sees it; with ``"demo"`` the imitation learner's goal
    for a step is that demo's at ``t``.

    Args:
      env, config, policy, chunk_size, weighted: as for ``ImitationActor``.
    """

    metrics_prefix = "task_actor/"

    def __init__(
        self,
        env: StackEnv,
        config: TrainConfig,
        policy: D4PG,
        chunk_size: int | None,
        weighted: bool,
    ):
        self.env, self.config, self.policy = env, config, policy
        self.chunk_size, self.weighted = chunk_size, weighted
        self.explore = GaussianExploration(config.actors.noise_std)

    def _reset_one(self, bank: DemoBank, key: jax.Array) -> tuple[State, jax.Array]:
        reset = self.config.actors.task_reset
        if reset == "layout":
            return self.env.reset(key), jnp.zeros((), jnp.int32)
        if reset == "demo":
            return start_on_random_demo(self.env, bank, key)
        key_demo, key_env = jax.random.split(key)
        demo_idx, t = demo_lib.sample(bank, key_demo, 1)
        state = self.env.reset_to(key_env, demo_lib.states_at(bank, demo_idx[0], t[0]))
        return state, demo_idx[0]

    def reset(self, bank: DemoBank, keys: jax.Array) -> tuple[State, jax.Array]:
        """Starts a task episode in each env (one key each): states and demo_idx (n,)."""
        return batched(lambda k: self._reset_one(bank, k), self.chunk_size)(keys)

    def _step_one(self, params, env_state, demo_idx, t, key):
        obs = select_obs(env_state.obs, self.config.obs_keys)
        action = self.explore(self.policy.act(params, obs), key)
        next_state = self.env.step(env_state, action)
        terminated = next_state.done > 0
        last = terminated | (t + 1 >= self.config.actors.task_episode_steps)
        stored = Transition(
            obs=obs,
            action=action,
            reward={"imitation": jnp.zeros(()), "task": next_state.reward},
            discount=1.0 - terminated.astype(jnp.float32),
            last=last,
            extras=step_extras(demo_idx, t, 0.0, self.weighted),
        )
        metrics = {
            "task_reward": next_state.reward,
            "episode_end": last.astype(jnp.float32),
            **next_state.metrics,
        }
        return stored, metrics, next_state, last

    def step(self, learners: dict, bank: DemoBank, env_state, demo_idx, t, keys):
        """One step of every env of the group (see ``ImitationActor.step``)."""
        params = learners["task"].actor_params
        one = lambda s, i, t, k: self._step_one(params, s, i, t, k)
        return batched(one, self.chunk_size)(env_state, demo_idx, t, keys)
