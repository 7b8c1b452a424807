"""The stacking scene: loading the MJCF and the static MuJoCo ids the env needs.

Ids and address ranges are computed once, in numpy, at construction; traced code only
indexes with them.
"""

import dataclasses
from pathlib import Path

import mujoco
import numpy as np

from mjx_metamimic.resources import data_dir

ARM_JOINTS = ("shoulder_pan", "shoulder_lift", "elbow", "wrist_pitch", "wrist_yaw", "wrist_roll")
FINGER_JOINTS = ("finger_left", "finger_right")
BLOCKS = ("block_a", "block_b")
FINGER_GEOMS = ("finger_left", "finger_right")

# Gap between the inner faces of the fingers when both finger joints are at 0 (m).
FINGER_CLOSED_GAP = 0.004


def scene_path(name: str = "stack") -> Path:
    """Returns the path of the shipped MJCF scene ``envs/<name>.xml``."""
    path = data_dir("envs") / f"{name}.xml"
    if not path.is_file():
        raise FileNotFoundError(f"scene {name!r} not found: {path} does not exist")
    return path


@dataclasses.dataclass(frozen=True)
class SceneIds:
    """Static indices into MuJoCo's arrays for the stacking scene (numpy, never traced)."""

    arm_qpos: np.ndarray  # (6,) qpos addresses of the arm joints
    arm_qvel: np.ndarray  # (6,) dof addresses of the arm joints
    arm_range: np.ndarray  # (6, 2) joint limits (rad)
    finger_qpos: np.ndarray  # (2,) qpos addresses of the finger slide joints
    finger_qvel: np.ndarray  # (2,)
    finger_range: np.ndarray  # (2,) upper joint limit of each finger (m)
    arm_actuators: np.ndarray  # (6,) actuator ids of the arm (intvelocity)
    finger_actuators: np.ndarray  # (2,) actuator ids of the fingers (position)
    block_qpos: np.ndarray  # (2, 7) qpos addresses of each block's free joint
    block_qvel: np.ndarray  # (2, 6) dof addresses of each block's free joint
    block_geoms: np.ndarray  # (2,) geom ids of the blocks
    block_half_size: float  # half edge length of a block (m)
    finger_geoms: np.ndarray  # (2,)
    grip_site: int  # site between the fingers, where a grasped block's centre sits

    @classmethod
    def from_model(cls, model: mujoco.MjModel) -> "SceneIds":
        """Looks every named element up; raises KeyError naming any missing one."""

        def joint(name):
            return model.joint(name)

        arm = [joint(n) for n in ARM_JOINTS]
        fingers = [joint(n) for n in FINGER_JOINTS]
        blocks = [joint(n) for n in BLOCKS]
        block_geoms = np.array([model.geom(n).id for n in BLOCKS])
        half_sizes = model.geom_size[block_geoms]
        if not np.allclose(half_sizes, half_sizes[0, 0]):
            raise ValueError(f"blocks must be equal cubes, got half sizes {half_sizes.tolist()}")
        return cls(
            arm_qpos=np.array([j.qposadr[0] for j in arm]),
            arm_qvel=np.array([j.dofadr[0] for j in arm]),
            arm_range=np.array([j.range for j in arm]),
            finger_qpos=np.array([j.qposadr[0] for j in fingers]),
            finger_qvel=np.array([j.dofadr[0] for j in fingers]),
            finger_range=np.array([j.range[1] for j in fingers]),
            arm_actuators=np.array([model.actuator(n).id for n in ARM_JOINTS]),
            finger_actuators=np.array([model.actuator(n).id for n in FINGER_JOINTS]),
            block_qpos=np.array([j.qposadr[0] + np.arange(7) for j in blocks]),
            block_qvel=np.array([j.dofadr[0] + np.arange(6) for j in blocks]),
            block_geoms=block_geoms,
            block_half_size=float(half_sizes[0, 0]),
            finger_geoms=np.array([model.geom(n).id for n in FINGER_GEOMS]),
            grip_site=model.site("grip").id,
        )


def load_model(name: str = "stack") -> mujoco.MjModel:
    """Loads the shipped scene ``name`` as a MuJoCo model."""
    return mujoco.MjModel.from_xml_path(str(scene_path(name)))
