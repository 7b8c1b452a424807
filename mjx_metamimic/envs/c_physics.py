"""Physics on MuJoCo's C engine, called from inside jitted JAX code (``env.impl = "c"``).

A control step of a whole env batch is one ``jax.pure_callback``: the host loads every env's
integration state (time, qpos, qvel, act, ctrl, solver warm start) into a ``mujoco.batch.Batch``,
which steps all of them on a persistent thread pool of all cores, rounds the new state to
float32 and computes its kinematics (body, joint, geom, site and camera poses), and hands
both back. Under ``vmap`` the callback receives the whole batch at once, so a jitted training
chunk stays one program, and no physics is traced into it. Kinematics are a function of the
float32 state alone, so a restored state (``StackEnv.reset_to``, the same callback without
stepping) observes and steps bit for bit like the original.

``mjx.Data`` fields computed past kinematics (contacts, constraint forces, accelerations)
are not kept: observations, rewards, the demonstrator and the renderer read only these.
"""

import threading

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import batch as mj_batch
from mujoco import mjx

# mjx.Data fields of the integration state the C engine reads and writes.
STATE_FIELDS = ("qpos", "qvel", "act", "qacc_warmstart", "time")
# What a call reads: the integration state and the controls to hold during the step.
INPUT_FIELDS = ("qpos", "qvel", "act", "ctrl", "qacc_warmstart", "time")
# What mjx.kinematics and mjx.camlight compute, returned by the C engine instead.
KINEMATICS_FIELDS = (
    "xpos", "xquat", "xmat", "xipos", "ximat", "xanchor", "xaxis",
    "geom_xpos", "geom_xmat", "site_xpos", "site_xmat", "cam_xpos", "cam_xmat",
)  # fmt: skip
# Warnings after which MuJoCo resets a simulation to its initial state (mj_checkPos/Vel/Acc).
_RESET_WARNINGS = np.array(
    [
        int(mujoco.mjtWarning.mjWARN_BADQPOS),
        int(mujoco.mjtWarning.mjWARN_BADQVEL),
        int(mujoco.mjtWarning.mjWARN_BADQACC),
    ]
)


class BatchStepper:
    """Steps batches of one model ``n_substeps`` at a time on MuJoCo C's thread pool.

    One ``Batch`` is kept per batch size (training, evaluation and demo recording each step
    a fixed number of envs), each behind a lock: XLA may run two callbacks at once.

    Args:
      model: the MuJoCo model.
      n_substeps: physics steps per control step.
      shapes: per-env shape of each of ``STATE_FIELDS + KINEMATICS_FIELDS`` in ``mjx.Data``.
      nthread: threads stepping a batch (0: all cores).
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        n_substeps: int,
        shapes: dict[str, tuple[int, ...]],
        nthread: int = 0,
    ):
        self.model, self.n_substeps, self.shapes, self.nthread = model, n_substeps, shapes, nthread
        self._batches: dict[int, tuple[mj_batch.Batch, threading.Lock]] = {}
        self._guard = threading.Lock()

    def step(self, *inputs: np.ndarray) -> tuple[np.ndarray, ...]:
        """Host side: ``INPUT_FIELDS`` arrays with any leading batch shape -> the new state
        and its kinematics, float32, in the order ``STATE_FIELDS + KINEMATICS_FIELDS``.

        A simulation MuJoCo raises in, or one it found unstable (non-finite or huge
        positions, velocities or accelerations: it would silently reset it), comes back as
        NaN; the env then ends that episode.
        """
        return self._run(inputs, advance=True)

    def kinematics(self, *inputs: np.ndarray) -> tuple[np.ndarray, ...]:
        """Host side: the kinematics (``KINEMATICS_FIELDS``) of ``INPUT_FIELDS`` arrays."""
        return self._run(inputs, advance=False)

    def _batch(self, nsim: int) -> tuple[mj_batch.Batch, threading.Lock]:
        with self._guard:
            if nsim not in self._batches:
                sims = mj_batch.Batch(self.model, nsim, self.nthread)
                for name in KINEMATICS_FIELDS:  # derived fields are copied out once bound
                    sims.bind(name)
                self._batches[nsim] = (sims, threading.Lock())
            return self._batches[nsim]

    def _run(self, inputs: tuple[np.ndarray, ...], advance: bool) -> tuple[np.ndarray, ...]:
        lead = inputs[0].shape[:-1]
        nsim = int(np.prod(lead, dtype=np.int64))
        sims, lock = self._batch(nsim)
        with lock:
            for name, value in zip(INPUT_FIELDS, inputs, strict=True):
                bound = sims.bind(name)
                bound[...] = value.reshape(bound.shape)
            failed = np.zeros(nsim, bool)
            if advance:
                warnings_before = _reset_warnings(sims)
                try:
                    sims.step(nstep=self.n_substeps)
                except mj_batch.SimulationError as error:
                    failed[error.ids] = True
                failed |= _reset_warnings(sims) > warnings_before
                new_state = [np.array(sims.bind(n), np.float32) for n in STATE_FIELDS]
                # Kinematics of the float32 state, as reset_to computes them.
                sims.qpos[...] = new_state[0]
            sims.forward(stage=mujoco.mjtStage.mjSTAGE_POS)
            out = [np.array(sims.bind(n), np.float32) for n in KINEMATICS_FIELDS]
            if advance:
                out = new_state + out
        names = (STATE_FIELDS if advance else ()) + KINEMATICS_FIELDS
        out = [a.reshape(lead + tuple(self.shapes[n])) for n, a in zip(names, out, strict=True)]
        for array in out:
            array[failed.reshape(lead)] = np.nan
        return tuple(out)


def _reset_warnings(sims: mj_batch.Batch) -> np.ndarray:
    """(nsim,) count of warnings after which MuJoCo resets a simulation."""
    return sims.warning[:, _RESET_WARNINGS, 1].sum(axis=1)  # (lastinfo, number)


def _call(host_fn, names: tuple[str, ...], data: mjx.Data) -> mjx.Data:
    shapes = tuple(
        jax.ShapeDtypeStruct(getattr(data, name).shape, jnp.float32) for name in names
    )
    inputs = [getattr(data, name) for name in INPUT_FIELDS]
    new = jax.pure_callback(host_fn, shapes, *inputs, vmap_method="broadcast_all")
    return data.replace(**dict(zip(names, new, strict=True)))


def c_step(stepper: BatchStepper, data: mjx.Data) -> mjx.Data:
    """One control step of ``data`` (one env; vmap it) on the C engine: the integration
    state advances ``stepper.n_substeps`` physics steps; kinematics describe the new state."""
    return _call(stepper.step, STATE_FIELDS + KINEMATICS_FIELDS, data)


def c_kinematics(stepper: BatchStepper, data: mjx.Data) -> mjx.Data:
    """``data`` (one env; vmap it) with kinematics computed by the C engine."""
    return _call(stepper.kinematics, KINEMATICS_FIELDS, data)
