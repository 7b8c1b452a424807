"""D4PG (Barth-Maron et al. 2018): deterministic policy, categorical critic, n-step targets.

One learner trains on one reward stream of the shared replay's ``NStepBatch``. Everything
is pure: ``init`` builds a ``D4PGState``; ``update(state, batch)`` returns the next state
and metrics; ``act(params, obs, goal)`` is the policy for actors (noise is the caller's).

Options from TD3 (Fujimoto et al. 2018), off by default: a scalar critic instead of the
categorical one, twin critics whose smaller target value is bootstrapped from (clipped
double Q), and clipped Gaussian noise on the target action (target policy smoothing).
"""

import dataclasses
from typing import Any, Literal

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
import rlax

from mjx_metamimic.networks import Actor, CriticEnsemble, NetworkConfig
from mjx_metamimic.networks.heads import Observation
from mjx_metamimic.replay import NStepBatch


@dataclasses.dataclass(frozen=True)
class D4PGConfig:
    """Hyper-parameters of one D4PG learner."""

    stream: str = "task"
    """Reward stream of the replay this learner maximises."""
    goal_conditioned: bool = False
    """Whether the actor and critic also see a goal observation."""
    network: NetworkConfig = NetworkConfig()
    """Actor and critic architecture (same form, separate parameters)."""
    critic: Literal["categorical", "scalar"] = "categorical"
    """Critic form: a categorical distribution over ``num_atoms`` atoms in [v_min, v_max]
    (D4PG, cross-entropy loss), or a scalar value (squared TD error)."""
    num_critics: int = 1
    """Independent critics; with 2 or more each bootstraps from the target critic whose
    value is smallest (clipped double Q); the policy follows the first."""
    target_noise_std: float = 0.0
    """Std of the Gaussian noise added to the target policy's action (0: none)."""
    target_noise_clip: float = 0.5
    """Bound on that noise, per action dimension."""
    num_atoms: int = 51
    """Atoms of the critic's categorical support."""
    v_min: float = -150.0
    """Lowest value of the critic's support."""
    v_max: float = 150.0
    """Highest value of the critic's support."""
    actor_lr: float = 1e-4
    """Adam learning rate of the actor."""
    critic_lr: float = 1e-4
    """Adam learning rate of the critic."""
    max_grad_norm: float = 40.0
    """Global gradient-norm clip applied before Adam (each network separately)."""
    dqda_clip: float | None = 1.0
    """Clip on the L2 norm of dQ/da in the policy gradient; None disables it."""
    target_update: Literal["polyak", "periodic"] = "polyak"
    """How target networks follow the online ones: every update by Polyak averaging, or a
    full copy every ``target_period`` updates."""
    target_tau: float = 0.005
    """Polyak step size (target <- (1 - tau) target + tau online)."""
    target_period: int = 100
    """Updates between target copies for ``periodic``."""
    n_step: int = 0
    """Steps of this learner's n-step return (0: the replay's ``n_step``). A sparse reward
    far from most states (the task's stack) travels back n steps per update instead of one."""
    episode_ends: Literal["terminal", "truncation"] = "terminal"
    """What the end of a stored episode means to this learner: "terminal" bootstraps 0 past
    it; "truncation" leaves out of its losses the samples whose n-step window reaches an
    episode's end (the next state is never stored, so there is nothing to bootstrap from).
    For the task stream every end (drifting from the demo, the demo's end, a time limit) is
    a truncation: bootstrapping 0 there makes a held stack worth its remaining steps, not
    ~1 / (1 - gamma)."""
    bc_weight: float = 0.0
    """Weight of a squared-error regression of the actor onto the replay's actions (per
    action dimension, as the DPG loss): the task actor takes up what the imitation actors
    did - their grasps and stacks - which following dQ/da alone reaches slowly. The
    replay's actions are the actors' own, never the demos'. 0 turns it off."""
    bc_filter: Literal["advantage", "none"] = "advantage"
    """Which samples the regression uses: "advantage" those whose action the critic values
    above the actor's own (CRR's binary filter, Wang et al. 2020), "none" every sample
    (TD3+BC, Fujimoto & Gu 2021)."""

    def __post_init__(self):
        if self.critic not in ("categorical", "scalar"):
            raise ValueError(f"critic must be 'categorical' or 'scalar', got {self.critic!r}")
        if self.num_critics < 1:
            raise ValueError(f"num_critics must be >= 1, got {self.num_critics}")
        if self.target_noise_std < 0 or self.target_noise_clip < 0:
            raise ValueError(
                "target_noise_std and target_noise_clip must be >= 0, got "
                f"{self.target_noise_std} and {self.target_noise_clip}"
            )
        if self.n_step < 0 or self.bc_weight < 0:
            raise ValueError(
                f"n_step and bc_weight must be >= 0, got {self.n_step} and {self.bc_weight}"
            )
        if self.bc_filter not in ("advantage", "none"):
            raise ValueError(f"bc_filter must be 'advantage' or 'none', got {self.bc_filter!r}")
        if self.episode_ends not in ("terminal", "truncation"):
            raise ValueError(
                f"episode_ends must be 'terminal' or 'truncation', got {self.episode_ends!r}"
            )
        if self.critic == "categorical" and not (self.num_atoms >= 2 and self.v_max > self.v_min):
            raise ValueError(
                "a categorical critic needs num_atoms >= 2 and v_max > v_min, got "
                f"{self.num_atoms}, [{self.v_min}, {self.v_max}]"
            )


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
        self.critic = CriticEnsemble(config.network, outputs, config.num_critics)
        self.atoms = jnp.asarray(
            np.linspace(config.v_min, config.v_max, config.num_atoms), jnp.float32
        )  # (K,)
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

    def _target_action(self, state: D4PGState, next_obs, next_goal, key) -> jax.Array:
        """The target policy's action at the bootstrap step, with clipped smoothing noise."""
        action = self.actor.apply(state.target_actor_params, next_obs, next_goal)
        if self.config.target_noise_std == 0:
            return action
        if key is None:
            raise ValueError("target_noise_std > 0 needs a PRNG key in update()")
        noise = self.config.target_noise_std * jax.random.normal(key, action.shape)
        clip = self.config.target_noise_clip
        return jnp.clip(action + jnp.clip(noise, -clip, clip), -1.0, 1.0)

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
    ) -> tuple[D4PGState, dict[str, jax.Array]]:
        """One actor and critic gradient step on ``batch`` (reward stream ``config.stream``).

        Args:
            state: Learner state.
            batch: n-step transitions, leading batch axis B.
            goal: Goals at t (leaves (B, ...)), iff goal-conditioned.
            next_goal: Goals at the bootstrap step, iff goal-conditioned.
            weights: Optional (B,) non-negative per-sample weights of the losses and the
                mean metrics (weight 0: the sample has no effect); None averages uniformly.
            key: PRNG key of the target-action noise (needed iff ``target_noise_std`` > 0).

        Returns:
            The next state and scalar metrics (un-namespaced: critic_loss, actor_loss, q_mean,
            target_q_mean, return_mean, critic_grad_norm, actor_grad_norm, dqda_norm, and
            bc_share: the share of samples the actor regressed onto, 0 when off).
        """
        self._check_goal(goal)
        stream = self.config.stream
        if self.config.episode_ends == "truncation":
            if batch.ended is None:
                raise ValueError("episode_ends='truncation' needs NStepBatch.ended")
            continuing = 1.0 - batch.ended
            weights = continuing if weights is None else weights * continuing
        mean = lambda x: self._batch_mean(x, weights)
        returns, discounts = batch.returns[stream], batch.discounts[stream]  # (B,), (B,)

        next_action = self._target_action(state, batch.next_obs, next_goal, key)
        target_outputs = self.critic.apply(
            state.target_critic_params, batch.next_obs, next_goal, next_action
        )  # (B, N, K)

        def critic_loss_fn(critic_params):
            outputs = self.critic.apply(critic_params, batch.obs, goal, batch.action)
            loss = self.critic_losses(outputs, target_outputs, returns, discounts)
            return mean(loss), self.values(outputs)[:, 0]

        def actor_loss_fn(actor_params):
            actions = self.actor.apply(actor_params, batch.obs, goal)  # (B, A)
            # Per-sample dQ/da: samples are independent (no batch statistics anywhere).
            q_of = lambda a: self.q_mean(state.critic_params, batch.obs, goal, a)  # (B,)
            total_q = lambda a: (jnp.sum(q_of(a)), q_of(a))
            dqda, q_policy = jax.grad(total_q, has_aux=True)(actions)  # (B, A), (B,)
            loss = jax.vmap(rlax.dpg_loss, in_axes=(0, 0, None))(
                actions, dqda, self.config.dqda_clip
            )
            better = jnp.zeros_like(q_policy)
            if self.config.bc_weight:
                better = jnp.ones_like(q_policy)
                if self.config.bc_filter == "advantage":
                    q_data = q_of(batch.action)
                    better = jax.lax.stop_gradient((q_data > q_policy).astype(jnp.float32))
                # per sample and action dimension, as the DPG loss is: (B, A)
                regression = better[:, None] * jnp.square(actions - batch.action)
                loss = loss + self.config.bc_weight * regression
            return mean(loss), (dqda, better)

        (critic_loss, q), critic_grads = jax.value_and_grad(critic_loss_fn, has_aux=True)(
            state.critic_params
        )
        (actor_loss, (dqda, better)), actor_grads = jax.value_and_grad(actor_loss_fn, has_aux=True)(
            state.actor_params
        )
        critic_grads, actor_grads = self._across_axis((critic_grads, actor_grads))
        critic_updates, critic_opt_state = self.critic_optimizer.update(
            critic_grads, state.critic_opt_state
        )
        actor_updates, actor_opt_state = self.actor_optimizer.update(
            actor_grads, state.actor_opt_state
        )
        critic_params = optax.apply_updates(state.critic_params, critic_updates)
        actor_params = optax.apply_updates(state.actor_params, actor_updates)
        steps = state.steps + 1
        target_actor, target_critic = follow_targets(
            self.config,
            (actor_params, critic_params),
            (state.target_actor_params, state.target_critic_params),
            steps,
        )
        metrics = self._across_axis(
            {
                "critic_loss": critic_loss,
                "actor_loss": actor_loss,
                "q_mean": mean(q),
                "target_q_mean": mean(jnp.min(self.values(target_outputs), axis=-1)),
                "return_mean": mean(returns),
                "dqda_norm": mean(jnp.linalg.norm(dqda, axis=-1)),
                "bc_share": mean(better),
            }
        )
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
