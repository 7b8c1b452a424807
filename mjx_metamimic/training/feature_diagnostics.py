"""Where the pixel torso puts the blocks, measured on demos
(``mjx-metamimic eval --feature-diagnostics``).

A run trained with ``learner.imitation.aux_features_weight`` > 0 has a linear head that
predicts the privileged features of the observation and the goal from the critics'
embedding (``networks.heads.FeaturePredictor``). At every step of every demo the networks
see the demo's own observation and its goal (``lookahead`` steps on), as in
``gripper_diagnostics``; for each group of positions the head's error (RMSE, cm) is set
beside the spread of the true values over the same steps (their std, cm: what predicting
the demos' mean would score) and the share of variance explained (1 - RMSE² / std²). On
the training demos against held-out ones it says whether the torso locates the blocks in
new layouts or has learned its training layouts.
"""

import jax
import jax.numpy as jnp
import numpy as np

from mjx_metamimic.demos import DemoBank
from mjx_metamimic.demos.bank import goal as demo_obs
from mjx_metamimic.envs.stack import FEATURES_PARTS, PROPRIO_SIZE
from mjx_metamimic.networks.heads import AUX_FEATURES, FeaturePredictor, observation_vectors
from mjx_metamimic.training.system import MetaMimic

# The position parts of the features vector (``envs.stack.FEATURES_PARTS``), in metres.
POSITIONS = ("grip_pos", "block_pos", "grip_to_blocks", "block_to_block")
DEMOS_PER_BATCH = 16  # demos measured per call, to bound the activations' memory


def feature_diagnostics(algo: MetaMimic, learners: dict, bank: DemoBank) -> list[dict]:
    """Rows of ``frame`` ("observation" or "goal"), ``positions`` (a ``POSITIONS`` name),
    ``rmse_cm``, ``spread_cm`` and ``explained``. Needs an imitation learner trained with
    ``aux_features_weight`` > 0."""
    learner = algo.learners.learners.get("imitation")
    if learner is None or not learner.config.aux_features_weight:
        raise ValueError(
            "--feature-diagnostics needs a run whose imitation learner predicts the features "
            "(learner.imitation.aux_features_weight > 0)"
        )
    critic = learners["imitation"].critic_params
    lookahead = algo.config.actors.lookahead
    num, steps = np.asarray(bank.task_reward).shape

    @jax.jit
    def predict(critic, bank, ids, ts):
        obs, goal = demo_obs(bank, ids, ts), demo_obs(bank, ids, ts + lookahead)
        embedding = learner.shared.embed(critic, obs, goal)
        head = {c: tree[AUX_FEATURES] for c, tree in critic.items() if AUX_FEATURES in tree}
        prediction, _ = FeaturePredictor().apply(head, embedding, obs, goal)
        scales = head["input_scales"]
        raw = prediction * jnp.tile(scales["scale"], 2) + jnp.tile(scales["shift"], 2)
        truth = jnp.concatenate([observation_vectors(obs), observation_vectors(goal)], -1)
        return raw, truth

    # Every call measures DEMOS_PER_BATCH demos (the last batch repeats its last demo and
    # drops the repeats), so ``predict`` compiles once.
    predicted, truth = [], []
    ts = jnp.tile(jnp.arange(steps, dtype=jnp.int32), DEMOS_PER_BATCH)
    for start in range(0, num, DEMOS_PER_BATCH):
        ids = np.minimum(np.arange(start, start + DEMOS_PER_BATCH), num - 1).astype(np.int32)
        kept = min(DEMOS_PER_BATCH, num - start) * steps
        pair = predict(critic, bank, jnp.repeat(jnp.asarray(ids), steps), ts)
        predicted.append(np.asarray(pair[0])[:kept])
        truth.append(np.asarray(pair[1])[:kept])
    predicted, truth = np.concatenate(predicted), np.concatenate(truth)
    valid = (np.arange(steps)[None] < (np.asarray(bank.lengths) - lookahead)[:, None]).ravel()
    size = truth.shape[-1] // 2
    rows = []
    for frame, offset in (("observation", 0), ("goal", size)):
        for name in POSITIONS:
            cols = np.arange(size)[PROPRIO_SIZE:][FEATURES_PARTS[name]] + offset
            error = predicted[valid][:, cols] - truth[valid][:, cols]
            rmse = float(np.sqrt(np.mean(np.square(error))))
            spread = float(np.sqrt(np.mean(np.var(truth[valid][:, cols], axis=0))))
            rows.append(
                {
                    "frame": frame,
                    "positions": name,
                    "rmse_cm": 100 * rmse,
                    "spread_cm": 100 * spread,
                    "explained": 1.0 - (rmse / spread) ** 2 if spread else float("nan"),
                }
            )
    return rows
