"""Observation encoder, deterministic tanh policy and critics (categorical or scalar, single
or ensembles, with their own encoders or one shared), and their heads without the encoder.

Observations (and goals) are dicts: ``pixels`` (..., H, W, 3) uint8, ``proprio`` (..., P)
float32 and optionally ``features`` (..., F) float32. Any number of leading axes is accepted
(none included), so the modules can be applied to batches or vmapped over single samples.
"""

import dataclasses
from collections.abc import Mapping

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp

from mjx_metamimic.networks.config import PRESETS, NetworkConfig
from mjx_metamimic.networks.torso import LayerNormMLP, ResNetTorso

Observation = Mapping[str, jax.Array]
INPUT_SCALES = "input_scales"  # variable collection of the fixed input standardisation
INPUT_CLIP = 5.0  # bound on standardised inputs


@flax.struct.dataclass
class InputScales:
    """Standardisation of the vector inputs: (v - shift) / scale for observations and
    goals, (goal - obs) / difference_scale for their difference; each (V,) float32."""

    shift: jax.Array
    scale: jax.Array
    difference_scale: jax.Array


def set_input_scales(variables: dict, scales: InputScales) -> dict:
    """Returns ``variables`` (of an Actor or Critic) with ``scales`` in every encoder."""
    # Proprio comes first in every encoder's vectors, so an encoder that reads fewer parts
    # (a pixel actor beside a features critic) takes the leading entries.
    collection = jax.tree_util.tree_map_with_path(
        lambda path, leaf: getattr(scales, path[-1].key)[: leaf.shape[-1]].astype(leaf.dtype),
        variables[INPUT_SCALES],
    )
    return {**variables, INPUT_SCALES: collection}


def observation_vectors(obs: Observation) -> jax.Array:
    """Concatenates the vector parts of an observation: (..., P [+ F]) float32."""
    parts = [obs["proprio"]]
    if "features" in obs:
        parts.append(obs["features"])
    return jnp.concatenate([p.astype(jnp.float32) for p in parts], axis=-1)


def without_features(obs: Observation) -> Observation:
    """``obs`` without its privileged ``features`` part."""
    return {k: v for k, v in obs.items() if k != "features"}


def critic_network(config: NetworkConfig) -> NetworkConfig:
    """The network the critics use: ``config``, or its features MLP when
    ``config.critic_inputs`` is "features"."""
    if config.critic_inputs == "features":
        return dataclasses.replace(config, inputs="features")
    return config


class Encoder(nn.Module):
    """Maps an observation (and an optional goal) to an embedding.

    The vector parts enter as [obs, goal, goal - obs] (just obs without a goal). With
    ``NetworkConfig.standardize_inputs`` each is standardised by constants in the
    ``input_scales`` variable collection (identity at init; ``set_input_scales`` fills them
    in, e.g. from demo statistics; no gradient reaches them) and clipped to
    +-``INPUT_CLIP``, so states far from the demos' (an arm that drifted away) stay in range.
    Pixels: the observation and goal frames are channel-stacked, scaled to [0, 1], passed
    through the residual torso and ``torso_hidden`` dense layers, then joined with the
    vectors. Features: ``torso_hidden`` dense layers over the vectors alone; proprio: the
    same over the proprio vectors alone.
    """

    config: NetworkConfig

    @nn.compact
    def __call__(self, obs: Observation, goal: Observation | None = None) -> jax.Array:
        """Returns the embedding: (..., E) float32, E = torso_hidden[-1] (+ the vector
        inputs' size for pixels)."""
        if not self.config.reads_features:
            obs = without_features(obs)
            goal = None if goal is None else without_features(goal)
        vectors = observation_vectors(obs)  # (..., V)
        batch_shape = vectors.shape[:-1]
        goal_vectors = None if goal is None else observation_vectors(goal)
        difference = None if goal is None else goal_vectors - vectors
        if self.config.standardize_inputs:
            size = vectors.shape[-1:]
            shift, scale, step = (
                jax.lax.stop_gradient(self.variable(INPUT_SCALES, name, init, size).value)
                for name, init in (
                    ("shift", jnp.zeros),
                    ("scale", jnp.ones),
                    ("difference_scale", jnp.ones),
                )
            )
            standardise = lambda x, s: jnp.clip(x / s, -INPUT_CLIP, INPUT_CLIP)
            vectors = standardise(vectors - shift, scale)
            if goal is not None:
                goal_vectors = standardise(goal_vectors - shift, scale)
                difference = standardise(difference, step)
        if goal is not None:
            vectors = jnp.concatenate([vectors, goal_vectors, difference], -1)
        if not self.config.reads_pixels:
            return LayerNormMLP(self.config.torso_hidden)(vectors)
        frames = obs["pixels"]  # (..., H, W, 3) uint8
        if goal is not None:
            frames = jnp.concatenate([frames, goal["pixels"]], axis=-1)  # (..., H, W, 6)
        x = frames.astype(jnp.float32) / 255.0
        x = x.reshape((-1, *x.shape[-3:]))  # (N, H, W, C)
        torso = ResNetTorso(
            PRESETS[self.config.torso],
            self.config.norm,
            self.config.norm_groups,
            self.config.keypoints,
        )
        x = torso(x)  # (N, D)
        x = x.reshape((*batch_shape, x.shape[-1]))
        # The frames are projected on their own, so the few vector inputs are not outweighed
        # by the many conv features in one dense layer.
        return jnp.concatenate([LayerNormMLP(self.config.torso_hidden)(x), vectors], axis=-1)


def _policy_head(config: NetworkConfig, action_dim: int, embedding: jax.Array) -> jax.Array:
    """Dense layers and a tanh output over an embedding; called inside a compact method,
    so its layers are named LayerNormMLP_0 and Dense_0 in the caller's scope."""
    h = LayerNormMLP(config.head_hidden)(embedding)
    out = nn.Dense(action_dim, kernel_init=nn.initializers.normal(1e-3))(h)
    return jnp.tanh(out)


def _value_head(config: NetworkConfig, num_atoms: int, embedding, action) -> jax.Array:
    """Dense layers over [embedding, action] and ``num_atoms`` outputs (named as above)."""
    h = LayerNormMLP(config.head_hidden)(jnp.concatenate([embedding, action], -1))
    return nn.Dense(num_atoms, kernel_init=nn.initializers.normal(1e-3))(h)


class Actor(nn.Module):
    """Deterministic policy pi(o, [g]) -> a in [-1, 1]^A."""

    config: NetworkConfig
    action_dim: int

    @nn.compact
    def __call__(self, obs: Observation, goal: Observation | None = None) -> jax.Array:
        """Returns actions: (..., A) float32 in [-1, 1]."""
        return _policy_head(self.config, self.action_dim, Encoder(self.config)(obs, goal))


class ActorHead(nn.Module):
    """The ``Actor`` without its encoder: applied to an embedding with the Actor's
    parameters other than ``Encoder_0`` (see ``split_encoder``)."""

    config: NetworkConfig
    action_dim: int

    @nn.compact
    def __call__(self, embedding: jax.Array) -> jax.Array:
        """(..., E) -> actions (..., A) in [-1, 1]."""
        return _policy_head(self.config, self.action_dim, embedding)


class Critic(nn.Module):
    """Critic Q(o, [g], a): ``num_atoms`` outputs (logits over a fixed support, or 1 for a
    scalar value); the action joins after the torso."""

    config: NetworkConfig
    num_atoms: int

    @nn.compact
    def __call__(self, obs: Observation, goal: Observation | None, action: jax.Array) -> jax.Array:
        """Returns logits: (..., num_atoms) float32."""
        embedding = Encoder(critic_network(self.config))(obs, goal)
        return _value_head(self.config, self.num_atoms, embedding, action)


class CriticHead(nn.Module):
    """The ``Critic`` without its encoder: Q from an embedding and an action."""

    config: NetworkConfig
    num_atoms: int

    @nn.compact
    def __call__(self, embedding: jax.Array, action: jax.Array) -> jax.Array:
        """(..., E), (..., A) -> (..., num_atoms)."""
        return _value_head(self.config, self.num_atoms, embedding, action)


def critic_heads(num_critics: int, module: type[nn.Module] | None = None) -> type[nn.Module]:
    """``num_critics`` independent copies of ``module`` (``CriticHead`` by default; own
    parameters, shared input standardisation) over the same inputs; outputs
    (..., num_critics, num_atoms)."""
    return nn.vmap(
        CriticHead if module is None else module,
        variable_axes={"params": 0, INPUT_SCALES: None},
        split_rngs={"params": True},
        in_axes=None,
        out_axes=-2,
        axis_size=num_critics,
    )


class FeaturePredictor(nn.Module):
    """Auxiliary head: a linear map from an embedding to the vector parts (proprio and
    privileged features) of the observation and the goal, standardised like the encoder's
    inputs (``input_scales``, identity until set). The parts are targets, never inputs."""

    @nn.compact
    def __call__(
        self, embedding: jax.Array, obs: Observation, goal: Observation | None = None
    ) -> tuple[jax.Array, jax.Array]:
        """Returns the prediction and its target, standardised: (..., V) each, or
        (..., 2V) with a goal (the observation's parts, then the goal's)."""
        parts = [observation_vectors(obs)] + ([] if goal is None else [observation_vectors(goal)])
        size = parts[0].shape[-1:]
        shift = jax.lax.stop_gradient(self.variable(INPUT_SCALES, "shift", jnp.zeros, size).value)
        scale = jax.lax.stop_gradient(self.variable(INPUT_SCALES, "scale", jnp.ones, size).value)
        targets = [jnp.clip((p - shift) / scale, -INPUT_CLIP, INPUT_CLIP) for p in parts]
        target = jax.lax.stop_gradient(jnp.concatenate(targets, axis=-1))
        return nn.Dense(target.shape[-1])(embedding), target


AUX_FEATURES = "aux_features"  # name of a shared CriticEnsemble's FeaturePredictor


class CriticEnsemble(nn.Module):
    """``num_critics`` independent critics (own parameters, shared input standardisation)
    over the same inputs, e.g. TD3-style twin critics. With ``config.shared_torso`` they
    share one encoder (``Encoder_0``) and only their heads (``critics``) are separate;
    ``aux_features`` adds a ``FeaturePredictor`` over the shared encoder's output (its
    parameters are created here; ``SharedTorso.feature_errors`` applies it)."""

    config: NetworkConfig
    num_atoms: int
    num_critics: int = 1
    aux_features: bool = False

    @nn.compact
    def __call__(self, obs: Observation, goal: Observation | None, action: jax.Array) -> jax.Array:
        """Returns outputs: (..., num_critics, num_atoms) float32."""
        if self.aux_features and not self.config.shared_torso:
            raise ValueError("aux_features needs network.shared_torso")
        if self.config.shared_torso:
            embedding = Encoder(critic_network(self.config))(obs, goal)
            if self.aux_features and self.is_initializing():
                FeaturePredictor(name=AUX_FEATURES)(embedding, obs, goal)
            heads = critic_heads(self.num_critics)(self.config, self.num_atoms, name="critics")
            return heads(embedding, action)
        critics = critic_heads(self.num_critics, Critic)
        return critics(self.config, self.num_atoms, name="critics")(obs, goal, action)


ENCODER = "Encoder_0"  # name of the encoder in an Actor's and a shared CriticEnsemble's variables


def split_encoder(variables: dict) -> tuple[dict, dict]:
    """Splits an ``Actor``'s (or shared ``CriticEnsemble``'s) variables into the encoder's
    variables and the rest (the head's), each in ``apply``'s form."""
    encoder = {c: tree[ENCODER] for c, tree in variables.items() if ENCODER in tree}
    rest = {c: {k: v for k, v in tree.items() if k != ENCODER} for c, tree in variables.items()}
    return encoder, {c: tree for c, tree in rest.items() if tree}


def with_encoder(variables: dict, encoder: dict) -> dict:
    """``variables`` with their encoder's variables replaced by ``encoder``'s."""
    return {
        c: {**tree, **({ENCODER: encoder[c]} if c in encoder else {})}
        for c, tree in variables.items()
    }
