"""Flax networks: residual conv torsos (presets tiny/small/impala/paper), a features MLP
torso, a deterministic tanh policy and categorical or scalar critics (single or ensembles)."""

from mjx_metamimic.networks.config import PRESETS, NetworkConfig, Stage, num_conv_layers
from mjx_metamimic.networks.conv import Conv, conv2d_same
from mjx_metamimic.networks.heads import (
    Actor,
    Critic,
    CriticEnsemble,
    Encoder,
    InputScales,
    observation_vectors,
    set_input_scales,
)
from mjx_metamimic.networks.stats import (
    NetworkStats,
    count_params,
    network_stats,
    preset_stats,
    stats_table,
)
from mjx_metamimic.networks.torso import ConvNorm, LayerNormMLP, ResNetTorso

__all__ = [
    "InputScales",
    "set_input_scales",
    "PRESETS",
    "Actor",
    "Conv",
    "ConvNorm",
    "Critic",
    "CriticEnsemble",
    "Encoder",
    "LayerNormMLP",
    "NetworkConfig",
    "NetworkStats",
    "ResNetTorso",
    "Stage",
    "conv2d_same",
    "count_params",
    "network_stats",
    "num_conv_layers",
    "observation_vectors",
    "preset_stats",
    "stats_table",
]
