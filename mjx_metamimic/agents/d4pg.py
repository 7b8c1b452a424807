"""D4PG (Barth-Maron et al. 2018): deterministic policy, categorical critic, n-step targets.

One learner trains on one reward stream of the shared replay's ``NStepBatch``. Everything
is pure: ``init`` builds a ``D4PGState``; ``update(state, batch)`` returns the next state
and metrics; ``act(params, obs, goal)`` is the policy for actors (noise is the caller's).

Options from TD3 (Fujimoto et al. 2018), off by default: a scalar critic instead of the
categorical one, twin critics whose smaller target value is bootstrapped from (clipped
double Q), and clipped Gaussian noise on the target action (target policy smoothing).
"""

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
import rlax

from mjx_metamimic.agents.augment import random_shift
from mjx_metamimic.agents.d4pg_config import D4PGConfig
from mjx_metamimic.agents.shared_torso import SharedTorso
from mjx_metamimic.networks import Actor, CriticEnsemble
from mjx_metamimic.networks.heads import Observation
from mjx_metamimic.replay import NStepBatch


@flax.struct.dataclass
class D4PGState:
    """Parameters, targets and optimiser states of one learner."""

    actor_params: Any
    critic_params: Any
    target_actor_params: Any
    target_critic_params: Any
    actor_opt_state: Any
    critic_opt_state: Any
    steps: jax.Array  # () int32, updates applied so far


def categorical_critic_loss(
    logits: jax.Array,
    atoms: jax.Array,
    returns: jax.Array,
    discounts: jax.Array,
    target_logits: jax.Array,
) -> jax.Array:
    """Per-sample categorical TD loss: cross-entropy to the projected target distribution.

    Args:
        logits: (B, K) online critic logits at (o_t, a_t).
        atoms: (K,) support.
        returns: (B,) n-step returns.
        discounts: (B,) bootstrap discounts.
        target_logits: (B, K) target critic logits at the bootstrap step.

    Returns:
        (B,) losses (target gradients stopped).
    """
    td = jax.vmap(rlax.categorical_td_learning, in_axes=(None, 0, 0, 0, None, 0))
    return td(atoms, logits, returns, discounts, atoms, target_logits)


def follow_targets(config: D4PGConfig, online, targets, steps: jax.Array):
    """Moves target parameters towards the online ones.

    Args:
        config: ``target_update`` ("polyak" or "periodic"), ``target_tau``, ``target_period``.
        online: Online parameters (any pytree).
        targets: Target parameters, same structure.
        steps: () int32 updates applied so far, counting the current one.

    Returns:
        New targets: (1 - tau) targets + tau online for polyak; for periodic, a copy of
        ``online`` when ``steps`` is a multiple of ``target_period``, else ``targets``.
    """
    if config.target_update == "polyak":
        return optax.incremental_update(online, targets, config.target_tau)
    if config.target_update == "periodic":
        return optax.periodic_update(online, targets, steps, config.target_period)
    raise ValueError(f"unknown target_update {config.target_update!r}")


def weighted_mean(x: jax.Array, weights: jax.Array | None) -> jax.Array:
    """The mean of ``x`` (B, ...), or the mean with sample b weighted by ``weights[b]``
    (B,) (0 when all weights are 0)."""
    if weights is None:
        return jnp.mean(x)
    w = weights.reshape(weights.shape + (1,) * (x.ndim - 1))
    per_sample = x.size // x.shape[0]
    return jnp.sum(w * x) / jnp.maximum(jnp.sum(weights) * per_sample, 1e-8)


def _optimizer(learning_rate: float, max_grad_norm: float) -> optax.GradientTransformation:
    """Clipped Adam whose step is skipped (and counted) when a gradient is NaN or infinite.

    Skipped steps never reach the parameters: the run's trainer stops a run after
    ``run.max_nonfinite_updates`` in a row (``nonfinite_counts``) instead of ever letting
    optax apply one (its limit here is never reached)."""
    clipped_adam = optax.chain(optax.clip_by_global_norm(max_grad_norm), optax.adam(learning_rate))
    return optax.apply_if_finite(clipped_adam, max_consecutive_errors=2**30)


def nonfinite_counts(state: "D4PGState") -> dict[str, jax.Array]:
    """How many of a learner's gradient steps were skipped for a NaN or infinite gradient:
    ``in_a_row`` (the latest, actor or critic) and ``total`` (actor and critic steps)."""
    actor, critic = state.actor_opt_state, state.critic_opt_state
    return {
        "in_a_row": jnp.maximum(actor.notfinite_count, critic.notfinite_count),
        "total": actor.total_notfinite + critic.total_notfinite,
    }


class D4PG:
    """Pure functions of one D4PG learner (the object itself holds only static config).

    Args:
        config: Learner hyper-parameters.
        action_dim: Action size A.
        axis_name: a mapped axis (``shard_map``/``vmap``) whose members each update on their
            share of one batch: losses and metrics are means over the whole batch and the
            gradients are summed across the axis (None: no such axis).
    """

    def __init__(self, config: D4PGConfig, action_dim: int, axis_name: str | None = None):
        self.config = config
        self.axis_name = axis_name
        self.actor = Actor(config.network, action_dim)
        outputs = config.num_atoms if config.critic == "categorical" else 1
        if config.aux_features_weight and not config.network.shared_torso:
            raise ValueError("aux_features_weight > 0 needs network.shared_torso")
        self.critic = CriticEnsemble(
            config.network, outputs, config.num_critics, config.aux_features_weight > 0
        )
        self.shared = (
            SharedTorso(config.network, action_dim, outputs, config.num_critics)
            if config.network.shared_torso
            else None
        )
        self.atoms = jnp.asarray(
            np.linspace(config.v_min, config.v_max, config.num_atoms), jnp.float32
        )  # (K,)
        for name in ("bc_dim_scales", "bc_held_dim_scales", "bc_pause_dim_scales"):
            scales = getattr(config, name)
            if scales and len(scales) != action_dim:
                raise ValueError(f"{name} has {len(scales)} factors for {action_dim} actions")
        # the regression's factor per action dimension, without and with a block held: (A,)
        self.bc_dims = jnp.asarray(config.bc_dim_scales or (1.0,) * action_dim, jnp.float32)
        self.bc_held_dims = jnp.asarray(
            config.bc_held_dim_scales or config.bc_dim_scales or (1.0,) * action_dim,
            jnp.float32,
        )
        self.bc_pause_dims = jnp.asarray(
            config.bc_pause_dim_scales or (1.0,) * action_dim, jnp.float32
        )
        self.bc_weight = (
            optax.linear_schedule(config.bc_weight, config.bc_weight_final, config.bc_decay_updates)
            if config.bc_weight_final is not None
            else optax.constant_schedule(config.bc_weight)
        )
        self.actor_optimizer = _optimizer(config.actor_lr, config.max_grad_norm)
        self.critic_optimizer = _optimizer(config.critic_lr, config.max_grad_norm)

    def _check_goal(self, goal: Observation | None) -> None:
        if self.config.goal_conditioned != (goal is not None):
            expected = "a goal" if self.config.goal_conditioned else "no goal"
            raise ValueError(f"learner {self.config.stream!r} expects {expected}")

    def init(self, key: jax.Array, obs: Observation, goal: Observation | None = None) -> D4PGState:
        """Initialises parameters from example inputs (any leading axes, e.g. one step).

        Args:
            key: PRNG key.
            obs: Example observation.
            goal: Example goal, required iff the learner is goal-conditioned.
        """
        self._check_goal(goal)
        actor_key, critic_key = jax.random.split(key)
        actor_params = self.actor.init(actor_key, obs, goal)
        action = self.actor.apply(actor_params, obs, goal)
        critic_params = self.critic.init(critic_key, obs, goal, action)
        if self.shared is not None:
            actor_params = self.shared.tie(actor_params, critic_params)
        return D4PGState(
            actor_params=actor_params,
            critic_params=critic_params,
            target_actor_params=actor_params,
            target_critic_params=critic_params,
            actor_opt_state=self.actor_optimizer.init(actor_params),
            critic_opt_state=self.critic_optimizer.init(critic_params),
            steps=jnp.zeros((), jnp.int32),
        )

    def act(self, actor_params, obs: Observation, goal: Observation | None = None) -> jax.Array:
        """Greedy action in [-1, 1]: (..., A) for observations with leading axes (...)."""
        return self.actor.apply(actor_params, obs, goal)

    def values(self, outputs: jax.Array) -> jax.Array:
        """Critic outputs (..., N, K) -> values (..., N): the categorical mean, or the
        scalar itself."""
        if self.config.critic == "categorical":
            return jax.nn.softmax(outputs) @ self.atoms
        return outputs[..., 0]

    def q_mean(
        self, critic_params, obs: Observation, goal: Observation | None, action: jax.Array
    ) -> jax.Array:
        """Value of the first critic (the policy's): (...,) float32."""
        return self.values(self.critic.apply(critic_params, obs, goal, action))[..., 0]

    def _smoothed(self, action: jax.Array, key) -> jax.Array:
        """The target policy's action with clipped smoothing noise (TD3)."""
        if self.config.target_noise_std == 0:
            return action
        if key is None:
            raise ValueError("target_noise_std > 0 needs a PRNG key in update()")
        noise = self.config.target_noise_std * jax.random.normal(key, action.shape)
        clip = self.config.target_noise_clip
        return jnp.clip(action + jnp.clip(noise, -clip, clip), -1.0, 1.0)

    def _target_outputs(self, state: D4PGState, next_obs, next_goal, key) -> jax.Array:
        """Target critics' outputs at the bootstrap step for the smoothed target action."""
        if self.shared is None:
            action = self.actor.apply(state.target_actor_params, next_obs, next_goal)
            action = self._smoothed(action, key)
            return self.critic.apply(state.target_critic_params, next_obs, next_goal, action)
        embedding = self.shared.embed(state.target_critic_params, next_obs, next_goal)
        action = self._smoothed(self.shared.policy(state.target_actor_params, embedding), key)
        return self.shared.critics(state.target_critic_params, embedding, action)

    def critic_losses(self, outputs, target_outputs, returns, discounts) -> jax.Array:
        """Per-sample TD losses summed over the critics: (B,).

        Every critic regresses towards the target critic with the smallest value per sample.
        """
        target_values = self.values(target_outputs)  # (B, N)
        lowest = jnp.argmin(target_values, axis=-1)[:, None, None]  # (B, 1, 1)
        target = jnp.take_along_axis(target_outputs, lowest, axis=1)[:, 0]  # (B, K)
        if self.config.critic == "categorical":
            per_critic = jax.vmap(
                categorical_critic_loss, in_axes=(1, None, None, None, None), out_axes=1
            )(outputs, self.atoms, returns, discounts, target)  # (B, N)
        else:
            bootstrap = jax.lax.stop_gradient(returns + discounts * target[:, 0])  # (B,)
            per_critic = 0.5 * jnp.square(outputs[..., 0] - bootstrap[:, None])  # (B, N)
        return jnp.sum(per_critic, axis=-1)

    def _batch_mean(self, x: jax.Array, weights: jax.Array | None) -> jax.Array:
        """``weighted_mean`` of ``x`` over the whole batch; along ``axis_name``, this member's
        term of it (the terms sum to the whole batch's mean)."""
        if self.axis_name is None:
            return weighted_mean(x, weights)
        if weights is None:
            return jnp.mean(x) / jax.lax.psum(1, self.axis_name)
        w = weights.reshape(weights.shape + (1,) * (x.ndim - 1))
        per_sample = x.size // x.shape[0]
        total = jax.lax.psum(jnp.sum(weights), self.axis_name) * per_sample
        return jnp.sum(w * x) / jnp.maximum(total, 1e-8)

    def _across_axis(self, tree):
        """Sums the members' terms (``_batch_mean``s, gradients) along ``axis_name``."""
        return tree if self.axis_name is None else jax.lax.psum(tree, self.axis_name)

    def update(
        self,
        state: D4PGState,
        batch: NStepBatch,
        goal: Observation | None = None,
        next_goal: Observation | None = None,
        weights: jax.Array | None = None,
        key: jax.Array | None = None,
        reaches_reward: jax.Array | None = None,
        teacher_actions: jax.Array | None = None,
        holding: jax.Array | None = None,
        pausing: jax.Array | None = None,
    ) -> tuple[D4PGState, dict[str, jax.Array]]:
        """One actor and critic gradient step on ``batch`` (reward stream ``config.stream``).

        Args:
            state: Learner state.
            batch: n-step transitions, leading batch axis B.
            goal: Goals at t (leaves (B, ...)), iff goal-conditioned.
            next_goal: Goals at the bootstrap step, iff goal-conditioned.
            weights: Optional (B,) non-negative per-sample weights of the losses and the
                mean metrics (weight 0: the sample has no effect); None averages uniformly.
            key: PRNG key of the target-action noise and the frames' random shifts
                (needed iff ``target_noise_std`` > 0 or ``random_shift`` > 0).
            reaches_reward: (B,) bool, whether each sample's episode reaches a positive
                reward of this stream within ``success_horizon`` steps (needed iff
                ``bc_filter`` is "success" or "success_advantage": the samples the actor
                may regress onto).
            teacher_actions: (B, A) the regression's targets when ``bc_target`` is
                "imitation" (needed then; the imitation learner's actions).
            holding: (B,) bool, whether the gripper holds a block at each sample's step
                (needed iff ``bc_held_dim_scales`` is set: its factors apply there).
            pausing: (B,) bool, whether each sample's demo held its arm still at that step
                (needed iff ``bc_pause_dim_scales`` is set: its factors apply there).

        Returns:
            The next state and scalar metrics (un-namespaced: critic_loss, actor_loss, q_mean,
            target_q_mean, return_mean, critic_grad_norm, actor_grad_norm, dqda_norm,
            bc_share: the share of samples the actor regressed onto, bc_rms: the actor's
            RMS distance (per regressed action dimension) from its targets on those,
            bc_weight: the regression's weight at this update, bc_held_share: the share of
            samples with a block held (with ``bc_held_dim_scales``), bc_pause_share: the
            share of samples in a demo's pause (with ``bc_pause_dim_scales``),
            aux_features_loss: the ``FeaturePredictor``'s error; each 0 when its loss is
            off).
        """
        self._check_goal(goal)
        if self.config.regresses_by_success and reaches_reward is None:
            raise ValueError(
                f"bc_filter={self.config.bc_filter!r} needs reaches_reward in update()"
            )
        bc_actions = batch.action
        if self.config.bc_weight and self.config.bc_target == "imitation":
            if teacher_actions is None:
                raise ValueError("bc_target='imitation' needs teacher_actions in update()")
            bc_actions = jax.lax.stop_gradient(teacher_actions)
        bc_weight = self.bc_weight(state.steps)
        bc_dims = self.bc_dims  # (A,) or, with a block held on some samples, (B, A)
        if self.config.regresses_by_held:
            if holding is None:
                raise ValueError("bc_held_dim_scales needs holding in update()")
            bc_dims = jnp.where(holding[:, None], self.bc_held_dims, self.bc_dims)
        if self.config.regresses_by_pause:
            if pausing is None:
                raise ValueError("bc_pause_dim_scales needs pausing in update()")
            bc_dims = bc_dims * jnp.where(pausing[:, None], self.bc_pause_dims, 1.0)
        stream = self.config.stream
        if self.config.episode_ends == "truncation":
            if batch.ended is None:
                raise ValueError("episode_ends='truncation' needs NStepBatch.ended")
            continuing = 1.0 - batch.ended
            weights = continuing if weights is None else weights * continuing
        mean = lambda x: self._batch_mean(x, weights)
        returns, discounts = batch.returns[stream], batch.discounts[stream]  # (B,), (B,)
        obs, next_obs = batch.obs, batch.next_obs
        if self.config.random_shift:
            if key is None:
                raise ValueError("random_shift > 0 needs a PRNG key in update()")
            key, key_now, key_next = jax.random.split(key, 3)
            obs, goal = random_shift(key_now, self.config.random_shift, obs, goal)
            next_obs, next_goal = random_shift(
                key_next, self.config.random_shift, next_obs, next_goal
            )

        target_outputs = self._target_outputs(state, next_obs, next_goal, key)  # (B, N, K)

        def critic_loss_fn(critic_params):
            if self.shared is None:
                embedding = None
                outputs = self.critic.apply(critic_params, obs, goal, batch.action)
            else:
                embedding = self.shared.embed(critic_params, obs, goal)
                outputs = self.shared.critics(critic_params, embedding, batch.action)
            loss = mean(self.critic_losses(outputs, target_outputs, returns, discounts))
            aux_loss = jnp.zeros(())
            if self.config.aux_features_weight:
                aux_loss = mean(self.shared.feature_errors(critic_params, embedding, obs, goal))
            total = loss + self.config.aux_features_weight * aux_loss
            return total, (loss, aux_loss, self.values(outputs)[:, 0], embedding)

        (_, (critic_loss, aux_loss, q, embedding)), critic_grads = jax.value_and_grad(
            critic_loss_fn, has_aux=True
        )(state.critic_params)
        # With a shared torso the actor reads the critics' encoder output, without a gradient.
        embedding = jax.lax.stop_gradient(embedding)

        def actor_loss_fn(actor_params):
            # Per-sample dQ/da: samples are independent (no batch statistics anywhere).
            if self.shared is None:
                actions = self.actor.apply(actor_params, obs, goal)  # (B, A)
                q_of = lambda a: self.q_mean(state.critic_params, obs, goal, a)  # (B,)
            else:
                actions = self.shared.policy(actor_params, embedding)
                q_of = lambda a: self.values(
                    self.shared.critics(state.critic_params, embedding, a)
                )[..., 0]
            total_q = lambda a: (jnp.sum(q_of(a)), q_of(a))
            dqda, q_policy = jax.grad(total_q, has_aux=True)(actions)  # (B, A), (B,)
            loss = jax.vmap(rlax.dpg_loss, in_axes=(0, 0, None))(
                actions, dqda, self.config.dqda_clip
            )
            better = jnp.zeros_like(q_policy)
            squared = jnp.square(actions - bc_actions)  # (B, A)
            if self.config.bc_weight:
                better = jnp.ones_like(q_policy)
                if self.config.bc_filter in ("advantage", "success_advantage"):
                    q_data = q_of(bc_actions)
                    better = jax.lax.stop_gradient((q_data > q_policy).astype(jnp.float32))
                if self.config.regresses_by_success:
                    better = better * reaches_reward.astype(jnp.float32)
                # per sample and action dimension, as the DPG loss is: (B, A)
                regression = better[:, None] * squared * bc_dims
                loss = loss + bc_weight * regression
            # the unscaled error on the dimensions the regression acts on
            regressed = (bc_dims > 0).astype(jnp.float32)
            per_dim = jnp.sum(squared * regressed, -1) / jnp.maximum(jnp.sum(regressed, -1), 1.0)
            return mean(loss), (dqda, better, per_dim)

        (actor_loss, (dqda, better, squared_error)), actor_grads = jax.value_and_grad(
            actor_loss_fn, has_aux=True
        )(state.actor_params)
        critic_grads, actor_grads = self._across_axis((critic_grads, actor_grads))
        critic_updates, critic_opt_state = self.critic_optimizer.update(
            critic_grads, state.critic_opt_state
        )
        actor_updates, actor_opt_state = self.actor_optimizer.update(
            actor_grads, state.actor_opt_state
        )
        critic_params = optax.apply_updates(state.critic_params, critic_updates)
        actor_params = optax.apply_updates(state.actor_params, actor_updates)
        if self.shared is not None:
            actor_params = self.shared.tie(actor_params, critic_params)
        steps = state.steps + 1
        target_actor, target_critic = follow_targets(
            self.config,
            (actor_params, critic_params),
            (state.target_actor_params, state.target_critic_params),
            steps,
        )
        if self.shared is not None:
            target_actor = self.shared.tie(target_actor, target_critic)
        metrics = self._across_axis(
            {
                "critic_loss": critic_loss,
                "actor_loss": actor_loss,
                "q_mean": mean(q),
                "target_q_mean": mean(jnp.min(self.values(target_outputs), axis=-1)),
                "return_mean": mean(returns),
                "dqda_norm": mean(jnp.linalg.norm(dqda, axis=-1)),
                "bc_share": mean(better),
                "bc_squared_error": mean(better * squared_error),
                "bc_weight": bc_weight,
                "bc_held_share": mean(holding) if self.config.regresses_by_held else jnp.zeros(()),
                "bc_pause_share": (
                    mean(pausing) if self.config.regresses_by_pause else jnp.zeros(())
                ),
                "aux_features_loss": aux_loss,
            }
        )
        share = metrics["bc_share"]
        bc_squared = metrics.pop("bc_squared_error")
        metrics["bc_rms"] = jnp.sqrt(bc_squared / jnp.maximum(share, 1e-8)) * (share > 0)
        metrics["critic_grad_norm"] = optax.tree.norm(critic_grads)
        metrics["actor_grad_norm"] = optax.tree.norm(actor_grads)
        new_state = state.replace(
            actor_params=actor_params,
            critic_params=critic_params,
            target_actor_params=target_actor,
            target_critic_params=target_critic,
            actor_opt_state=actor_opt_state,
            critic_opt_state=critic_opt_state,
            steps=steps,
        )
        return new_state, metrics
