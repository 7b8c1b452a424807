"""What the task learner knows, measured on demos (``mjx-metamimic eval --task-diagnostics``).

- **Back-off:** the task policy (and the zero policy, the baseline of the same run) started
  from each demo's state ``k`` steps before the demo's first stack, for k in ``backoffs``:
  the share of starts that reach a stack within ``horizon`` steps. A task policy that has
  learned only the end of the task succeeds for small k and fails for large k.
- **Critic along the demos:** the task critic's value Q(o_t, pi(o_t)) at demo steps grouped
  by their distance to the demo's first stack, beside the discounted task return the demo
  itself collected from there (Monte Carlo, cut at the demo's end, so it is a lower bound
  of a stack held forever).
"""

import jax
import jax.numpy as jnp
import numpy as np

from mjx_metamimic import demos as demo_lib
from mjx_metamimic.demos import DemoBank
from mjx_metamimic.demos.bank import goal
from mjx_metamimic.envs.batching import batched
from mjx_metamimic.training.actors import select_obs
from mjx_metamimic.training.evaluate import POLICIES, first_stack, task_episode
from mjx_metamimic.training.system import MetaMimic

BACKOFFS = (0, 10, 20, 40, 80)
# groups of demo steps by their distance to the first stack (t - t_stack), for the critic
CRITIC_BINS = ((-200, -80), (-80, -40), (-40, -10), (-10, 0), (0, 200))


def backoff_success(
    algo: MetaMimic, params, bank: DemoBank, key: jax.Array, horizon: int = 100
) -> dict[str, dict[int, float]]:
    """Per policy ("agent", "zero"): {k: share of demos whose state k steps before their
    first stack leads to a stack within ``horizon`` steps}."""
    stacks = first_stack(bank)

    def episode(policy, start_t, demo_idx, k):
        state = algo.env.reset_to(k, demo_lib.states_at(bank, demo_idx, start_t))
        return task_episode(algo, policy, params, k, horizon, state)["success"]

    @jax.jit
    def run(policy, start_t, keys):
        ids = jnp.arange(bank.num_demos, dtype=jnp.int32)
        one = lambda t, i, k: episode(policy, t, i, k)
        return batched(one, algo.chunk_size)(start_t, ids, keys)

    results = {}
    for name in ("agent", "zero"):
        per_k = {}
        for k in BACKOFFS:
            key, run_key = jax.random.split(key)
            start = jnp.asarray(np.maximum(stacks - k, 0), jnp.int32)
            keys = jax.random.split(run_key, bank.num_demos)
            per_k[k] = float(np.mean(run(jnp.int32(POLICIES.index(name)), start, keys)))
        results[name] = per_k
    return results


def critic_along_demos(algo: MetaMimic, learners: dict, bank: DemoBank) -> list[dict]:
    """Rows per ``CRITIC_BINS`` group: steps, mean task critic value Q(o_t, pi(o_t)) and
    mean Monte-Carlo discounted task return of the demo from t."""
    task = algo.learners.learners["task"]
    state = learners["task"]
    gamma = algo.config.replay.gamma
    num, steps = np.asarray(bank.task_reward).shape
    ids = jnp.repeat(jnp.arange(num, dtype=jnp.int32), steps)
    ts = jnp.tile(jnp.arange(steps, dtype=jnp.int32), num)
    obs = goal(bank, ids, ts)
    obs = select_obs(obs, algo.config.obs_keys)
    value = lambda o: task.q_mean(state.critic_params, o, None, task.act(state.actor_params, o))
    q = np.asarray(jax.jit(value)(obs)).reshape(num, steps)
    reward = np.asarray(bank.task_reward, np.float64)
    lengths = np.asarray(bank.lengths)
    # the reward of reaching frame t+1 belongs to step t, as the replay stores it
    step_reward = np.concatenate([reward[:, 1:], np.zeros((num, 1))], 1)
    step_reward *= np.arange(steps)[None] < (lengths - 1)[:, None]
    returns = np.zeros_like(step_reward)
    running = np.zeros(num)
    for t in range(steps - 1, -1, -1):
        running = step_reward[:, t] + gamma * running
        returns[:, t] = running
    offset = np.arange(steps)[None] - first_stack(bank)[:, None]
    valid = np.arange(steps)[None] < (lengths - 1)[:, None]
    rows = []
    for low, high in CRITIC_BINS:
        mask = valid & (offset >= low) & (offset < high)
        if mask.any():
            rows.append(
                {
                    "from": low,
                    "to": high,
                    "steps": int(mask.sum()),
                    "q": float(q[mask].mean()),
                    "return": float(returns[mask].mean()),
                }
            )
    return rows


def diagnose(algo: MetaMimic, learners: dict, bank: DemoBank, key: jax.Array) -> dict:
    """Both measurements as one JSON-able dict (``backoff``, ``critic``); needs a task
    learner and demos with per-step simulator states."""
    if "task" not in learners:
        raise ValueError("--task-diagnostics needs a run with a task learner (learner.train_task)")
    params = learners["task"].actor_params
    return {
        "backoff": backoff_success(algo, params, bank, key),
        "critic": critic_along_demos(algo, learners, bank),
    }
