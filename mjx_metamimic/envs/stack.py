"""The block-stacking environment: a 6-DOF arm stacks one cube on another, in MJX.

Pure functions over brax's ``State``: ``reset(key)``, ``reset_to(key, sim_state)`` and
``step(state, action)`` are jittable and vmappable; all per-episode randomness (the
block layout, the block colours, the RNG for auto-resets) lives in the state.

Action (7,) in [-1, 1]: six arm joint velocities (scaled by ``max_joint_velocity``) and
one gripper command (-1 closed ... +1 open). Observation dict:
  pixels   (H, W, 3) u8: the ``camera`` image, only when ``image_size`` > 0.
  proprio  (19,) f32: arm joint positions (6), velocities (6), velocity-integrated
                      position setpoints (6) and the gap between the fingers (1).
  features (26,) f32: grip site position (3), block positions (2x3), block quaternions
                      (2x4, w >= 0), grip-to-block vectors (2x3), block_a-to-block_b (3).
Reward: the sparse task reward, 1.0 while one block rests centred on the other and is
not held by the gripper. Shaped diagnostics go to ``state.metrics`` only.
"""

import dataclasses
import math

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from brax.envs.base import Env, State
from flax import struct
from mujoco import mjx

from mjx_metamimic.envs import warp_physics
from mjx_metamimic.envs.batching import default_chunk_size
from mjx_metamimic.envs.c_physics import (
    KINEMATICS_FIELDS,
    STATE_FIELDS,
    BatchStepper,
    c_kinematics,
    c_step,
)
from mjx_metamimic.envs.scene import FINGER_CLOSED_GAP, SceneIds, load_model
from mjx_metamimic.render import Renderer

ACTION_SIZE = 7
GRIPPER_ACTION = 6  # index of the gripper command in the action (-1 shut ... +1 open)
FINGERS_ON_BLOCK_SLACK = 0.01  # a finger gap below block edge + this (m) holds a block
PROPRIO_SIZE = 19
FEATURES_SIZE = 26
# Named parts of the observation vectors (see the module docstring).
PROPRIO_PARTS = {
    "joint_pos": slice(0, 6),
    "joint_vel": slice(6, 12),
    "setpoint": slice(12, 18),
    "finger_gap": slice(18, 19),
}
FEATURES_PARTS = {
    "grip_pos": slice(0, 3),
    "block_pos": slice(3, 9),
    "block_quat": slice(9, 17),
    "grip_to_blocks": slice(17, 23),
    "block_to_block": slice(23, 26),
}
PHYSICS_IMPLS = ("jax", "c", "warp")
METRIC_NAMES = (
    "env/reach_dist",
    "env/grasped",
    "env/lift",
    "env/align_xy",
    "env/stacked",
    "env/nan",
)


@dataclasses.dataclass(frozen=True)
class StackEnvConfig:
    """Options of the stacking env; every field can be overridden in ``envs.make``."""

    scene: str = "stack"
    """Name of the MJCF scene in envs/ (without .xml)."""
    impl: str = "auto"
    """Physics engine: "c" (MuJoCo's C engine on all CPU cores, called from inside the
    jitted program: ~10x MJX's JAX engine on CPUs), "jax" (MJX's JAX implementation, traced
    into the program: for accelerators), "warp" (MJX's MuJoCo Warp kernels through JAX's
    FFI: built for NVIDIA GPUs, needs ``warp-lang``) or "auto" ("c" where JAX's default
    backend is the CPU, else "jax")."""
    warp_max_envs: int = 2048
    """Most envs stepped together on the "warp" engine: its contact buffer is one for the
    whole batch, sized for this many envs (``envs/warp_physics.py``); the `paper` config
    steps 2048. A larger buffer costs time in every step (on a CPU, 16 envs stepped 2.8x
    slower with room for 4096 than with room for 16): lower it for small batches."""
    image_size: int = 0
    """Adds ``pixels`` (uint8, image_size x image_size x 3) to observations; 0: no pixels
    (features-only configs skip rendering entirely)."""
    camera: str = "front"
    """Camera the pixels are rendered from."""
    control_dt: float = 0.05
    """Seconds per control step (20 Hz); must be a multiple of the model timestep."""
    max_joint_velocity: float = 1.0
    """Arm joint velocity (rad/s) commanded by an action of +-1."""
    gripper_open: float = 0.04
    """Finger joint target when open (m); below the joint limit, where fingers chatter."""
    home_qpos: tuple[float, ...] = (0.0, 0.5, 1.6, 1.0, 0.0, 0.0)
    """Arm joint angles at reset (rad): hand above the workspace, pointing down."""
    home_noise: float = 0.05
    """Uniform noise (rad) added to each home joint angle at reset."""
    block_radius: tuple[float, float] = (0.28, 0.45)
    """Range of block distances from the arm's base (m)."""
    block_angle: float = 0.6
    """Blocks are placed within +-this angle (rad) of the arm's forward (+x) axis."""
    block_yaw: float = math.pi / 4
    """Blocks are rotated about the vertical by up to +-this angle (rad)."""
    block_min_separation: float = 0.1
    """Minimum distance between the two blocks' centres at reset (m)."""
    stack_xy_tolerance: float = 0.02
    """Max horizontal offset (m) between the stacked blocks' centres."""
    stack_z_tolerance: float = 0.01
    """Max deviation (m) of the vertical centre distance from one block edge."""
    rest_linear_velocity: float = 0.05
    """Blocks are at rest below this speed (m/s)."""
    rest_angular_velocity: float = 0.3
    """... and below this angular speed (rad/s); MJX stacks twitch at ~0.03 rad/s."""
    held_distance: float = 0.035
    """A block is held when within this distance (m) of the grip site with the fingers on it."""

    def __post_init__(self):
        if self.impl not in (*PHYSICS_IMPLS, "auto"):
            raise ValueError(
                f"impl={self.impl!r} is not a physics engine: use 'jax' (MJX, any device), "
                "'c' (MuJoCo C on the CPU cores), 'warp' (MuJoCo Warp) or 'auto'"
            )
        checks = {
            "control_dt": self.control_dt > 0,
            "image_size": self.image_size >= 0,
            "warp_max_envs": self.warp_max_envs >= 1,
            "max_joint_velocity": self.max_joint_velocity > 0,
            "gripper_open": self.gripper_open > 0,
            "home_qpos": len(self.home_qpos) == 6,
            "home_noise": self.home_noise >= 0,
            "block_radius": 0 < self.block_radius[0] <= self.block_radius[1],
            "block_min_separation": self.block_min_separation >= 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            values = ", ".join(f"{n}={getattr(self, n)!r}" for n in bad)
            raise ValueError(f"invalid stack env option(s): {values}")

    @property
    def physics_impl(self) -> str:
        """The physics engine ``impl`` names, with "auto" resolved for JAX's default backend."""
        if self.impl != "auto":
            return self.impl
        return "c" if jax.default_backend() == "cpu" else "jax"


@struct.dataclass
class SimState:
    """Everything needed to restore the simulator exactly (``StackEnv.reset_to``)."""

    qpos: jax.Array  # (nq,)
    qvel: jax.Array  # (nv,)
    act: jax.Array  # (na,) velocity-integrated arm setpoints
    ctrl: jax.Array  # (nu,)
    qacc_warmstart: jax.Array  # (nv,) solver warm start: needed for identical next steps
    time: jax.Array  # ()
    block_rgba: jax.Array  # (2, 4) per-episode block colours


def _finite(tree):
    """Replaces non-finite entries by 0 (only reachable after a physics blow-up)."""

    def fix(x):
        if not jnp.issubdtype(x.dtype, jnp.floating):
            return x
        return jnp.where(jnp.isfinite(x), x, jnp.zeros((), x.dtype))

    return jax.tree.map(fix, tree)


def _hsv_to_rgb(h, s, v):
    """Vectorised HSV -> RGB for arrays of equal shape in [0, 1]."""
    k = jnp.stack([5.0, 3.0, 1.0], axis=-1)
    k = (k + h[..., None] * 6.0) % 6.0
    return v[..., None] - v[..., None] * s[..., None] * jnp.clip(jnp.minimum(k, 4.0 - k), 0, 1)


class StackEnv(Env):
    """Two-block stacking with a 6-DOF arm (see the module docstring)."""

    def __init__(self, config: StackEnvConfig = StackEnvConfig()):
        self.config = config
        self.mj_model: mujoco.MjModel = load_model(config.scene)
        # This process's own device: another process's (a multi-process run) is not addressable.
        self.device = jax.local_devices()[0]
        self._warp_template = None
        if config.physics_impl == "warp":
            self.mjx_model: mjx.Model = warp_physics.put_model(self.mj_model, self.device)
            self._warp_template = warp_physics.make_template(
                self.mj_model, self.device, config.warp_max_envs
            )
        else:
            self.mjx_model = mjx.put_model(self.mj_model, device=self.device)
        self.ids = SceneIds.from_model(self.mj_model)
        self.renderer = None
        if config.image_size:
            self.renderer = Renderer(
                self.mj_model, config.image_size, config.image_size, camera=config.camera
            )
        self._geom_rgba = jnp.asarray(self.mj_model.geom_rgba)  # (ngeom, 4)
        timestep = self.mj_model.opt.timestep
        n_substeps = config.control_dt / timestep
        if abs(n_substeps - round(n_substeps)) > 1e-6 or round(n_substeps) < 1:
            raise ValueError(
                f"control_dt={config.control_dt} is not a positive multiple of the model "
                f"timestep {timestep}"
            )
        self.n_substeps = int(round(n_substeps))
        self._c_stepper = None
        if config.physics_impl == "c":
            template = mjx.make_data(self.mjx_model, device=self.device)
            shapes = {n: getattr(template, n).shape for n in STATE_FIELDS + KINEMATICS_FIELDS}
            self._c_stepper = BatchStepper(self.mj_model, self.n_substeps, shapes)
        if config.gripper_open >= self.ids.finger_range.min():
            raise ValueError(
                f"gripper_open={config.gripper_open} must be below the finger joint limit "
                f"{self.ids.finger_range.min()}"
            )
        lo, hi = self.ids.arm_range[:, 0], self.ids.arm_range[:, 1]
        home = np.asarray(config.home_qpos)
        if np.any(home - config.home_noise < lo) or np.any(home + config.home_noise > hi):
            raise ValueError(f"home_qpos={config.home_qpos} +- home_noise leaves the joint range")

    # ----------------------------------------------------------------- brax Env API
    @property
    def observation_size(self) -> dict[str, tuple[int, ...]]:
        sizes = {"proprio": (PROPRIO_SIZE,), "features": (FEATURES_SIZE,)}
        if self.renderer is not None:
            sizes["pixels"] = (self.config.image_size, self.config.image_size, 3)
        return sizes

    @property
    def action_size(self) -> int:
        return ACTION_SIZE

    @property
    def backend(self) -> str:
        return "mjx"

    @property
    def step_chunk_size(self) -> int | None:
        """Most envs to vmap together when stepping a batch (``envs.batching``): on the
        Warp engine at most ``warp_max_envs``, the envs its contact buffer holds, so a
        larger batch (an evaluation over many demos) steps in chunks that fit."""
        if self.config.physics_impl == "warp":
            return self.config.warp_max_envs
        return default_chunk_size(self.config.physics_impl)

    @property
    def dt(self) -> float:
        """Seconds of simulated time per control step."""
        return self.config.control_dt

    def reset(self, rng: jax.Array) -> State:
        """Starts an episode with a fresh random block layout and colours."""
        rng, key_layout, key_arm, key_colour = jax.random.split(rng, 4)
        ids, cfg = self.ids, self.config
        qpos = jnp.asarray(self.mj_model.qpos0, dtype=jnp.float32)
        arm = jnp.asarray(cfg.home_qpos) + jax.random.uniform(
            key_arm, (6,), minval=-cfg.home_noise, maxval=cfg.home_noise
        )
        qpos = qpos.at[ids.arm_qpos].set(arm)
        qpos = qpos.at[ids.finger_qpos].set(cfg.gripper_open)
        qpos = qpos.at[ids.block_qpos].set(self.sample_layout(key_layout))
        ctrl = jnp.zeros(self.mj_model.nu).at[ids.finger_actuators].set(cfg.gripper_open)
        sim_state = SimState(
            qpos=qpos,
            qvel=jnp.zeros(self.mj_model.nv),
            act=arm,  # intvelocity setpoints start at the joint positions
            ctrl=ctrl,
            qacc_warmstart=jnp.zeros(self.mj_model.nv),
            time=jnp.zeros(()),
            block_rgba=self.sample_colours(key_colour),
        )
        return self.reset_to(rng, sim_state)

    def reset_to(self, rng: jax.Array, sim_state: SimState) -> State:
        """Starts an episode from a saved simulator state (e.g. a demo's first step)."""
        blank = self._warp_template
        if blank is None:
            blank = mjx.make_data(self.mjx_model, device=self.device)
        data = blank.replace(
            qpos=sim_state.qpos,
            qvel=sim_state.qvel,
            act=sim_state.act,
            ctrl=sim_state.ctrl,
            qacc_warmstart=sim_state.qacc_warmstart,
            time=sim_state.time,
        )
        # forward() renormalises the free joints' quaternions in qpos, which is not
        # idempotent in float32: keep the saved qpos bit for bit so that restored and
        # original episodes step identically. The C engine's state needs only kinematics.
        if self._c_stepper is None:
            data = mjx.forward(self.mjx_model, data).replace(qpos=sim_state.qpos)
        else:
            data = c_kinematics(self._c_stepper, data)
        if self._warp_template is not None:
            data = warp_physics.without_buffers(data)
        zero = jnp.zeros(())
        return State(
            pipeline_state=data,
            obs=self._observe(data, sim_state.block_rgba),
            reward=zero,
            done=zero,
            metrics={**self._diagnostics(data), "env/nan": zero},
            info={"rng": rng, "block_rgba": sim_state.block_rgba},
        )

    def step(self, state: State, action: jax.Array) -> State:
        """Applies one control step of ``action`` (7,) and returns the next state."""
        if action.shape != (ACTION_SIZE,):
            raise ValueError(
                f"action must have shape ({ACTION_SIZE},) (6 arm joint velocities + gripper), "
                f"got {action.shape}; vmap env.step over a batch of states and actions"
            )
        previous = state.pipeline_state
        data = previous.replace(ctrl=self._ctrl(previous.ctrl, action))
        if self._c_stepper is not None:
            data = c_step(self._c_stepper, data)  # kinematics of the new state included
        elif self._warp_template is not None:
            data = warp_physics.step(
                self.mjx_model, self.mj_model, self._warp_template, data, self.n_substeps
            )
        else:
            data = jax.lax.fori_loop(
                0, self.n_substeps, lambda _, d: mjx.step(self.mjx_model, d), data
            )
            # mjx.step leaves positions of bodies/cameras one substep behind qpos: refresh
            # them so observations and rendered frames describe the same instant.
            data = mjx.camlight(self.mjx_model, mjx.kinematics(self.mjx_model, data))

        nan = jnp.logical_not(jnp.all(jnp.isfinite(data.qpos)) & jnp.all(jnp.isfinite(data.qvel)))
        # On a physics blow-up keep the last state and zero any non-finite output so
        # nothing downstream sees NaN; the episode ends and the auto-reset starts anew.
        data = jax.tree.map(lambda new, old: jnp.where(nan, old, new), data, previous)
        nan_f = nan.astype(jnp.float32)
        diagnostics = _finite(self._diagnostics(data))
        return state.replace(
            pipeline_state=data,
            obs=_finite(self._observe(data, state.info["block_rgba"])),
            reward=diagnostics["env/stacked"] * (1.0 - nan_f),
            done=jnp.maximum(state.done, nan_f),
            metrics={**diagnostics, "env/nan": nan_f},
        )

    # ------------------------------------------------------------------- helpers
    def sim_state(self, state: State) -> SimState:
        """Extracts the restorable simulator state of ``state`` (see ``reset_to``)."""
        d = state.pipeline_state
        return SimState(
            qpos=d.qpos,
            qvel=d.qvel,
            act=d.act,
            ctrl=d.ctrl,
            qacc_warmstart=d.qacc_warmstart,
            time=d.time,
            block_rgba=state.info["block_rgba"],
        )

    def sample_layout(self, key: jax.Array, num_candidates: int = 16) -> jax.Array:
        """Samples non-overlapping, reachable block poses as free-joint qpos (2, 7)."""
        cfg = self.config
        k_r, k_th, k_yaw = jax.random.split(key, 3)
        shape = (num_candidates, 2)
        radius = jax.random.uniform(
            k_r, shape, minval=cfg.block_radius[0], maxval=cfg.block_radius[1]
        )
        angle = jax.random.uniform(k_th, shape, minval=-cfg.block_angle, maxval=cfg.block_angle)
        xy = jnp.stack([radius * jnp.cos(angle), radius * jnp.sin(angle)], axis=-1)  # (C, 2, 2)
        separation = jnp.linalg.norm(xy[:, 0] - xy[:, 1], axis=-1)  # (C,)
        valid = separation >= cfg.block_min_separation
        # First valid candidate; if (astronomically unlikely) none is, the most separated.
        choice = jnp.where(jnp.any(valid), jnp.argmax(valid), jnp.argmax(separation))
        xy = xy[choice]  # (2, 2)
        yaw = jax.random.uniform(k_yaw, (2,), minval=-cfg.block_yaw, maxval=cfg.block_yaw)
        z = jnp.full((2, 1), self.ids.block_half_size)
        quat = jnp.stack([jnp.cos(yaw / 2), jnp.zeros(2), jnp.zeros(2), jnp.sin(yaw / 2)], axis=-1)
        return jnp.concatenate([xy, z, quat], axis=-1)

    @staticmethod
    def sample_colours(key: jax.Array) -> jax.Array:
        """Two clearly different saturated colours as rgba (2, 4)."""
        k_h, k_dh, k_sv = jax.random.split(key, 3)
        hue = jax.random.uniform(k_h, ())
        hues = jnp.stack([hue, (hue + jax.random.uniform(k_dh, (), minval=0.25, maxval=0.75)) % 1])
        sv = jax.random.uniform(k_sv, (2, 2), minval=0.6, maxval=0.95)
        rgb = _hsv_to_rgb(hues, sv[:, 0], sv[:, 1])
        return jnp.concatenate([rgb, jnp.ones((2, 1))], axis=-1)

    def _ctrl(self, ctrl: jax.Array, action: jax.Array) -> jax.Array:
        action = jnp.clip(action, -1.0, 1.0)
        arm = action[:6] * self.config.max_joint_velocity
        grip = (action[GRIPPER_ACTION] + 1.0) * 0.5 * self.config.gripper_open
        ctrl = ctrl.at[self.ids.arm_actuators].set(arm)
        return ctrl.at[self.ids.finger_actuators].set(grip)

    def gripper_command_for_gap(self, gap: jax.Array) -> jax.Array:
        """The gripper command that holds the fingers at ``gap`` (m): -1 (squeeze) for gaps
        up to a block's width plus ``FINGERS_ON_BLOCK_SLACK`` (fingers on a block, or
        closing), else the command whose finger target (per finger
        ``(a + 1) / 2 * gripper_open``) gives that gap."""
        on_block = self._fingers_on_block(gap)
        command = (gap - FINGER_CLOSED_GAP) / self.config.gripper_open - 1.0
        return jnp.where(on_block, -1.0, jnp.clip(command, -1.0, 1.0))

    def _held(self, grip_to_blocks: jax.Array, finger_gap: jax.Array) -> jax.Array:
        """Whether each block is held: (..., 2, 3) grip-to-block vectors and (...) finger
        gaps -> (..., 2) bool."""
        near = jnp.linalg.norm(grip_to_blocks, axis=-1) < self.config.held_distance
        return near & self._fingers_on_block(finger_gap)[..., None]

    def _fingers_on_block(self, gap: jax.Array) -> jax.Array:
        """Whether a finger gap (m) is at most a block's width plus the slack: fingers on
        a block (or shut)."""
        return gap < 2 * self.ids.block_half_size + FINGERS_ON_BLOCK_SLACK

    def holds_block(self, obs: dict[str, jax.Array]) -> jax.Array:
        """Whether the gripper holds a block, read from observations' ``features`` and
        ``proprio`` (leading axes ...): (...) bool, the ``env/grasped`` metric's predicate."""
        grip_to_blocks = obs["features"][..., FEATURES_PARTS["grip_to_blocks"]]
        grip_to_blocks = grip_to_blocks.reshape(grip_to_blocks.shape[:-1] + (2, 3))
        gap = obs["proprio"][..., PROPRIO_PARTS["finger_gap"]][..., 0]
        return jnp.any(self._held(grip_to_blocks, gap), axis=-1)

    def finger_gap(self, data: mjx.Data) -> jax.Array:
        """Distance (m) between the inner faces of the two fingers."""
        return jnp.sum(data.qpos[self.ids.finger_qpos]) + FINGER_CLOSED_GAP

    def render(self, data: mjx.Data, block_rgba: jax.Array) -> jax.Array:
        """The camera image of ``data`` with the episode's block colours: (H, W, 3) uint8."""
        if self.renderer is None:
            raise ValueError("this env renders no pixels: make it with image_size > 0")
        geom_rgba = self._geom_rgba.at[self.ids.block_geoms].set(block_rgba)
        return self.renderer.render_rgb(self.mjx_model, data, geom_rgba)

    def _observe(self, data: mjx.Data, block_rgba: jax.Array) -> dict[str, jax.Array]:
        ids = self.ids
        proprio = jnp.concatenate(
            [
                data.qpos[ids.arm_qpos],
                data.qvel[ids.arm_qvel],
                data.act,
                self.finger_gap(data)[None],
            ]
        )
        grip = data.site_xpos[ids.grip_site]
        blocks = data.qpos[ids.block_qpos]  # (2, 7)
        pos, quat = blocks[:, :3], blocks[:, 3:]
        quat = quat * jnp.where(quat[:, :1] < 0, -1.0, 1.0)  # q and -q are the same rotation
        features = jnp.concatenate(
            [grip, pos.ravel(), quat.ravel(), (pos - grip).ravel(), pos[1] - pos[0]]
        )
        obs = {"proprio": proprio.astype(jnp.float32), "features": features.astype(jnp.float32)}
        if self.renderer is not None:
            obs["pixels"] = self.render(data, block_rgba)
        return obs

    def _diagnostics(self, data: mjx.Data) -> dict[str, jax.Array]:
        """Task reward and shaped diagnostic terms (metrics only, never reward)."""
        ids, cfg = self.ids, self.config
        grip = data.site_xpos[ids.grip_site]
        pos = data.qpos[ids.block_qpos][:, :3]  # (2, 3)
        vel = data.qvel[ids.block_qvel]  # (2, 6): linear (world), angular (local)
        edge = 2 * ids.block_half_size

        grip_dist = jnp.linalg.norm(pos - grip, axis=-1)  # (2,)
        held = self._held(pos - grip, self.finger_gap(data))  # (2,)
        at_rest = (jnp.linalg.norm(vel[:, :3], axis=-1) < cfg.rest_linear_velocity) & (
            jnp.linalg.norm(vel[:, 3:], axis=-1) < cfg.rest_angular_velocity
        )
        xy_offset = jnp.linalg.norm(pos[0, :2] - pos[1, :2])
        dz = pos[:, 2] - pos[::-1, 2]  # (2,) block i's height above the other
        on_top = (xy_offset < cfg.stack_xy_tolerance) & (jnp.abs(dz - edge) < cfg.stack_z_tolerance)
        stacked = jnp.any(on_top & ~held & jnp.all(at_rest))
        return {
            "env/reach_dist": jnp.min(grip_dist),
            "env/grasped": jnp.any(held).astype(jnp.float32),
            "env/lift": jnp.max(pos[:, 2]) - ids.block_half_size,
            "env/align_xy": xy_offset,
            "env/stacked": stacked.astype(jnp.float32),
        }
