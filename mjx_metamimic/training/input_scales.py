"""Standardisation of the networks' vector inputs by the training demos' statistics."""

import jax.numpy as jnp

from mjx_metamimic.demos import DemoBank
from mjx_metamimic.networks import InputScales, observation_vectors, set_input_scales

PARAM_FIELDS = ("actor_params", "critic_params", "target_actor_params", "target_critic_params")


def demo_input_scales(bank: DemoBank, obs_keys: tuple[str, ...], floor: float = 0.01):
    """Standardisation of the networks' vector inputs, measured on the demos.

    Observations and goals: mean and std over every demo step. goal - obs: the RMS of the
    demos' one-step change (the goal is one step ahead), so a tracking error of one typical
    step reads as ~1. Stds below ``floor`` (near-constant parts) are raised to it.
    """
    parts = {"proprio": bank.proprio, "features": bank.features}
    vectors = observation_vectors({k: parts[k] for k in obs_keys if k in parts})  # (N, T, V)
    valid = (jnp.arange(vectors.shape[1])[None] < bank.lengths[:, None])[..., None]
    mean = jnp.sum(vectors * valid, (0, 1)) / jnp.sum(valid)
    std = jnp.sqrt(jnp.sum(jnp.square(vectors - mean) * valid, (0, 1)) / jnp.sum(valid))
    steps = (vectors[:, 1:] - vectors[:, :-1]) * valid[:, 1:]
    step_rms = jnp.sqrt(jnp.sum(jnp.square(steps), (0, 1)) / jnp.sum(valid[:, 1:]))
    return InputScales(mean, jnp.maximum(std, floor), jnp.maximum(step_rms, floor))


def with_input_scales(learners: dict, bank: DemoBank, obs_keys: tuple[str, ...]) -> dict:
    """``learners`` (name -> D4PGState) with every network standardising its inputs by
    the demos' statistics (``demo_input_scales``)."""
    scales = demo_input_scales(bank, obs_keys)
    return {
        name: learner.replace(
            **{f: set_input_scales(getattr(learner, f), scales) for f in PARAM_FIELDS}
        )
        for name, learner in learners.items()
    }
