"""Parameter and FLOP counts of the actor and critic for each torso preset.

Counts come from abstract evaluation (``jax.eval_shape``) and XLA's cost analysis of the
lowered forward pass, so even the ``paper`` preset is measured without allocating weights.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from rich.table import Table

from mjx_metamimic.networks.config import PRESETS, NetworkConfig, num_conv_layers
from mjx_metamimic.networks.heads import Actor, Critic


@dataclasses.dataclass(frozen=True)
class NetworkStats:
    """Size and per-sample forward cost of one learner's networks."""

    preset: str
    conv_layers: int
    actor_params: int
    critic_params: int
    actor_flops: float
    """FLOPs of one actor forward pass for a single sample."""
    critic_flops: float
    """FLOPs of one critic forward pass for a single sample."""


def example_observation(
    image_size: int, proprio_dim: int, batch_shape: tuple[int, ...] = ()
) -> dict[str, jax.ShapeDtypeStruct]:
    """Abstract observation: ``pixels`` (*batch, S, S, 3) uint8, ``proprio`` (*batch, P) f32."""
    return {
        "pixels": jax.ShapeDtypeStruct((*batch_shape, image_size, image_size, 3), jnp.uint8),
        "proprio": jax.ShapeDtypeStruct((*batch_shape, proprio_dim), jnp.float32),
    }


def count_params(params) -> int:
    """Total number of scalars in a parameter pytree (concrete or abstract)."""
    return int(sum(np.prod(leaf.shape) for leaf in jax.tree.leaves(params)))


def forward_flops(apply_fn, *args) -> float:
    """FLOPs of ``apply_fn(*args)`` from XLA's cost analysis (args may be abstract)."""
    cost = jax.jit(apply_fn).lower(*args).cost_analysis()
    return float(cost.get("flops", 0.0))


def network_stats(
    config: NetworkConfig,
    image_size: int = 64,
    proprio_dim: int = 16,
    action_dim: int = 7,
    num_atoms: int = 51,
    goal_conditioned: bool = True,
) -> NetworkStats:
    """Counts parameters and single-sample forward FLOPs of one learner's actor and critic.

    Args:
        config: Network configuration (its ``torso`` preset is the one measured).
        image_size: Square frame size S (pixels are S x S x 3 per frame).
        proprio_dim: Length of the proprio vector.
        action_dim: Action size.
        num_atoms: Critic support size.
        goal_conditioned: Whether a goal (same form as the observation) is fed in too.

    Returns:
        The counts, per single sample.
    """
    obs = example_observation(image_size, proprio_dim, (1,))
    goal = obs if goal_conditioned else None
    action = jax.ShapeDtypeStruct((1, action_dim), jnp.float32)
    key = jax.random.key(0)  # Host-side, abstract only: never traced into training code.
    actor, critic = Actor(config, action_dim), Critic(config, num_atoms)
    actor_params = jax.eval_shape(actor.init, key, obs, goal)
    critic_params = jax.eval_shape(critic.init, key, obs, goal, action)
    return NetworkStats(
        preset=config.torso if config.reads_pixels else config.inputs,
        conv_layers=num_conv_layers(PRESETS[config.torso]) if config.reads_pixels else 0,
        actor_params=count_params(actor_params),
        critic_params=count_params(critic_params),
        actor_flops=forward_flops(actor.apply, actor_params, obs, goal),
        critic_flops=forward_flops(critic.apply, critic_params, obs, goal, action),
    )


def stats_table(stats: list[NetworkStats], title: str = "networks") -> Table:
    """A rich table of ``network_stats`` results, one row per preset."""
    table = Table(title=title)
    for column in ("preset", "conv layers", "actor params", "critic params",
                   "actor MFLOP/sample", "critic MFLOP/sample"):
        table.add_column(column, justify="right")
    for s in stats:
        table.add_row(
            s.preset, str(s.conv_layers), f"{s.actor_params:,}", f"{s.critic_params:,}",
            f"{s.actor_flops / 1e6:,.1f}", f"{s.critic_flops / 1e6:,.1f}",
        )
    return table


def preset_stats(
    base: NetworkConfig | None = None, presets: tuple[str, ...] = tuple(PRESETS), **kwargs
) -> list[NetworkStats]:
    """``network_stats`` for each conv preset in ``presets`` (``base`` with its torso swapped).

    Keyword arguments are passed to ``network_stats`` (image_size, proprio_dim, ...).
    """
    base = base or NetworkConfig()
    return [
        network_stats(dataclasses.replace(base, inputs="pixels", torso=name), **kwargs)
        for name in presets
    ]
