"""Physics on MuJoCo's C engine, called from inside jitted JAX code (``env.impl = "c"``).

A control step of a whole env batch is one ``jax.pure_callback``: the host loads every env's
integration state (time, qpos, qvel, act, ctrl, solver warm start) into a ``mujoco.batch.Batch``,
which steps all of them on a persistent thread pool of all cores, and hands the new state back.
Under ``vmap`` the callback receives the whole batch at once, so a jitted training chunk stays
one program. The C engine steps in float64 from the float32 state and rounds back: a restored
state (``StackEnv.reset_to``) steps bit for bit like the original, as with the JAX engine.

Only the integration state comes back; the env recomputes kinematics (body, site, geom and
camera poses) in JAX, so observations, rewards and rendering are shared with the JAX engine.
Fields computed past kinematics (contacts, constraint forces) are not kept in ``mjx.Data``.
"""

import threading

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import batch as mj_batch
from mujoco import mjx

# mjx.Data fields making up the integration state the C engine reads and writes.
STATE_FIELDS = ("qpos", "qvel", "act", "qacc_warmstart", "time")
# Warnings after which MuJoCo resets a simulation to its initial state (mj_checkPos/Vel/Acc).
_RESET_WARNINGS = np.array([
    int(mujoco.mjtWarning.mjWARN_BADQPOS),
    int(mujoco.mjtWarning.mjWARN_BADQVEL),
    int(mujoco.mjtWarning.mjWARN_BADQACC),
], dtype=int)


class BatchStepper:
    """Steps batches of one model ``n_substeps`` at a time on MuJoCo C's thread pool.

    One ``Batch`` is kept per batch size (training, evaluation and demo recording each step
    a fixed number of envs), each behind a lock: XLA may run two callbacks at once.
    """

    def __init__(self, model: mujoco.MjModel, n_substeps: int, nthread: int = 0):
        self.model, self.n_substeps, self.nthread = model, n_substeps, nthread
        self._batches: dict[int, tuple[mj_batch.Batch, threading.Lock]] = {}
        self._guard = threading.Lock()

    def _batch(self, nsim: int) -> tuple[mj_batch.Batch, threading.Lock]:
        with self._guard:
            if nsim not in self._batches:
                self._batches[nsim] = (
                    mj_batch.Batch(self.model, nsim, self.nthread),
                    threading.Lock(),
                )
            return self._batches[nsim]

    @staticmethod
    def _reset_warnings(sims: mj_batch.Batch) -> np.ndarray:
        """(nsim,) count of warnings after which MuJoCo resets a simulation."""
        return sims.warning[:, _RESET_WARNINGS, 1].sum(axis=1)  # (lastinfo, number)

    def __call__(self, qpos, qvel, act, ctrl, qacc_warmstart, time):
        """Host side: arrays with any leading batch shape -> the five new state arrays.

        A simulation MuJoCo raises in, or one it found unstable (non-finite or huge
        positions, velocities or accelerations: it would silently reset it), comes back as
        NaN; the env then ends that episode.
        """
        lead = qpos.shape[:-1]
        nsim = int(np.prod(lead, dtype=np.int64))
        sims, lock = self._batch(nsim)
        with lock:
            sims.qpos[:] = qpos.reshape(nsim, -1)
            sims.qvel[:] = qvel.reshape(nsim, -1)
            sims.act[:] = act.reshape(nsim, -1)
            sims.ctrl[:] = ctrl.reshape(nsim, -1)
            sims.qacc_warmstart[:] = qacc_warmstart.reshape(nsim, -1)
            sims.time[:] = time.reshape(sims.time.shape)
            warnings_before = self._reset_warnings(sims)
            failed = np.zeros(nsim, bool)
            try:
                sims.step(nstep=self.n_substeps)
            except mj_batch.SimulationError as error:
                failed[error.ids] = True
            failed |= self._reset_warnings(sims) > warnings_before
            out = [np.array(getattr(sims, name), dtype=np.float32) for name in STATE_FIELDS]
        for array in out:
            array[failed] = np.nan
        return tuple(a.reshape(*lead, *a.shape[1:]) for a in out[:-1]) + (
            out[-1].reshape(lead),
        )


def c_step(stepper: BatchStepper, data: mjx.Data) -> mjx.Data:
    """One control step of ``data`` (one env; vmap it) on the C engine: the integration
    state advances ``stepper.n_substeps`` physics steps; derived fields are left stale."""
    shapes = tuple(
        jax.ShapeDtypeStruct(getattr(data, name).shape, jnp.float32) for name in STATE_FIELDS
    )
    new = jax.pure_callback(
        stepper,
        shapes,
        data.qpos,
        data.qvel,
        data.act,
        data.ctrl,
        data.qacc_warmstart,
        data.time,
        vmap_method="broadcast_all",
    )
    return data.replace(**dict(zip(STATE_FIELDS, new, strict=True)))
