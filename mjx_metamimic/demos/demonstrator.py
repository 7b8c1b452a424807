"""A scripted block-stacking demonstrator in JAX, using privileged simulator state.

The controller runs a phase machine (reach above the source block, descend, grasp, lift,
carry above the target block, lower, release, retreat, done) whose state is a small
pytree, so it jits and vmaps like the env. Each phase sets a Cartesian target for the
``grip`` site (or, while a block is held, for the held block itself) and a hand yaw
aligned with the block's yaw modulo 90 degrees; damped least squares through the arm's
geometric Jacobian maps the position and orientation error to joint velocities.

Per-demo random parameters (speed, heights, grasp offset, pauses, hesitations, action
noise, gripper opening, which block goes on top) make every demonstration move
differently, like human demonstrations.
"""

import dataclasses
import enum

import jax
import jax.numpy as jnp
import numpy as np
from brax.envs.base import State
from flax import struct

from mjx_metamimic.envs.scene import ARM_JOINTS
from mjx_metamimic.envs.stack import StackEnv


class Phase(enum.IntEnum):
    """Phases of the stacking script, in order."""

    REACH = 0  # above the source block, gripper open
    DESCEND = 1  # grip site down to the source block
    GRASP = 2  # close the fingers, hold still
    LIFT = 3  # raise the held block to the carry height
    CARRY = 4  # move the held block above the target block
    LOWER = 5  # put the held block down onto the target block
    RELEASE = 6  # open the fingers, hold still
    RETREAT = 7  # move the hand up and away
    DONE = 8  # hold still


# Phases in which a block is held: the Cartesian error is measured on the block.
_HOLDING = (Phase.LIFT, Phase.CARRY, Phase.LOWER)
# Phases in which the hand moves freely, so hesitations may slow it down.
_FREE_MOTION = (Phase.REACH, Phase.LIFT, Phase.CARRY, Phase.RETREAT)
_CLOSED = (Phase.GRASP, Phase.LIFT, Phase.CARRY, Phase.LOWER)


@dataclasses.dataclass(frozen=True)
class DemonstratorConfig:
    """Ranges of the per-demo random parameters and the controller's gains.

    Every ``(low, high)`` pair is sampled uniformly, once per demonstration.
    """

    speed: tuple[float, float] = (0.15, 0.25)
    """Cartesian speed limit of the hand (m/s)."""
    precise_speed_scale: float = 0.6
    """Speed factor while descending to grasp and lowering to place."""
    min_speed: float = 0.02
    """Lower limit of the commanded hand speed while moving (m/s): a linear, not
    exponential, final approach."""
    approach_height: tuple[float, float] = (0.06, 0.13)
    """Height of the grip site above the source block's centre before descending (m)."""
    carry_height: tuple[float, float] = (0.04, 0.10)
    """Clearance between the held block's bottom and the target block's top in carry (m)."""
    retreat_height: tuple[float, float] = (0.08, 0.16)
    """Height of the grip site above the stacked block's centre after release (m)."""
    grasp_offset_xy: float = 0.004
    """Horizontal grasp offset of the grip site from the block centre, per axis (m)."""
    grasp_offset_z: tuple[float, float] = (-0.001, 0.006)
    """Vertical grasp offset of the grip site from the block centre (m)."""
    place_clearance: tuple[float, float] = (0.002, 0.006)
    """Gap between the blocks when the held block is released (m)."""
    gripper_open: tuple[float, float] = (0.6, 1.0)
    """Gripper command while open (+1 = fully open)."""
    grasp_steps: tuple[int, int] = (5, 9)
    """Control steps to close the fingers before lifting (inclusive range)."""
    release_steps: tuple[int, int] = (4, 8)
    """Control steps to open the fingers before retreating (inclusive range)."""
    pause_steps: tuple[int, int] = (0, 4)
    """Still pause after every phase change, in control steps (inclusive range)."""
    hesitation_probability: float = 0.02
    """Per-step chance of starting a hesitation during free motion."""
    hesitation_steps: tuple[int, int] = (2, 8)
    """Length of a hesitation in control steps (inclusive range)."""
    hesitation_speed_scale: float = 0.2
    """Speed factor while hesitating."""
    action_noise: tuple[float, float] = (0.0, 0.03)
    """Std of Gaussian noise added to the normalised arm action."""
    position_gain: float = 5.0
    """Proportional gain from position error (m) to hand velocity (m/s)."""
    orientation_gain: float = 3.0
    """Proportional gain from orientation error (rad) to hand angular velocity (rad/s)."""
    max_angular_speed: float = 1.0
    """Limit on the hand's commanded angular speed (rad/s)."""
    damping: float = 0.05
    """Damping of the least-squares inverse kinematics."""
    reach_tolerance: float = 0.008
    """Position error (m) ending the reach, lift, carry and retreat phases."""
    precise_tolerance: float = 0.003
    """Position error (m) ending the descend and lower phases."""
    yaw_tolerance: float = 0.05
    """Orientation error (rad) allowed when a phase ends."""
    drop_distance: float = 0.03
    """A held block farther than this from the grip site (m) was dropped: reach again."""


@struct.dataclass
class DemoParams:
    """Per-demo random parameters of the script (each a scalar unless noted)."""

    speed: jax.Array
    approach_height: jax.Array
    carry_height: jax.Array
    retreat_height: jax.Array
    grasp_offset: jax.Array  # (3,)
    place_clearance: jax.Array
    gripper_open: jax.Array
    grasp_steps: jax.Array  # int32
    release_steps: jax.Array  # int32
    action_noise: jax.Array
    source: jax.Array  # int32: index of the block that goes on top


@struct.dataclass
class ControllerState:
    """The demonstrator's carried state (a pytree, one per demo)."""

    phase: jax.Array  # () int32, a Phase
    timer: jax.Array  # () int32: control steps spent in the phase (after its pause)
    pause: jax.Array  # () int32: remaining still steps before the phase starts moving
    hesitation: jax.Array  # () int32: remaining slow steps
    key: jax.Array  # PRNG key for pauses, hesitations and noise
    params: DemoParams


def _uniform(key, bounds):
    return jax.random.uniform(key, (), minval=bounds[0], maxval=bounds[1])


def _randint(key, bounds):
    return jax.random.randint(key, (), bounds[0], bounds[1] + 1, dtype=jnp.int32)


def _wrap_quarter(angle):
    """Wraps an angle (rad) to [-pi/4, pi/4): the equivalent rotation of a cube."""
    quarter = jnp.pi / 2
    return angle - quarter * jnp.round(angle / quarter)


def _block_yaw(quat):
    """Yaw (rad) of a (w, x, y, z) quaternion about the world vertical."""
    w, x, y, z = quat[0], quat[1], quat[2], quat[3]
    return jnp.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


def _down_rotation(yaw):
    """Rotation matrix (3, 3) of a hand pointing down, its x axis at ``yaw`` in the plane."""
    c, s = jnp.cos(yaw), jnp.sin(yaw)
    x_axis = jnp.stack([c, s, 0.0])
    z_axis = jnp.array([0.0, 0.0, -1.0])
    return jnp.stack([x_axis, jnp.cross(z_axis, x_axis), z_axis], axis=1)


def _limit_norm(v, limit, floor=0.0):
    """Scales ``v`` so that its norm lies in [floor, limit] (a zero vector stays zero)."""
    norm = jnp.linalg.norm(v)
    return v * jnp.clip(norm, floor, limit) / jnp.maximum(norm, 1e-9)


class Demonstrator:
    """Scripted stacking controller for ``StackEnv`` (jittable, vmappable).

    Usage: ``ctrl = demonstrator.init(key)``, then per control step
    ``action, ctrl = demonstrator.act(ctrl, env_state)`` and ``env.step(env_state, action)``.
    """

    def __init__(self, env: StackEnv, config: DemonstratorConfig = DemonstratorConfig()):
        self.env = env
        self.config = config
        model = env.mj_model
        self._arm_joints = np.array([model.joint(n).id for n in ARM_JOINTS])  # (6,)
        self._edge = 2 * env.ids.block_half_size

    def init(self, key: jax.Array) -> ControllerState:
        """Samples this demo's parameters and starts the script at ``Phase.REACH``."""
        cfg = self.config
        keys = jax.random.split(key, 14)
        offset_xy = jax.random.uniform(
            keys[0], (2,), minval=-cfg.grasp_offset_xy, maxval=cfg.grasp_offset_xy
        )
        params = DemoParams(
            speed=_uniform(keys[1], cfg.speed),
            approach_height=_uniform(keys[2], cfg.approach_height),
            carry_height=_uniform(keys[3], cfg.carry_height),
            retreat_height=_uniform(keys[4], cfg.retreat_height),
            grasp_offset=jnp.concatenate([offset_xy, _uniform(keys[5], cfg.grasp_offset_z)[None]]),
            place_clearance=_uniform(keys[6], cfg.place_clearance),
            gripper_open=_uniform(keys[7], cfg.gripper_open),
            grasp_steps=_randint(keys[8], cfg.grasp_steps),
            release_steps=_randint(keys[9], cfg.release_steps),
            action_noise=_uniform(keys[10], cfg.action_noise),
            source=jax.random.randint(keys[11], (), 0, 2, dtype=jnp.int32),
        )
        zero = jnp.zeros((), jnp.int32)
        return ControllerState(
            phase=jnp.asarray(Phase.REACH, jnp.int32),
            timer=zero,
            pause=_randint(keys[12], cfg.pause_steps),
            hesitation=zero,
            key=keys[13],
            params=params,
        )

    def act(self, ctrl: ControllerState, state: State) -> tuple[jax.Array, ControllerState]:
        """Returns the action (7,) in [-1, 1] for ``state`` and the next controller state."""
        cfg, p, ids = self.config, ctrl.params, self.env.ids
        data = state.pipeline_state
        grip = data.site_xpos[ids.grip_site]  # (3,)
        hand_rot = data.site_xmat[ids.grip_site]  # (3, 3), columns = hand axes in world
        blocks = data.qpos[ids.block_qpos]  # (2, 7)
        source, target = blocks[p.source], blocks[1 - p.source]  # (7,) each
        src_pos, dst_pos = source[:3], target[:3]
        phase = ctrl.phase

        # Targets per phase: (NUM_PHASES, 3) positions of the controlled point.
        grasp_point = src_pos + p.grasp_offset
        up = jnp.array([0.0, 0.0, 1.0])
        place = dst_pos + up * (self._edge + p.place_clearance)
        carry = dst_pos + up * (self._edge + p.carry_height)
        lift = jnp.concatenate([src_pos[:2], carry[2:]])
        retreat = jnp.concatenate([grip[:2], dst_pos[2:] + self._edge + p.retreat_height])
        targets = jnp.stack(
            [
                grasp_point + up * p.approach_height,  # REACH
                grasp_point,  # DESCEND
                grasp_point,  # GRASP
                lift,  # LIFT (held block)
                carry,  # CARRY (held block)
                place,  # LOWER (held block)
                grip,  # RELEASE (stay)
                retreat,  # RETREAT
                grip,  # DONE (stay)
            ]
        )
        holding = jnp.isin(phase, jnp.array(_HOLDING))
        current = jnp.where(holding, src_pos, grip)
        pos_error = targets[phase] - current  # (3,)

        # Hand yaw: fingers square to the source block, then the held block square to the
        # target block; always the nearest equivalent yaw modulo 90 degrees.
        hand_yaw = jnp.arctan2(hand_rot[1, 0], hand_rot[0, 0])
        src_yaw, dst_yaw = _block_yaw(source[3:]), _block_yaw(target[3:])
        yaw_step = jnp.where(
            phase <= Phase.GRASP,
            _wrap_quarter(src_yaw - hand_yaw),
            jnp.where(holding, _wrap_quarter(dst_yaw - src_yaw), 0.0),
        )
        desired_rot = _down_rotation(hand_yaw + yaw_step)
        rot_error = 0.5 * jnp.sum(jnp.cross(hand_rot.T, desired_rot.T), axis=0)  # (3,)

        # Hand velocity: proportional, speed-limited, slower in precise phases and hesitations.
        precise = (phase == Phase.DESCEND) | (phase == Phase.LOWER)
        speed = p.speed * jnp.where(precise, cfg.precise_speed_scale, 1.0)
        speed = speed * jnp.where(ctrl.hesitation > 0, cfg.hesitation_speed_scale, 1.0)
        linear = _limit_norm(cfg.position_gain * pos_error, speed, cfg.min_speed)
        angular = _limit_norm(cfg.orientation_gain * rot_error, cfg.max_angular_speed)
        still = (ctrl.pause > 0) | (phase == Phase.GRASP) | (phase == Phase.RELEASE)
        still = still | (phase == Phase.DONE)
        twist = jnp.where(still, 0.0, jnp.concatenate([linear, angular]))  # (6,)

        # Damped least squares through the geometric Jacobian of the six hinge joints.
        axes = data.xaxis[self._arm_joints]  # (6, 3)
        anchors = data.xanchor[self._arm_joints]  # (6, 3)
        jac = jnp.concatenate([jnp.cross(axes, grip - anchors).T, axes.T], axis=0)  # (6, 6)
        gram = jac @ jac.T + cfg.damping**2 * jnp.eye(6)
        joint_vel = jac.T @ jnp.linalg.solve(gram, twist)  # (6,) rad/s
        arm = joint_vel / self.env.config.max_joint_velocity
        arm = arm / jnp.maximum(1.0, jnp.max(jnp.abs(arm)))  # keep direction within limits

        key, k_noise, k_hes, k_hes_len, k_pause = jax.random.split(ctrl.key, 5)
        noise = p.action_noise * jax.random.normal(k_noise, (6,))
        arm = jnp.clip(arm + jnp.where(still, 0.0, noise), -1.0, 1.0)
        closed = jnp.isin(phase, jnp.array(_CLOSED))
        gripper = jnp.where(closed, -1.0, p.gripper_open)
        action = jnp.concatenate([arm, gripper[None]])

        # Phase transitions.
        reached = jnp.linalg.norm(pos_error) < cfg.reach_tolerance
        reached_precise = jnp.linalg.norm(pos_error) < cfg.precise_tolerance
        aligned = jnp.linalg.norm(rot_error) < cfg.yaw_tolerance
        moving = ctrl.pause == 0
        advance = jnp.select(
            [
                phase == Phase.REACH,
                phase == Phase.DESCEND,
                phase == Phase.GRASP,
                phase == Phase.LIFT,
                phase == Phase.CARRY,
                phase == Phase.LOWER,
                phase == Phase.RELEASE,
                phase == Phase.RETREAT,
            ],
            [
                reached & aligned,
                reached_precise & aligned,
                ctrl.timer >= p.grasp_steps,
                jnp.abs(pos_error[2]) < cfg.reach_tolerance,
                reached & aligned,
                reached_precise,
                ctrl.timer >= p.release_steps,
                reached,
            ],
            default=False,
        )
        advance = advance & moving
        dropped = holding & (jnp.linalg.norm(src_pos - grip) > cfg.drop_distance)
        next_phase = jnp.where(dropped, Phase.REACH, jnp.where(advance, phase + 1, phase)).astype(
            jnp.int32
        )
        changed = next_phase != phase

        hesitation = jnp.maximum(ctrl.hesitation - 1, 0)
        free = jnp.isin(phase, jnp.array(_FREE_MOTION))
        start_hesitation = free & moving & (hesitation == 0)
        start_hesitation = start_hesitation & jax.random.bernoulli(
            k_hes, cfg.hesitation_probability
        )
        hesitation = jnp.where(
            start_hesitation, _randint(k_hes_len, cfg.hesitation_steps), hesitation
        )
        pause = jnp.where(
            changed, _randint(k_pause, cfg.pause_steps), jnp.maximum(ctrl.pause - 1, 0)
        )
        timer = jnp.where(changed, 0, ctrl.timer + moving.astype(jnp.int32))
        next_ctrl = ctrl.replace(
            phase=next_phase, timer=timer, pause=pause, hesitation=hesitation, key=key
        )
        return action, next_ctrl
