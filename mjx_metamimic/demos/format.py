"""The demonstration record (``Demos``) and its on-disk layout.

A dataset is a directory::

    manifest.json        format, version, fingerprints, counts, split, shard checksums
    shard-00000.npz      up to ``shard_size`` demos each (deflated .npy members with
    shard-00001.npz      fixed timestamps: the same demos always give the same bytes)
    ...

Each shard holds, for its n demos (T = max_steps, steps >= length repeat the last one):

    frames              (n, T, H, W, 3) uint8    the env's ``pixels`` observation
    proprio             (n, T, P)       float32  the env's proprio observation
    features            (n, T, F)       float32  privileged block poses (features configs)
    task_reward         (n, T)          float32  task reward of the observation at step t
    lengths             (n,)            int32    episode length L (1 <= L <= T)
    layout_seed         (n,)            uint32   seed of the layout and the demonstrator
    init_state.<field>  (n, ...)                 the env's SimState at step 0
    states.<field>      (n, T, ...)              the env's SimState at step t (optional)
    privileged_actions  (n, T, 7)       float32  the demonstrator's actions: D4PGfD only

MetaMimic learns from observations alone: ``load`` returns ``privileged_actions`` only
when asked for them explicitly. ``states`` (written since the demo-curriculum baseline,
absent in older datasets) let an env ``reset_to`` any step of a demo; ``load`` returns
them when stored (``Demos.states`` is None otherwise).

``Demos`` is one record type for demos wherever they are: numpy leaves on the host (a
recording, a loaded dataset) and jax leaves on device (``DemoBank``, see ``bank``).
"""

import dataclasses

import jax
import numpy as np
from flax import struct

from mjx_metamimic.envs.stack import SimState

FORMAT = "mjx_metamimic.demos"
VERSION = 1
MANIFEST = "manifest.json"
SPLITS = ("all", "train", "validation")
PRIVILEGED = "privileged_actions"
_INIT_PREFIX = "init_state."
_STATES_PREFIX = "states."
_OPTIONAL = ("init_state", "layout_seed", "states", PRIVILEGED)  # not in every record

Array = np.ndarray | jax.Array


class DemoDatasetError(ValueError):
    """A demo dataset is missing, corrupt, or does not match what was asked for."""


@struct.dataclass
class Demos:
    """A batch of demonstrations: numpy leaves on the host, jax leaves on device.

    A pytree: pass it through jit and scan. See the module docstring for the shapes.
    """

    frames: Array  # (N, T, H, W, 3) uint8 (H = W = 0: an env without pixels)
    proprio: Array  # (N, T, P) float32
    features: Array  # (N, T, F) float32
    task_reward: Array  # (N, T) float32
    lengths: Array  # (N,) int32
    init_state: SimState  # leaves (N, ...)
    layout_seed: Array | None = None  # (N,) uint32; host only (``to_device`` drops it)
    privileged_actions: Array | None = None  # (N, T, 7) float32; D4PGfD only
    states: SimState | None = None  # leaves (N, T, ...); None in older datasets

    @property
    def num_demos(self) -> int:
        return int(self.lengths.shape[0])

    @property
    def max_steps(self) -> int:
        return int(self.task_reward.shape[1])

    def to_device(self, device: jax.Device | None = None) -> "Demos":
        """These demos on ``device`` (default: the default device), for use inside jit.

        ``layout_seed`` stays behind: it only identifies a demo on the host.
        """
        return jax.device_put(self.replace(layout_seed=None), device)

    @staticmethod
    def from_demos(demos: "Demos", device: jax.Device | None = None) -> "Demos":
        """``demos.to_device(device)``: reads as ``DemoBank.from_demos(demos)``."""
        return demos.to_device(device)

    def take(self, indices) -> "Demos":
        """The demos at ``indices`` (a sequence of ints), in that order."""
        indices = np.asarray(indices, dtype=np.int64)
        return jax.tree.map(lambda x: x[indices], self)

    @staticmethod
    def concatenate(parts: list["Demos"]) -> "Demos":
        """Joins batches of host demos (same fields present) along the demo axis."""
        return jax.tree.map(lambda *xs: np.concatenate(xs), *parts)


def flatten(demos: Demos) -> dict[str, np.ndarray]:
    """The shard arrays of ``demos`` by name (optional ones only when present)."""
    arrays = {
        f.name: np.asarray(getattr(demos, f.name))
        for f in dataclasses.fields(Demos)
        if f.name not in _OPTIONAL
    }
    if demos.layout_seed is not None:
        arrays["layout_seed"] = np.asarray(demos.layout_seed)
    for f in dataclasses.fields(SimState):
        arrays[_INIT_PREFIX + f.name] = np.asarray(getattr(demos.init_state, f.name))
        if demos.states is not None:
            arrays[_STATES_PREFIX + f.name] = np.asarray(getattr(demos.states, f.name))
    if demos.privileged_actions is not None:
        arrays[PRIVILEGED] = np.asarray(demos.privileged_actions)
    return arrays


def _sim_state(arrays: dict[str, np.ndarray], prefix: str) -> SimState | None:
    """The SimState stored under ``prefix``, or None when none is."""
    names = [f.name for f in dataclasses.fields(SimState)]
    missing = [prefix + n for n in names if prefix + n not in arrays]
    if len(missing) == len(names):
        return None
    if missing:
        raise DemoDatasetError(f"incomplete simulator state: {missing} missing")
    return SimState(**{n: arrays[prefix + n] for n in names})


def unflatten(arrays: dict[str, np.ndarray]) -> Demos:
    """The ``Demos`` whose shard arrays are ``arrays`` (the inverse of ``flatten``).

    Raises:
      DemoDatasetError: a simulator state is stored only in part.
    """
    plain = {f.name: arrays[f.name] for f in dataclasses.fields(Demos) if f.name not in _OPTIONAL}
    return Demos(
        **plain,
        init_state=_sim_state(arrays, _INIT_PREFIX),
        layout_seed=arrays.get("layout_seed"),
        privileged_actions=arrays.get(PRIVILEGED),
        states=_sim_state(arrays, _STATES_PREFIX),
    )
