"""One-shot evaluation: imitate held-out demos, and solve fresh layouts with the task policy.

Policies: "agent" (the learned policies, no exploration noise), "zero" (no motion) and
"random" (uniform actions) - the last two are the baselines measured in the same run.
"""

from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from mjx_metamimic import demos as demo_lib
from mjx_metamimic.demos import DemoBank
from mjx_metamimic.envs.batching import batched
from mjx_metamimic.envs.stack import FEATURES_PARTS
from mjx_metamimic.imitation import imitation_reward
from mjx_metamimic.loop import MetaMimic, select_obs

Policy = Literal["agent", "zero", "random"]
POLICIES: tuple[str, ...] = ("agent", "zero", "random")


def _action(algo: MetaMimic, policy: str, learner: str, params, obs, goal, key):
    if policy == "zero":
        return jnp.zeros(algo.env.action_size)
    if policy == "random":
        return jax.random.uniform(key, (algo.env.action_size,), minval=-1.0, maxval=1.0)
    obs = select_obs(obs, algo.config.obs_keys)
    return algo.learners.learners[learner].act(params, obs, goal)


def imitation_episode(algo: MetaMimic, policy: str, params, bank: DemoBank, demo_idx, key):
    """Follows demo ``demo_idx`` from its first state for its whole length (no early end).

    Returns per-episode scalars: mean imitation reward and terms, mean joint error,
    whether it stayed within the termination threshold, block error at the demo's end,
    whether it ends stacked, and the task reward collected.
    """
    env, cfg = algo.env, algo.config
    length = bank.lengths[demo_idx]
    state = env.reset_to(key, demo_lib.init_states(bank, demo_idx))

    def step(carry, t):
        state, key = carry
        key, key_act = jax.random.split(key)
        goal = algo.goal(bank, demo_idx, t)
        action = _action(algo, policy, "imitation", params, state.obs, goal, key_act)
        state = env.step(state, action)
        target = demo_lib.goal(bank, demo_idx, t + 1)
        reward, drifted, metrics = imitation_reward(cfg.imitation_reward, state.obs, target)
        block = FEATURES_PARTS["block_pos"]
        out = {
            "reward": reward,
            "drifted": drifted,
            "joint_error": metrics["imitation/joints_error"],
            "block_error": jnp.linalg.norm(
                state.obs["features"][block] - target["features"][block]
            ),
            "task_reward": state.reward,
            **{k: v for k, v in metrics.items() if not k.endswith("_error")},
        }
        return (state, key), out

    steps = jnp.arange(bank.max_steps - 1)
    _, out = jax.lax.scan(step, (state, key), steps)
    active = (steps < length - 1).astype(jnp.float32)  # (T-1,) transitions within the demo
    n = jnp.sum(active)
    end = length - 2  # the transition that reaches the demo's last frame
    result = {
        k: jnp.sum(v * active) / n for k, v in out.items() if k not in ("drifted", "block_error")
    }
    result.update(
        tracked=1.0 - jnp.max(out["drifted"] * active),
        final_block_error=out["block_error"][end],
        ended_stacked=out["task_reward"][end],
        task_return=jnp.sum(out["task_reward"] * active),
    )
    return result


def task_episode(algo: MetaMimic, policy: str, params, key, num_steps: int):
    """The task policy from a fresh random layout: success and first step of a stack."""
    env = algo.env
    key_reset, key = jax.random.split(key)
    state = env.reset(key_reset)

    def step(carry, _):
        state, key = carry
        key, key_act = jax.random.split(key)
        action = _action(algo, policy, "task", params, state.obs, None, key_act)
        state = env.step(state, action)
        return (state, key), state.reward

    _, rewards = jax.lax.scan(step, (state, key), None, length=num_steps)
    success = jnp.max(rewards)
    first = jnp.where(success > 0, jnp.argmax(rewards > 0) + 1, num_steps)
    return {"success": success, "steps_to_stack": first.astype(jnp.float32)}


def demo_reference(bank: DemoBank) -> dict[str, float]:
    """The demos' own task return and steps to stack, for normalisation."""
    reward = np.asarray(bank.task_reward)  # (N, T)
    lengths = np.asarray(bank.lengths)
    mask = np.arange(reward.shape[1])[None] < lengths[:, None]
    first = np.argmax(reward > 0, axis=1)
    return {
        "task_return": float(np.mean(np.sum(reward * mask, axis=1))),
        "steps_to_stack": float(np.mean(first)),
    }


class Evaluator:
    """Compiled evaluation of a run: one-shot imitation of every demo in a bank and task
    episodes from fresh layouts, for each policy.

    Parameters and demos are arguments of the jitted functions (not constants baked into
    them), so repeated evaluations during training reuse one compilation per policy.

    Args:
      algo: the run's algorithm.
      num_task_episodes: fresh layouts per policy for the task policy.
    """

    def __init__(self, algo: MetaMimic, num_task_episodes: int = 16):
        self.algo = algo
        self.num_task_episodes = num_task_episodes
        self._imitate = jax.jit(self._imitate_all, static_argnums=0)
        self._task = jax.jit(self._task_all, static_argnums=(0, 3))

    def _imitate_all(self, policy, params, bank, keys):
        ids = jnp.arange(bank.num_demos, dtype=jnp.int32)
        episode = lambda i, k: imitation_episode(self.algo, policy, params, bank, i, k)
        return batched(episode, self.algo.chunk_size)(ids, keys)

    def _task_all(self, policy, params, keys, num_steps):
        episode = lambda k: task_episode(self.algo, policy, params, k, num_steps)
        return batched(episode, self.algo.chunk_size)(keys)

    def __call__(
        self, learners, bank: DemoBank, key: jax.Array, policies: tuple[str, ...] = POLICIES
    ) -> dict[str, float]:
        """Evaluates ``learners`` (name -> D4PGState) on ``bank`` for each policy.

        Returns:
          Flat metrics ``eval/<policy>/<name>``: imitation reward (and terms), joint error
          (rad), tracked-to-end fraction, final block error (m), ended-stacked fraction, task
          return normalised by the demos', task success rate and steps to stack (also the
          demos' ``eval/demos/...`` reference values). Policies of learners that are not
          trained (no imitation learner for task-only D4PG) are skipped.
        """
        reference = demo_reference(bank)
        results = {f"eval/demos/{k}": v for k, v in reference.items()}
        imitation_params = learners["imitation"].actor_params if "imitation" in learners else None
        task_params = learners["task"].actor_params if "task" in learners else None
        for policy in policies:
            key, key_im, key_task = jax.random.split(key, 3)
            summary = {}
            if policy != "agent" or imitation_params is not None:
                keys = jax.random.split(key_im, bank.num_demos)
                im = jax.device_get(self._imitate(policy, imitation_params, bank, keys))
                summary = {k: float(np.mean(v)) for k, v in im.items()}
                summary["task_return_normalised"] = summary.pop("task_return") / max(
                    reference["task_return"], 1e-6
                )
            if policy != "agent" or task_params is not None:
                keys = jax.random.split(key_task, self.num_task_episodes)
                task = jax.device_get(self._task(policy, task_params, keys, bank.max_steps))
                summary["task_success"] = float(np.mean(task["success"]))
                solved = task["success"] > 0
                summary["task_steps_to_stack"] = (
                    float(np.mean(task["steps_to_stack"][solved])) if solved.any() else float("nan")
                )
            results.update({f"eval/{policy}/{k}": v for k, v in summary.items()})
        return results
