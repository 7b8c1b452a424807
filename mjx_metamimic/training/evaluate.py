"""One-shot evaluation: imitate held-out demos, and solve fresh layouts with the task policy.

Policies: "agent" (the learned policies, no exploration noise), "zero" (no motion) and
"random" (uniform actions) - the last two are the baselines measured in the same run.
"""

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from mjx_metamimic import demos as demo_lib
from mjx_metamimic.demos import DemoBank
from mjx_metamimic.envs.batching import batched
from mjx_metamimic.envs.stack import FEATURES_PARTS
from mjx_metamimic.training import checkpoints
from mjx_metamimic.training.actors import select_obs
from mjx_metamimic.training.feature_diagnostics import feature_diagnostics as measure_features
from mjx_metamimic.training.gripper_diagnostics import gripper_diagnostics as measure_gripper
from mjx_metamimic.training.run_dir import load_run_config
from mjx_metamimic.training.setup import build
from mjx_metamimic.training.system import MetaMimic
from mjx_metamimic.training.video import ImitationVideo, TaskVideo

POLICIES: tuple[str, ...] = ("agent", "zero", "random")


def _action(algo: MetaMimic, policy: jax.Array, learner: str, params, obs, goal, key):
    """The action of ``POLICIES[policy]`` (a traced index, so that one compilation serves
    every policy): the learner's (``obs`` as the networks see it), none or random.
    ``params`` None (no such learner) leaves the agent's branch acting as zero."""
    size = algo.env.action_size
    zero = lambda: jnp.zeros(size)
    random = lambda: jax.random.uniform(key, (size,), minval=-1.0, maxval=1.0)
    agent = zero
    if params is not None:
        agent = lambda: algo.learners.learners[learner].act(params, obs, goal)
    return jax.lax.switch(policy, [agent, zero, random])


def imitation_episode(algo: MetaMimic, policy, params, bank: DemoBank, demo_idx, key):
    """Follows demo ``demo_idx`` from its first state for its whole length (no early end)
    with policy ``POLICIES[policy]``.

    Returns per-episode scalars: mean imitation reward and terms, mean joint error,
    whether it stayed within the termination threshold, block error at the demo's end,
    whether it ends stacked, and the task reward collected.
    """
    actor = algo.imitation
    length = bank.lengths[demo_idx]
    state = actor.start(bank, demo_idx, key)

    def step(carry, t):
        state, key = carry
        key, key_act = jax.random.split(key)
        act = lambda obs, goal, _: _action(algo, policy, "imitation", params, obs, goal, key_act)
        out = actor.follow(bank, state, demo_idx, t, act)
        state, target = out.next_state, out.target
        block = FEATURES_PARTS["block_pos"]
        result = {
            "reward": out.reward,
            "drifted": out.drifted,
            "joint_error": out.terms["imitation/joints_error"],
            "block_error": jnp.linalg.norm(
                state.obs["features"][block] - target["features"][block]
            ),
            "task_reward": state.reward,
            **{k: v for k, v in out.terms.items() if not k.endswith("_error")},
        }
        return (state, key), result

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


def task_episode(algo: MetaMimic, policy, params, key, num_steps: int, state=None):
    """The task policy from ``state`` (None: a fresh random layout) for ``num_steps``
    steps: success, the first step of a stack, and how far it got short of one (the
    closest its gripper came to a block, m; whether it ever held one; whether it ever
    lifted one by a block's height, as high as a stack needs)."""
    env = algo.env
    key_reset, key = jax.random.split(key)
    if state is None:
        state = env.reset(key_reset)

    def step(carry, _):
        state, key = carry
        key, key_act = jax.random.split(key)
        obs = select_obs(state.obs, algo.config.obs_keys)
        action = _action(algo, policy, "task", params, obs, None, key_act)
        state = env.step(state, action)
        return (state, key), (
            state.reward,
            state.metrics["env/reach_dist"],
            state.metrics["env/grasped"],
            state.metrics["env/lift"],
        )

    _, (rewards, reach, grasped, lift) = jax.lax.scan(step, (state, key), None, length=num_steps)
    success = jnp.max(rewards)
    first = jnp.where(success > 0, jnp.argmax(rewards > 0) + 1, num_steps)
    return {
        "success": success,
        "steps_to_stack": first.astype(jnp.float32),
        "closest_reach": jnp.min(reach),
        "grasped": jnp.max(grasped),
        "lifted": (jnp.max(lift) >= 2 * env.ids.block_half_size).astype(jnp.float32),
    }


def demo_reference(bank: DemoBank) -> dict[str, float]:
    """The demos' own task return, steps to stack and share ended stacked (the reference
    of the policies' figures)."""
    reward = np.asarray(bank.task_reward)  # (N, T)
    lengths = np.asarray(bank.lengths)
    mask = np.arange(reward.shape[1])[None] < lengths[:, None]
    return {
        "task_return": float(np.mean(np.sum(reward * mask, axis=1))),
        "steps_to_stack": float(np.mean(first_stack(bank))),
        "ended_stacked": float(np.mean(reward[np.arange(len(lengths)), lengths - 1] > 0)),
    }


def first_stack(bank: DemoBank) -> np.ndarray:
    """(N,) each demo's first step with the task reward on (its length if none)."""
    reward = np.asarray(bank.task_reward) > 0
    return np.where(reward.any(1), reward.argmax(1), np.asarray(bank.lengths))


def task_summary(task: dict, suffix: str) -> dict[str, float]:
    """Task episodes' success rate, mean steps to stack of the successes (NaN if none),
    mean closest gripper-to-block distance (m) and shares of episodes that held a block
    and that lifted one by a block's height (reach -> grasp -> lift -> stack)."""
    solved = task["success"] > 0
    steps = float(np.mean(task["steps_to_stack"][solved])) if solved.any() else float("nan")
    return {
        f"task_success{suffix}": float(np.mean(task["success"])),
        f"task_steps_to_stack{suffix}": steps,
        f"task_closest_reach{suffix}": float(np.mean(task["closest_reach"])),
        f"task_grasped{suffix}": float(np.mean(task["grasped"])),
        f"task_lifted{suffix}": float(np.mean(task["lifted"])),
    }


class Evaluator:
    """Compiled evaluation of a run: one-shot imitation of every demo in a bank and task
    episodes from fresh layouts, for each policy.

    The policy, parameters and demos are arguments of the jitted functions (not constants
    baked into them), so every policy and every evaluation during training share one
    compilation.

    Args:
      algo: the run's algorithm.
      num_task_episodes: fresh layouts per policy for the task policy.
    """

    def __init__(self, algo: MetaMimic, num_task_episodes: int = 16):
        self.algo = algo
        self.num_task_episodes = num_task_episodes
        self._imitate = jax.jit(self._imitate_all)
        self._task = jax.jit(self._task_all, static_argnums=3)
        self._task_demos = jax.jit(self._task_from_demos)

    def _imitate_all(self, policy, params, bank, keys):
        ids = jnp.arange(bank.num_demos, dtype=jnp.int32)
        episode = lambda i, k: imitation_episode(self.algo, policy, params, bank, i, k)
        return batched(episode, self.algo.chunk_size)(ids, keys)

    def _task_all(self, policy, params, keys, num_steps):
        episode = lambda k: task_episode(self.algo, policy, params, k, num_steps)
        return batched(episode, self.algo.chunk_size)(keys)

    def _task_from_demos(self, policy, params, bank, keys):
        """The task policy from each demo's first state (its layout), for the demos' steps."""

        def episode(i, k):
            start = self.algo.imitation.start(bank, i, k)
            return task_episode(self.algo, policy, params, k, bank.max_steps, start)

        ids = jnp.arange(bank.num_demos, dtype=jnp.int32)
        return batched(episode, self.algo.chunk_size)(ids, keys)

    def __call__(
        self, learners, bank: DemoBank, key: jax.Array, policies: tuple[str, ...] = POLICIES
    ) -> dict[str, float]:
        """Evaluates ``learners`` (name -> D4PGState) on ``bank`` for each policy.

        Returns:
          Flat metrics ``eval/<policy>/<name>``: imitation reward (and terms), joint error
          (rad), tracked-to-end fraction, final block error (m), ended-stacked fraction, task
          return normalised by the demos', the task policy's success rate and mean steps to
          stack (of the successes) on fresh layouts (``task_success``) and from the demos'
          first states (``task_success_from_demos``, comparable with the demos' own
          ``eval/demos/steps_to_stack``). Policies of learners that are not
          trained (no imitation learner for task-only D4PG) are skipped.
        """
        reference = demo_reference(bank)
        results = {f"eval/demos/{k}": v for k, v in reference.items()}
        imitation_params = learners["imitation"].actor_params if "imitation" in learners else None
        task_params = learners["task"].actor_params if "task" in learners else None
        for policy in policies:
            index = jnp.int32(POLICIES.index(policy))
            key, key_im, key_task, key_task_demos = jax.random.split(key, 4)
            summary = {}
            if policy != "agent" or imitation_params is not None:
                keys = jax.random.split(key_im, bank.num_demos)
                im = jax.device_get(self._imitate(index, imitation_params, bank, keys))
                summary = {k: float(np.mean(v)) for k, v in im.items()}
                summary["task_return_normalised"] = summary.pop("task_return") / max(
                    reference["task_return"], 1e-6
                )
            if policy != "agent" or task_params is not None:
                keys = jax.random.split(key_task, self.num_task_episodes)
                task = jax.device_get(self._task(index, task_params, keys, bank.max_steps))
                summary.update(task_summary(task, ""))
                keys = jax.random.split(key_task_demos, bank.num_demos)
                task = jax.device_get(self._task_demos(index, task_params, bank, keys))
                summary.update(task_summary(task, "_from_demos"))
            results.update({f"eval/{policy}/{k}": v for k, v in summary.items()})
        return results


@dataclasses.dataclass(frozen=True)
class RunEvaluation:
    """An evaluation of a run's checkpoint: its chunk and the metrics (see ``Evaluator``)."""

    checkpoint: int
    results: dict[str, float]
    task_diagnostics: dict | None = None
    gripper_diagnostics: list[dict] | None = None
    feature_diagnostics: list[dict] | None = None


def evaluate_run(
    run_dir: Path,
    demos: Path | None = None,
    split: str = "validation",
    policies: tuple[str, ...] = POLICIES,
    task_episodes: int = 16,
    seed: int = 0,
    video: Path | None = None,
    video_demos: int = 1,
    video_size: int = 128,
    task_diagnostics: bool = False,
    task_video: Path | None = None,
    gripper_diagnostics: bool = False,
    feature_diagnostics: bool = False,
    console=None,
) -> RunEvaluation:
    """Evaluates the latest checkpoint of the run in ``run_dir``.

    Args:
      run_dir: a run directory made by ``training.train``.
      demos: the dataset to imitate (default: the run's own).
      split: "train", "validation" or "all" demos of that dataset.
      policies: which of ``POLICIES`` to evaluate.
      task_episodes: fresh layouts for the task policy.
      seed: seed of the evaluation.
      video: also write the imitation policy beside the split's first ``video_demos``
        demos here (.gif, or .mp4 with PyAV), at ``video_size`` pixels.
      task_video: also write the task policy from the first ``video_demos`` demos'
        layouts beside those demos here.
      task_diagnostics: also measure what the task learner knows on these demos
        (``training.task_diagnostics``).
      gripper_diagnostics: also measure what the imitation learner knows about the gripper
        on these demos (``training.gripper_diagnostics``).
      console: a ``rich`` console for messages (None: quiet).
    """
    config = load_run_config(run_dir)
    for wanted, option in ((task_diagnostics, "--task-diagnostics"), (task_video, "--task-video")):
        if wanted and not config.learner.train_task:
            raise ValueError(f"{option}: the run in {run_dir} trains no task learner")
    if gripper_diagnostics and not config.learner.train_imitation:
        raise ValueError(f"--gripper-diagnostics: the run in {run_dir} trains no imitation learner")
    if feature_diagnostics and not (
        config.learner.train_imitation and config.learner.imitation.aux_features_weight
    ):
        raise ValueError(
            f"--feature-diagnostics: the run in {run_dir} has no feature-prediction head "
            "(learner.imitation.aux_features_weight = 0)"
        )
    algo = build(config)
    imitation_video = ImitationVideo(algo, video_size) if video is not None else None
    bank = demo_lib.DemoBank.from_demos(demo_lib.load(demos or config.demos.path, split))
    state = jax.jit(algo.init)(jax.random.PRNGKey(0), bank)
    step, state = checkpoints.restore_latest(checkpoints.manager(run_dir), state)
    if console is not None:
        console.print(f"evaluating {run_dir} (chunk {step}) on {bank.num_demos} {split} demos")
    evaluator = Evaluator(algo, task_episodes)
    results = evaluator(state.learners, bank, jax.random.PRNGKey(seed), policies)
    if imitation_video is not None:
        if console is not None:
            console.print(f"rendering {video}: {video_demos} demo(s), {video_size} px")
        params = state.learners["imitation"].actor_params
        imitation_video.write(params, bank, video, video_demos)
    if task_video is not None:
        if console is not None:
            console.print(f"rendering {task_video}: task policy, {video_demos} layout(s)")
        params = state.learners["task"].actor_params
        TaskVideo(algo, video_size).write(params, bank, task_video, video_demos)
    diagnostics = None
    if task_diagnostics:
        from mjx_metamimic.training.task_diagnostics import diagnose  # builds on this module

        if console is not None:
            console.print("task diagnostics: back-off starts and the critic along the demos")
        diagnostics = diagnose(algo, state.learners, bank, jax.random.PRNGKey(seed + 1))
    gripper = None
    if gripper_diagnostics:
        if console is not None:
            console.print("gripper diagnostics: actor and critic against the goals' gripper")
        gripper = measure_gripper(algo, state.learners, bank)
    features = None
    if feature_diagnostics:
        if console is not None:
            console.print("feature diagnostics: the torso's grip and block positions")
        features = measure_features(algo, state.learners, bank)
    return RunEvaluation(step, results, diagnostics, gripper, features)
