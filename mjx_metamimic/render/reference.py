"""MuJoCo's own OpenGL renderer (``mujoco.Renderer``) as a reference, in a child process.

MuJoCo fixes its OpenGL backend (``MUJOCO_GL``) when ``mujoco`` is first imported, and
this package imports it early; a child process can still pick a headless backend
(OSMesa by default, or whatever ``MUJOCO_GL`` says). Used by the fidelity tests and the
render benchmark: ``python -m mjx_metamimic.render.reference IN.npz OUT.npz``.
"""

import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mujoco
import numpy as np


class ReferenceUnavailable(RuntimeError):
    """MuJoCo's OpenGL renderer could not run (no usable OpenGL backend)."""


@dataclasses.dataclass(frozen=True)
class ReferenceFrames:
    """MuJoCo's renders of ``n`` states."""

    rgb: np.ndarray | None
    """(n, H, W, 3) uint8, or None when only timing was asked for."""
    depth: np.ndarray | None
    """(n, H, W) float32 depth along the camera axis (m), MuJoCo's convention."""
    segmentation: np.ndarray | None
    """(n, H, W) int32 geom id, -1 for background."""
    images_per_second: float | None
    """rgb frames/s of ``update_scene`` + ``render`` cycling over the states, if timed."""


def render_reference(
    model: mujoco.MjModel,
    qpos: np.ndarray,
    height: int,
    width: int,
    camera: str,
    geom_rgba: np.ndarray | None = None,
    *,
    frames: bool = True,
    time_seconds: float = 0.0,
    timeout: float = 600.0,
) -> ReferenceFrames:
    """Renders states with ``mujoco.Renderer`` in a child process.

    Args:
      model: the model (sent to the child as an MJB).
      qpos: (n, nq) joint positions; kinematics and cameras are computed from them.
      height: image rows.
      width: image columns.
      camera: camera name.
      geom_rgba: optional (n, ngeom, 4) per-state geom colours.
      frames: return rgb, depth and segmentation of every state.
      time_seconds: if > 0, also time rgb rendering for this long.
      timeout: seconds before the child is abandoned.

    Raises:
      ReferenceUnavailable: the child could not create an OpenGL context.
    """
    with tempfile.TemporaryDirectory() as tmp:
        size = mujoco.mj_sizeModel(model)
        mjb = np.empty(size, np.uint8)
        mujoco.mj_saveModel(model, None, mjb)
        inputs = Path(tmp) / "in.npz"
        outputs = Path(tmp) / "out.npz"
        np.savez(
            inputs,
            mjb=mjb,
            qpos=np.asarray(qpos, np.float64),
            rgba=np.zeros(0) if geom_rgba is None else np.asarray(geom_rgba, np.float32),
            shape=np.array([height, width]),
            camera=np.array(camera),
            frames=np.array(frames),
            time_seconds=np.array(time_seconds),
        )
        env = dict(os.environ)
        env.setdefault("MUJOCO_GL", "osmesa")
        cmd = [sys.executable, "-m", __name__, str(inputs), str(outputs)]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            last_line = (done.stderr.strip().splitlines() or ["no error output"])[-1]
            raise ReferenceUnavailable(
                f"MuJoCo's renderer failed (MUJOCO_GL={env['MUJOCO_GL']}; on Linux install "
                f"libosmesa6 or EGL): {last_line[-500:]}"
            )
        with np.load(outputs) as out:
            arrays = {k: out[k] if out[k].size else None for k in out.files}
    ips = arrays["images_per_second"]
    return ReferenceFrames(
        rgb=arrays["rgb"],
        depth=arrays["depth"],
        segmentation=arrays["segmentation"],
        images_per_second=None if ips is None else float(ips),
    )


def _child(inputs: str, outputs: str) -> None:
    with np.load(inputs) as arrays:
        args = {k: arrays[k] for k in arrays.files}
    with tempfile.NamedTemporaryFile(suffix=".mjb") as f:
        f.write(args["mjb"].tobytes())
        f.flush()
        model = mujoco.MjModel.from_binary_path(f.name)
    height, width = (int(x) for x in args["shape"])
    camera = str(args["camera"])
    rgba = args["rgba"] if args["rgba"].size else None
    datas = []
    for q in args["qpos"]:
        data = mujoco.MjData(model)
        data.qpos[:] = q
        mujoco.mj_kinematics(model, data)
        mujoco.mj_camlight(model, data)
        datas.append(data)
    renderer = mujoco.Renderer(model, height, width)

    def draw(i, mode):
        if rgba is not None:
            model.geom_rgba[:] = rgba[i]
        renderer.disable_depth_rendering()
        renderer.disable_segmentation_rendering()
        if mode == "depth":
            renderer.enable_depth_rendering()
        elif mode == "segmentation":
            renderer.enable_segmentation_rendering()
        renderer.update_scene(datas[i], camera)
        image = renderer.render()
        return image[..., 0] if mode == "segmentation" else image

    out = {"rgb": np.zeros(0), "depth": np.zeros(0), "segmentation": np.zeros(0)}
    if bool(args["frames"]):
        for mode in out:
            out[mode] = np.stack([draw(i, mode).copy() for i in range(len(datas))])
    ips = np.zeros(0)
    seconds = float(args["time_seconds"])
    if seconds > 0:
        draw(0, "rgb")  # warm up
        count, start = 0, time.perf_counter()
        while count < 10 or time.perf_counter() - start < seconds:
            draw(count % len(datas), "rgb")
            count += 1
        ips = np.array(count / (time.perf_counter() - start))
    renderer.close()
    np.savez(outputs, images_per_second=ips, **out)


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2])
