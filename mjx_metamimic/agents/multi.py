"""Several D4PG learners trained from the same replay batches, one per reward stream.

MetaMimic trains an imitation learner (goal-conditioned, imitation reward) and a task learner
(no goal, task reward) side by side: ``MultiD4PG({"imitation": ..., "task": ...})``.
"""

from collections.abc import Mapping

import jax

from mjx_metamimic.agents.d4pg import D4PG, D4PGState
from mjx_metamimic.networks.heads import Observation
from mjx_metamimic.replay import NStepBatch


class MultiD4PG:
    """A dict of learners keyed by name (used as the metrics namespace).

    Args:
        learners: name -> learner; each learner reads its own ``config.stream`` reward.
    """

    def __init__(self, learners: Mapping[str, D4PG]):
        self.learners = dict(learners)

    def init(
        self, key: jax.Array, obs: Observation, goal: Observation | None = None
    ) -> dict[str, D4PGState]:
        """Initialises every learner; goal-conditioned ones get ``goal``, the others none."""
        keys = jax.random.split(key, len(self.learners))
        return {
            name: learner.init(k, obs, goal if learner.config.goal_conditioned else None)
            for (name, learner), k in zip(self.learners.items(), keys, strict=True)
        }

    def update(
        self,
        states: Mapping[str, D4PGState],
        batch: NStepBatch,
        goal: Observation | None = None,
        next_goal: Observation | None = None,
        weights: Mapping[str, jax.Array] | None = None,
        key: jax.Array | None = None,
    ) -> tuple[dict[str, D4PGState], dict[str, jax.Array]]:
        """Updates every learner on the same batch.

        Args:
            states: name -> learner state.
            batch: Shared n-step batch (leading axis B).
            goal: Goals at t for the goal-conditioned learners (leaves (B, ...)).
            next_goal: Goals at the bootstrap step.
            weights: Optional name -> (B,) per-sample loss weights of that learner (e.g. 0
                for samples the learner must not learn from); learners not named weigh
                every sample equally.
            key: PRNG key, split between the learners (for target-action noise).

        Returns:
            New states and metrics namespaced ``train/<name>/<metric>``.
        """
        new_states, metrics = {}, {}
        keys = [None] * len(self.learners)
        if key is not None:
            keys = list(jax.random.split(key, len(self.learners)))
        for (name, learner), learner_key in zip(self.learners.items(), keys, strict=True):
            conditioned = learner.config.goal_conditioned
            new_states[name], learner_metrics = learner.update(
                states[name],
                batch,
                goal if conditioned else None,
                next_goal if conditioned else None,
                (weights or {}).get(name),
                learner_key,
            )
            metrics.update({f"train/{name}/{k}": v for k, v in learner_metrics.items()})
        return new_states, metrics
