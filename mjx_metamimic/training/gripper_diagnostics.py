"""What the imitation learner knows about the gripper, measured on demos
(``mjx-metamimic eval --gripper-diagnostics``).

At every step t of every demo the networks see the demo's own observation o_t and its goal
g_t (the demo's observation ``lookahead`` steps on). The goal's gripper choice is the
command that holds the goal's finger gap (``GripperGuide``: -1 while the goal's fingers
hold a block): "open" where it is >= 0, else "shut". Steps within ``WINDOW`` steps of a
change of that choice are the grasps and releases; the others are "elsewhere".

- **Actor agreement:** the share of steps where the actor's gripper command has the goal's
  choice (its sign).
- **Actor goal sensitivity:** the mean change of the actor's gripper command when only the
  goal's finger gap changes from the demos' narrowest to their widest (the goal frame and
  the rest of the goal kept): ~0 means the actor ignores the goal's gap and follows
  something else (time, the arm).
- **Critic preference:** the share of steps where the critic values the actor's action with
  the goal's gripper choice (+-1) above the same action with the other one, and the mean
  value difference: the gradient the actor's gripper gets.
"""

import jax
import jax.numpy as jnp
import numpy as np

from mjx_metamimic.demos import DemoBank
from mjx_metamimic.demos.bank import goal as demo_obs
from mjx_metamimic.envs.stack import GRIPPER_ACTION, PROPRIO_PARTS
from mjx_metamimic.training.actors import select_obs
from mjx_metamimic.training.system import MetaMimic

WINDOW = 5  # steps either side of a change of the goal's gripper choice
GAP = PROPRIO_PARTS["finger_gap"]


def with_gap(goal: dict, gap: float) -> dict:
    """``goal`` with its finger gap (m) replaced by ``gap``."""
    return {**goal, "proprio": goal["proprio"].at[..., GAP].set(gap)}


def gripper_diagnostics(algo: MetaMimic, learners: dict, bank: DemoBank) -> list[dict]:
    """Rows for "grasp/release", "elsewhere" and "all" demo steps: ``steps``,
    ``actor_agrees``, ``actor_gap_sensitivity``, ``critic_prefers_goal``,
    ``critic_value_gap``. Needs an imitation learner."""
    if "imitation" not in learners:
        raise ValueError("--gripper-diagnostics needs a run with an imitation learner")
    learner, state = algo.learners.learners["imitation"], learners["imitation"]
    env, lookahead = algo.env, algo.config.actors.lookahead
    num, steps = np.asarray(bank.task_reward).shape
    ids = jnp.repeat(jnp.arange(num, dtype=jnp.int32), steps)
    ts = jnp.tile(jnp.arange(steps, dtype=jnp.int32), num)
    keys = algo.config.obs_keys
    obs = select_obs(demo_obs(bank, ids, ts), keys)
    goal = select_obs(demo_obs(bank, ids, ts + lookahead), keys)
    gaps = np.asarray(bank.proprio)[..., GAP]
    shut_gap, open_gap = float(gaps.min()), float(gaps.max())  # the demos' extremes

    @jax.jit
    def measure(obs, goal):
        choice = jnp.sign(env.gripper_command_for_gap(goal["proprio"][..., GAP][..., 0]) + 1e-6)
        act = lambda g: learner.act(state.actor_params, obs, g)
        action = act(goal)
        sensitivity = (
            act(with_gap(goal, open_gap))[..., GRIPPER_ACTION]
            - act(with_gap(goal, shut_gap))[..., GRIPPER_ACTION]
        )
        value = lambda command: learner.q_mean(
            state.critic_params, obs, goal, action.at[..., GRIPPER_ACTION].set(command)
        )
        value_gap = value(choice) - value(-choice)
        agrees = jnp.sign(action[..., GRIPPER_ACTION]) == choice
        return choice, agrees, sensitivity, value_gap

    choice, agrees, sensitivity, value_gap = (
        np.asarray(x).reshape(num, steps) for x in measure(obs, goal)
    )
    valid = np.arange(steps)[None] < (np.asarray(bank.lengths) - lookahead)[:, None]
    changes = np.zeros_like(valid)
    changes[:, 1:] = (choice[:, 1:] != choice[:, :-1]) & valid[:, 1:]
    # near[t]: a change within t - WINDOW ... t + WINDOW (a windowed sum of the changes)
    padded = np.cumsum(np.pad(changes.astype(int), ((0, 0), (WINDOW + 1, WINDOW))), axis=1)
    near = (padded[:, 2 * WINDOW + 1 :] - padded[:, : -2 * WINDOW - 1]) > 0
    rows = []
    for name, mask in (
        ("grasp/release", valid & near),
        ("elsewhere", valid & ~near),
        ("all", valid),
    ):
        if mask.any():
            rows.append(
                {
                    "steps": name,
                    "count": int(mask.sum()),
                    "actor_agrees": float(agrees[mask].mean()),
                    "actor_gap_sensitivity": float(sensitivity[mask].mean()),
                    "critic_prefers_goal": float((value_gap[mask] > 0).mean()),
                    "critic_value_gap": float(value_gap[mask].mean()),
                }
            )
    return rows
