"""One learner's networks evaluated from a single critic-encoder pass
(``NetworkConfig.shared_torso``, as DrQ: Yarats et al. 2021).

The critics' encoder is trained by the critic loss alone; the actor's head reads its output
without a gradient, and the twin critics differ in their heads. The actor keeps encoder
parameters of its own only so that ``Actor.apply`` (acting, evaluation) is unchanged:
``tie`` makes them a copy of the critics' after every update.
"""

import jax
import jax.numpy as jnp

from mjx_metamimic.networks import NetworkConfig
from mjx_metamimic.networks.heads import (
    AUX_FEATURES,
    ActorHead,
    Encoder,
    FeaturePredictor,
    Observation,
    critic_heads,
    split_encoder,
    with_encoder,
)


class SharedTorso:
    """Pure functions over an ``Actor``'s and a shared ``CriticEnsemble``'s variables.

    Args:
        network: The learner's network (``shared_torso`` set).
        action_dim: Action size A.
        num_outputs: Outputs per critic (atoms, or 1 for a scalar critic).
        num_critics: Critics sharing the encoder.
    """

    def __init__(self, network: NetworkConfig, action_dim: int, num_outputs: int, num_critics: int):
        self.encoder = Encoder(network)
        self.policy_head = ActorHead(network, action_dim)
        self.critic_heads = critic_heads(num_critics)(network, num_outputs)

    def embed(self, critic_variables: dict, obs: Observation, goal: Observation | None):
        """The critics' encoder output: (..., E)."""
        return self.encoder.apply(split_encoder(critic_variables)[0], obs, goal)

    def policy(self, actor_variables: dict, embedding: jax.Array) -> jax.Array:
        """The actor's action from an embedding: (..., A)."""
        return self.policy_head.apply(split_encoder(actor_variables)[1], embedding)

    def critics(self, critic_variables: dict, embedding: jax.Array, action: jax.Array):
        """Every critic's outputs from an embedding: (..., N, K)."""
        return self.critic_heads.apply(
            {"params": critic_variables["params"]["critics"]}, embedding, action
        )

    @staticmethod
    def feature_errors(
        critic_variables: dict, embedding: jax.Array, obs: Observation, goal: Observation | None
    ) -> jax.Array:
        """The ``FeaturePredictor``'s squared errors per sample from an embedding: (...,)."""
        variables = {c: t[AUX_FEATURES] for c, t in critic_variables.items() if AUX_FEATURES in t}
        prediction, target = FeaturePredictor().apply(variables, embedding, obs, goal)
        return jnp.mean(jnp.square(prediction - target), axis=-1)

    @staticmethod
    def tie(actor_variables: dict, critic_variables: dict) -> dict:
        """``actor_variables`` with the critics' encoder in place of its own."""
        return with_encoder(actor_variables, split_encoder(critic_variables)[0])
