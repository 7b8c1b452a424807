"""The imitation reward: how closely the agent's next observation matches the demo's.

r_t = sum_k weight_k * exp(-scale_k * d_k(o_{t+1}, d_{t+1})^2), over named terms k:
  pixels            mean squared difference of the frames (channels in [0, 1])
  joints            L2 distance of the arm joint positions (rad)
  joint_velocities  L2 distance of the arm joint velocities (rad/s)
  gripper           difference of the finger gaps (m)
  blocks            L2 distance of the two block positions (m), privileged features
Terms with weight 0 are skipped (and need not be observed). The episode ends early when
the arm drifts from the demo by more than ``termination_joint_error``.
"""

import dataclasses

import jax
import jax.numpy as jnp

from mjx_metamimic.envs.stack import FEATURES_PARTS, PROPRIO_PARTS

TERMS = ("pixels", "joints", "joint_velocities", "gripper", "blocks")


@dataclasses.dataclass(frozen=True)
class ImitationRewardConfig:
    """Weights and scales of the imitation reward terms, and early termination."""

    pixels_weight: float = 0.0
    """Weight of the pixel term (needs pixel observations)."""
    pixels_scale: float = 20.0
    """exp(-scale * mean squared frame difference); pixel values in [0, 1]."""
    joints_weight: float = 0.6
    """Weight of the arm joint position term."""
    joints_scale: float = 100.0
    """exp(-scale * |dq|^2), dq in rad: 0.1 rad of error gives exp(-1)."""
    joint_velocities_weight: float = 0.0
    """Weight of the arm joint velocity term."""
    joint_velocities_scale: float = 1.0
    """exp(-scale * |dqdot|^2), dqdot in rad/s."""
    gripper_weight: float = 0.2
    """Weight of the finger gap term."""
    gripper_scale: float = 1e4
    """exp(-scale * dgap^2), dgap in m: 1 cm of error gives exp(-1)."""
    blocks_weight: float = 0.2
    """Weight of the block position term (privileged features)."""
    blocks_scale: float = 400.0
    """exp(-scale * |dblocks|^2), dblocks in m: 5 cm of error gives exp(-1)."""
    termination_joint_error: float = 0.4
    """End the episode when |dq| (rad) exceeds this; 0 disables early termination."""

    def weights(self) -> dict[str, float]:
        """The non-zero term weights, by term name."""
        return {k: getattr(self, f"{k}_weight") for k in TERMS if getattr(self, f"{k}_weight")}

    def __post_init__(self):
        bad = [
            k for k in TERMS if getattr(self, f"{k}_weight") < 0 or getattr(self, f"{k}_scale") <= 0
        ]
        if bad:
            raise ValueError(f"imitation reward terms {bad} need weight >= 0 and scale > 0")
        if not self.weights():
            raise ValueError("the imitation reward needs at least one term with weight > 0")


def _distances(obs: dict, target: dict, names) -> dict[str, jax.Array]:
    """Per-term distances between two observation dicts (no batch axis)."""
    out = {}
    for name in names:
        if name == "pixels":
            diff = obs["pixels"].astype(jnp.float32) - target["pixels"].astype(jnp.float32)
            out[name] = jnp.sqrt(jnp.mean(jnp.square(diff / 255.0)))
        elif name == "blocks":
            part = FEATURES_PARTS["block_pos"]
            out[name] = jnp.linalg.norm(obs["features"][part] - target["features"][part])
        else:
            part = {
                "joints": "joint_pos",
                "joint_velocities": "joint_vel",
                "gripper": "finger_gap",
            }
            sl = PROPRIO_PARTS[part[name]]
            out[name] = jnp.linalg.norm(obs["proprio"][sl] - target["proprio"][sl])
    return out


def imitation_reward(
    config: ImitationRewardConfig, obs: dict, target: dict
) -> tuple[jax.Array, jax.Array, dict[str, jax.Array]]:
    """Imitation reward of reaching ``obs`` when the demo reached ``target``.

    Args:
      config: term weights and scales.
      obs: the agent's observation o_{t+1} (dict of unbatched arrays; vmap for batches).
      target: the demo's observation d_{t+1}, same structure.

    Returns:
      reward () f32, drifted () bool (the arm is too far from the demo: end the episode),
      and metrics: each term's reward and distance, namespaced ``imitation/``.
    """
    weights = config.weights()
    # In TERMS order (not a set's): the traced program, and so its compilation-cache key,
    # must not depend on the process's string hashing. The joint error also decides early
    # termination, so it is always computed.
    names = [name for name in TERMS if name in weights or name == "joints"]
    dist = _distances(obs, target, names)
    reward = jnp.zeros(())
    metrics = {}
    for name, weight in weights.items():
        term = jnp.exp(-getattr(config, f"{name}_scale") * jnp.square(dist[name]))
        reward = reward + weight * term
        metrics[f"imitation/{name}"] = term
    for name, d in dist.items():
        metrics[f"imitation/{name}_error"] = d
    limit = config.termination_joint_error
    drifted = (dist["joints"] > limit) if limit > 0 else jnp.zeros((), bool)
    return reward, drifted, metrics
