"""Several D4PG learners trained from the same replay batches, one per reward stream.

MetaMimic trains an imitation learner (goal-conditioned, imitation reward) and a task learner
(no goal, task reward) side by side: ``MultiD4PG({"imitation": ..., "task": ...})``.
"""

from collections.abc import Mapping

import flax.struct
import jax

from mjx_metamimic.agents.d4pg import D4PG, D4PGState
from mjx_metamimic.agents.d4pg_config import D4PGConfig
from mjx_metamimic.networks.heads import Observation
from mjx_metamimic.replay import NStepBatch


@flax.struct.dataclass
class LearnerBatch:
    """What every learner of a ``MultiD4PG`` updates on (leading batch axis B everywhere).

    Attributes:
        transitions: the shared n-step transitions.
        goal: goals at t for the goal-conditioned learners (None without one).
        next_goal: goals at the bootstrap step.
        weights: name -> (B,) per-sample loss weights of that learner (e.g. 0 for samples
            it must not learn from); learners not named weigh every sample equally.
        own_transitions: name -> the same samples' transitions with that learner's own
            n-step return (``D4PGConfig.n_step``); learners not named use ``transitions``.
        reaches_reward: name -> (B,) bool, whether each sample's episode goes on to a
            positive reward of that learner's stream (``D4PGConfig.regresses_by_success``).
        holding: (B,) bool, whether the gripper holds a block at each sample's step (for
            learners with ``D4PGConfig.bc_held_dim_scales``; None when none has them).
        pausing: (B,) bool, whether the demo an imitation actor followed held its arm still
            at each sample's step (for learners with ``D4PGConfig.bc_pause_dim_scales``;
            None when none has them).
        rows: (name, start, stop) of learners that read only rows [start, stop) of the
            batch (e.g. a task learner's success-mixed rows the imitation learner skips);
            learners not named read every row.
    """

    transitions: NStepBatch
    goal: Observation | None = None
    next_goal: Observation | None = None
    weights: dict | None = None
    own_transitions: dict | None = None
    reaches_reward: dict | None = None
    holding: jax.Array | None = None
    pausing: jax.Array | None = None
    rows: tuple = flax.struct.field(pytree_node=False, default=())

    def for_learner(self, name: str) -> "LearnerBatch":
        """The rows learner ``name`` reads (the whole batch unless ``rows`` names it)."""
        spans = {learner: (start, stop) for learner, start, stop in self.rows}
        if name not in spans:
            return self
        start, stop = spans[name]
        return jax.tree.map(lambda x: x[start:stop], self.replace(rows=()))


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
        batch: LearnerBatch,
        key: jax.Array | None = None,
    ) -> tuple[dict[str, D4PGState], dict[str, jax.Array]]:
        """Updates every learner on its rows of the batch (learners with
        ``bc_target="imitation"`` regress onto the imitation learner's actions on those
        rows, taken before its update).

        Args:
            states: name -> learner state.
            batch: the shared transitions, goals and per-learner weights.
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
            rows = batch.for_learner(name)
            new_states[name], learner_metrics = learner.update(
                states[name],
                (rows.own_transitions or {}).get(name, rows.transitions),
                rows.goal if conditioned else None,
                rows.next_goal if conditioned else None,
                (rows.weights or {}).get(name),
                learner_key,
                (rows.reaches_reward or {}).get(name),
                self._teacher_actions(states, rows, learner.config),
                rows.holding,
                rows.pausing,
            )
            metrics.update({f"train/{name}/{k}": v for k, v in learner_metrics.items()})
        return new_states, metrics

    def _teacher_actions(
        self, states: Mapping[str, D4PGState], batch: LearnerBatch, config: D4PGConfig
    ):
        """The imitation learner's greedy actions on the batch's observations and goals,
        when the learner of ``config`` distils them (``bc_target="imitation"``); else None."""
        if not (config.bc_weight and config.bc_target == "imitation"):
            return None
        if "imitation" not in self.learners or batch.goal is None:
            raise ValueError("bc_target='imitation' needs an imitation learner and goals")
        teacher = self.learners["imitation"]
        return teacher.act(states["imitation"].actor_params, batch.transitions.obs, batch.goal)
