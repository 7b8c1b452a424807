"""Observation encoder, deterministic tanh policy and categorical critic.

Observations (and goals) are dicts: ``pixels`` (..., H, W, 3) uint8, ``proprio`` (..., P)
float32 and optionally ``features`` (..., F) float32. Any number of leading axes is accepted
(none included), so the modules can be applied to batches or vmapped over single samples.
"""

from collections.abc import Mapping

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp

from mjx_metamimic.networks.config import PRESETS, NetworkConfig
from mjx_metamimic.networks.torso import LayerNormMLP, ResNetTorso

Observation = Mapping[str, jax.Array]
INPUT_SCALES = "input_scales"  # variable collection of the fixed input standardisation


@flax.struct.dataclass
class InputScales:
    """Standardisation of the vector inputs: (v - shift) / scale for observations and
    goals, (goal - obs) / difference_scale for their difference; each (V,) float32."""

    shift: jax.Array
    scale: jax.Array
    difference_scale: jax.Array


def set_input_scales(variables: dict, scales: InputScales) -> dict:
    """Returns ``variables`` (of an Actor or Critic) with ``scales`` in every encoder."""
    values = {
        "shift": scales.shift,
        "scale": scales.scale,
        "difference_scale": scales.difference_scale,
    }
    collection = jax.tree_util.tree_map_with_path(
        lambda path, leaf: jnp.broadcast_to(values[path[-1].key], leaf.shape).astype(leaf.dtype),
        variables[INPUT_SCALES],
    )
    return {**variables, INPUT_SCALES: collection}


def observation_vectors(obs: Observation) -> jax.Array:
    """Concatenates the vector parts of an observation: (..., P [+ F]) float32."""
    parts = [obs["proprio"]]
    if "features" in obs:
        parts.append(obs["features"])
    return jnp.concatenate([p.astype(jnp.float32) for p in parts], axis=-1)


class Encoder(nn.Module):
    """Maps an observation (and an optional goal) to an embedding.

    The vector parts enter standardised, as [obs, goal, goal - obs] (just obs without a
    goal), followed by the action for critics. The standardisation constants live in the
    ``input_scales`` variable collection (identity at init; ``set_input_scales`` fills them
    in, e.g. from demo statistics); no gradient reaches them.
    Pixels: the observation and goal frames are channel-stacked, scaled to [0, 1], passed
    through the residual torso, and joined with the vectors, then ``torso_hidden`` dense
    layers. Features: ``torso_hidden`` dense layers over the vectors alone.
    """

    config: NetworkConfig

    @nn.compact
    def __call__(
        self,
        obs: Observation,
        goal: Observation | None = None,
        action: jax.Array | None = None,
    ) -> jax.Array:
        """Returns the embedding: (..., torso_hidden[-1]) float32."""
        raw = observation_vectors(obs)  # (..., V)
        batch_shape = raw.shape[:-1]
        shift, scale = (
            jax.lax.stop_gradient(self.variable(INPUT_SCALES, name, init, raw.shape[-1:]).value)
            for name, init in (("shift", jnp.zeros), ("scale", jnp.ones))
        )
        vectors = (raw - shift) / scale
        if goal is not None:
            goal_raw = observation_vectors(goal)
            step = self.variable(INPUT_SCALES, "difference_scale", jnp.ones, raw.shape[-1:])
            difference = (goal_raw - raw) / jax.lax.stop_gradient(step.value)
            vectors = jnp.concatenate([vectors, (goal_raw - shift) / scale, difference], -1)
        if action is not None:
            vectors = jnp.concatenate([vectors, action], -1)
        if self.config.inputs == "features":
            return LayerNormMLP(self.config.torso_hidden)(vectors)
        frames = obs["pixels"]  # (..., H, W, 3) uint8
        if goal is not None:
            frames = jnp.concatenate([frames, goal["pixels"]], axis=-1)  # (..., H, W, 6)
        x = frames.astype(jnp.float32) / 255.0
        x = x.reshape((-1, *x.shape[-3:]))  # (N, H, W, C)
        torso = ResNetTorso(PRESETS[self.config.torso], self.config.norm, self.config.norm_groups)
        x = torso(x)  # (N, D)
        x = x.reshape((*batch_shape, x.shape[-1]))
        return LayerNormMLP(self.config.torso_hidden)(jnp.concatenate([x, vectors], axis=-1))


class Actor(nn.Module):
    """Deterministic policy pi(o, [g]) -> a in [-1, 1]^A."""

    config: NetworkConfig
    action_dim: int

    @nn.compact
    def __call__(self, obs: Observation, goal: Observation | None = None) -> jax.Array:
        """Returns actions: (..., A) float32 in [-1, 1]."""
        h = LayerNormMLP(self.config.head_hidden)(Encoder(self.config)(obs, goal))
        out = nn.Dense(self.action_dim, kernel_init=nn.initializers.normal(1e-3))(h)
        return jnp.tanh(out)


class Critic(nn.Module):
    """Categorical critic Q(o, [g], a): logits over a fixed support. The action joins the
    vector inputs of the dense torso (after the conv stack for pixels), so every dense layer
    can model how the value depends on it."""

    config: NetworkConfig
    num_atoms: int

    @nn.compact
    def __call__(
        self, obs: Observation, goal: Observation | None, action: jax.Array
    ) -> jax.Array:
        """Returns logits: (..., num_atoms) float32."""
        embedding = Encoder(self.config)(obs, goal, action)
        h = LayerNormMLP(self.config.head_hidden)(embedding)
        return nn.Dense(self.num_atoms, kernel_init=nn.initializers.normal(1e-3))(h)
