"""Physics on MJX's Warp engine (``env.impl = "warp"``): MuJoCo Warp's kernels, called
from the jitted program through JAX's FFI.

MuJoCo Warp is written for NVIDIA GPUs (MuJoCo Playground runs on it). Its kernels also
compile for CPUs (for debugging: 0.005–0.05x MuJoCo C here, docs/benchmarks.md). It needs
the optional ``warp-lang`` package (``pip install 'mjx-metamimic[warp]'``).

Unlike MJX's JAX engine, a Warp ``mjx.Data`` holds fixed-capacity buffers, sized when the
data is made (``make_template``): constraint rows per env, and one contact buffer shared by
every env of a ``vmap``ped batch (MJX keeps it unbatched), so it is sized for the most envs
stepped together. A full buffer drops contacts, and Warp prints an overflow warning.

These buffers (the Data's ``_impl``) are scratch: a step rebuilds them from the positions,
velocities, controls and solver warm start. So the env keeps its states without them
(``without_buffers``), and every env state stays an ordinary pytree batched on every leaf,
which the training loop selects and splits per env; ``step`` lends them from the template
for the physics. Warp has no ``camlight``: ``_refresh_kinematics`` recomputes the
(fixed-mode) camera poses in JAX after its ``kinematics``.
"""

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjx

# Contact and constraint rows per env. The scene's contacts are boxes on the table and on
# each other and two fingers on a block: MJX's JAX engine keeps 16 contact slots; Warp gets
# twice that, and 4 rows per pyramidal condim-3 contact plus the joint limits.
CONTACTS_PER_ENV = 32
CONSTRAINT_ROWS_PER_ENV = 160


def warp_installed() -> bool:
    """Whether MJX can use its Warp engine (the ``warp-lang`` package imports)."""
    try:
        import warp
    except ImportError:
        return False
    warp.config.log_level = warp.LOG_WARNING  # no banner or per-kernel compile lines
    import mujoco.mjx.warp as mjx_warp

    return bool(mjx_warp.WARP_INSTALLED)


def put_model(mj_model: mujoco.MjModel, device: jax.Device) -> mjx.Model:
    """The MJX model on the Warp engine; a clear error when ``warp-lang`` is missing or a
    camera is not fixed to its body (the only mode ``_refresh_kinematics`` computes)."""
    if not warp_installed():
        raise ValueError(
            "impl='warp' needs the warp-lang package: pip install 'mjx-metamimic[warp]'"
        )
    moving = [
        mujoco.mj_id2name(mj_model, mujoco.mjtObj.mjOBJ_CAMERA, i)
        for i in range(mj_model.ncam)
        if mj_model.cam_mode[i] != mujoco.mjtCamLight.mjCAMLIGHT_FIXED
    ]
    if moving:
        raise ValueError(f"impl='warp' supports fixed cameras only; not fixed: {moving}")
    model = mjx.put_model(mj_model, impl="warp", device=device)
    # The scene caps solver and line-search iterations (MuJoCo C stops there silently);
    # keep Warp's warnings for what drops physics: full contact or constraint buffers.
    from mujoco.mjx.third_party.mujoco_warp import OverflowType

    capped = OverflowType.ITERATIONS | OverflowType.LS_ITERATIONS
    options = model.opt._impl.replace(warn_overflow=int(OverflowType.ALL & ~capped))
    return model.replace(opt=model.opt.replace(_impl=options))


def make_template(mj_model: mujoco.MjModel, device: jax.Device, max_envs: int) -> mjx.Data:
    """An empty Warp ``mjx.Data`` of one env, its contact buffer sized for ``max_envs``
    envs stepped together."""
    return mjx.make_data(
        mj_model,
        impl="warp",
        device=device,
        naconmax=CONTACTS_PER_ENV * max_envs,
        njmax=CONSTRAINT_ROWS_PER_ENV,
    )


def _camera_frames(mj_model: mujoco.MjModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each camera's body id, position in its body's frame and rotation matrix there."""
    local_mats = np.zeros((mj_model.ncam, 9))
    for i in range(mj_model.ncam):
        mujoco.mju_quat2Mat(local_mats[i], mj_model.cam_quat[i])
    return (
        np.asarray(mj_model.cam_bodyid),
        np.asarray(mj_model.cam_pos, np.float32),
        local_mats.reshape(-1, 3, 3).astype(np.float32),
    )


def _refresh_kinematics(mjx_model: mjx.Model, mj_model: mujoco.MjModel, data: mjx.Data):
    """Body, geom and site poses of ``data``'s positions (Warp's ``kinematics``), and the
    camera poses that MuJoCo's ``camlight`` gives fixed cameras."""
    data = mjx.kinematics(mjx_model, data)
    body, pos, mat = _camera_frames(mj_model)
    body_mat = data.xmat[body]  # (ncam, 3, 3)
    cam_xpos = data.xpos[body] + jnp.einsum("cij,cj->ci", body_mat, pos)
    cam_xmat = jnp.einsum("cij,cjk->cik", body_mat, mat)
    return data.replace(cam_xpos=cam_xpos, cam_xmat=cam_xmat)


def without_buffers(data: mjx.Data) -> mjx.Data:
    """``data`` without Warp's contact and constraint buffers (``_impl``): what a step
    needs is in its public fields."""
    return data.replace(_impl=None)


def step(
    mjx_model: mjx.Model,
    mj_model: mujoco.MjModel,
    template: mjx.Data,
    data: mjx.Data,
    n_substeps: int,
) -> mjx.Data:
    """``n_substeps`` physics steps of ``data`` (kept ``without_buffers``) on Warp, with
    ``template``'s buffers, then the kinematics of the new state; returned without buffers."""
    data = data.replace(_impl=template._impl)
    data = jax.lax.fori_loop(0, n_substeps, lambda _, d: mjx.step(mjx_model, d), data)
    return without_buffers(_refresh_kinematics(mjx_model, mj_model, data))
