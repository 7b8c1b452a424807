"""Torso building blocks: normalisation, residual conv stages, LayerNorm+ELU MLPs."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from mjx_metamimic.networks.config import NormKind, Stage
from mjx_metamimic.networks.conv import Conv
from mjx_metamimic.networks.pool import max_pool_3x3_stride2


class ConvNorm(nn.Module):
    """Per-sample normalisation of conv feature maps (never across the batch).

    Attributes:
        kind: ``none``, ``instance`` (over H, W per channel), ``layer`` (over H, W, C) or
            ``group`` (over H, W and a group of channels).
        groups: Number of channel groups for ``group`` (reduced to a divisor of C).
    """

    kind: NormKind
    groups: int = 8

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Normalises ``x``: (N, H, W, C) float32 -> (N, H, W, C) float32."""
        if self.kind == "none":
            return x
        if self.kind == "instance":
            return nn.InstanceNorm()(x)
        if self.kind == "layer":
            return nn.LayerNorm(reduction_axes=(-3, -2, -1), feature_axes=-1)(x)
        if self.kind == "group":
            return nn.GroupNorm(num_groups=math.gcd(self.groups, x.shape[-1]))(x)
        raise ValueError(f"unknown norm {self.kind!r}")


class ResidualBlock(nn.Module):
    """x + norm(conv(elu(norm(conv(elu(x)))))), channels preserved."""

    norm: NormKind
    groups: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """(N, H, W, C) -> (N, H, W, C)."""
        channels = x.shape[-1]
        h = Conv(channels)(nn.elu(x))
        h = ConvNorm(self.norm, self.groups)(h)
        h = Conv(channels)(nn.elu(h))
        h = ConvNorm(self.norm, self.groups)(h)
        return x + h


class SpatialSoftmax(nn.Module):
    """Keypoints of a feature map (Levine et al. 2016): a 1x1 conv to ``num_keypoints``
    maps, a softmax over each map's positions (a learned temperature, kept positive as the
    exp of its parameter), and each map's expected (x, y) in [-1, 1]. Positions come out
    as numbers, finer than the map's grid.
    """

    num_keypoints: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """(N, H, W, C) -> (N, 2 * num_keypoints): x then y of each keypoint."""
        n, h, w, _ = x.shape
        maps = nn.Dense(self.num_keypoints)(x).reshape(n, h * w, self.num_keypoints)
        log_temperature = self.param("log_temperature", nn.initializers.zeros, ())
        attention = jax.nn.softmax(maps * jnp.exp(-log_temperature), axis=1)  # (N, H*W, K)
        ys, xs = jnp.meshgrid(jnp.linspace(-1, 1, h), jnp.linspace(-1, 1, w), indexing="ij")
        grid = jnp.stack([xs.ravel(), ys.ravel()], axis=-1)  # (H*W, 2)
        keypoints = jnp.einsum("npk,pc->nck", attention, grid)  # (N, 2, K)
        return keypoints.reshape(n, 2 * self.num_keypoints)


class ResNetTorso(nn.Module):
    """Residual conv torso (IMPALA-style stages), read out flattened or as keypoints.

    Attributes:
        stages: Stage specs, see ``networks.config.PRESETS``.
        norm: Normalisation between conv layers.
        groups: Channel groups for group norm.
        keypoints: 0 flattens the last feature map; K > 0 reads it out as K
            ``SpatialSoftmax`` keypoints.
    """

    stages: tuple[Stage, ...]
    norm: NormKind
    groups: int = 8
    keypoints: int = 0

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """(N, H, W, C) float32 -> (N, D) float32: D = H' * W' * C' flattened, or
        2 * keypoints."""
        for stage in self.stages:
            x = Conv(stage.channels)(x)
            x = ConvNorm(self.norm, self.groups)(x)
            if stage.pool_stride > 1:
                x = max_pool_3x3_stride2(x)
            for _ in range(stage.blocks):
                x = ResidualBlock(self.norm, self.groups)(x)
        x = nn.elu(x)
        if self.keypoints:
            return SpatialSoftmax(self.keypoints)(x)
        return x.reshape(x.shape[0], -1)


class LayerNormMLP(nn.Module):
    """Stack of Dense -> LayerNorm -> ELU layers over the last axis (any leading axes)."""

    sizes: tuple[int, ...]

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """(..., D_in) -> (..., sizes[-1])."""
        for size in self.sizes:
            x = nn.elu(nn.LayerNorm()(nn.Dense(size)(x)))
        return x
