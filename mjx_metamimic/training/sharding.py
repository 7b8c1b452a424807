"""Data parallelism over a device mesh (``jax.sharding``): one program, many devices.

A mesh has one axis, ``data``. The training state keeps the layout of a one-device run,
so checkpoints move between device counts: the per-env leaves (env states, demo indices,
steps, the replay's per-env rows) are split along their env axis across the devices
(``PartitionSpec("data")``), everything else (learners, the replay's write position, the
key, the counters) is replicated. ``shard_map`` runs ``MetaMimic``'s chunk on each
device's share: its envs, its replay shard (frames stay where they were rendered), its
part of each learner batch; the learners sum their gradients across the axis (``psum``).

Each device's randomness is the run key folded with its index, so a D-device run equals
the same D-way split computed on one device (``vmap`` with the axis name; tested), not a
one-device run of the same config: that samples each batch from the whole replay at once
where D devices take an equal share from each shard.
"""

import dataclasses

import jax
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from mjx_metamimic.replay import ReplayState
from mjx_metamimic.training.config import TrainConfig
from mjx_metamimic.training.system import DATA_AXIS as AXIS
from mjx_metamimic.training.system import TrainState


def mesh_devices(config: TrainConfig) -> list[jax.Device]:
    """The devices of ``config.mesh`` (the first ``mesh.devices`` of ``jax.devices()``).

    Raises:
      ValueError: more devices asked for than are visible, or a count the envs or the
        batch do not split across.
    """
    visible = jax.devices()
    wanted = config.mesh.devices or len(visible)
    if wanted > len(visible):
        kind = visible[0].platform
        hint = (
            " (on a CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N simulates N)"
            if kind == "cpu"
            else ""
        )
        raise ValueError(
            f"mesh.devices={wanted} but {len(visible)} {kind} device(s) are visible{hint}"
        )
    problems = config.split_problems(wanted)  # mesh.devices = 0: checked only now
    if problems:
        raise ValueError("; ".join(problems))
    return visible[:wanted]


def per_device_config(config: TrainConfig, num_devices: int) -> TrainConfig:
    """What one of ``num_devices`` devices runs: its share of the envs, of each batch and
    of the replay (same steps per env row and the same fill level before learning).

    Raises:
      ValueError: the envs' split into imitation, task and gripper-guided actors, or the
        demo share of each batch, would differ between devices and the whole.
    """
    if num_devices == 1:
        return config
    envs = config.actors.num_envs // num_devices
    steps_per_row = config.replay.capacity // config.actors.num_envs
    min_steps_per_row = -(-config.replay.min_size // config.actors.num_envs)
    local = dataclasses.replace(
        config,
        actors=dataclasses.replace(config.actors, num_envs=envs),
        learner=dataclasses.replace(
            config.learner, batch_size=config.learner.batch_size // num_devices
        ),
        replay=dataclasses.replace(
            config.replay,
            capacity=steps_per_row * envs,
            min_size=min(min_steps_per_row, steps_per_row) * envs,
        ),
        mesh=dataclasses.replace(config.mesh, devices=1),
    )
    for what, whole, part in (
        ("task-actor envs", config.num_task_envs, local.num_task_envs),
        ("demo transitions per batch", config.demo_batch_size, local.demo_batch_size),
        ("gripper-guided envs", guided_envs(config), guided_envs(local)),
    ):
        if whole != part * num_devices:
            raise ValueError(
                f"{num_devices} devices would get {part} {what} each, not {whole} in all: "
                "pick actors.num_envs / learner.batch_size that split evenly"
            )
    return local


def guided_envs(config: TrainConfig) -> int:
    """Imitation-actor envs whose gripper follows the goal (``actors.gripper_guided_fraction``)."""
    imitation_envs = config.actors.num_envs - config.num_task_envs
    return round(config.actors.gripper_guided_fraction * imitation_envs)


def make_mesh(devices: list[jax.Device]) -> Mesh:
    """A one-axis (``data``) mesh over ``devices``."""
    return Mesh(devices, (AXIS,))


def state_specs() -> TrainState:
    """``PartitionSpec``s of a ``TrainState`` (a prefix tree of it): the per-env leaves
    split on ``data``, the rest replicated."""
    return TrainState(
        learners=P(),
        replay=ReplayState(experience=P(AXIS), current_index=P(), is_full=P()),
        env_state=P(AXIS),
        demo_idx=P(AXIS),
        t=P(AXIS),
        key=P(),
        env_steps=P(),
        updates=P(),
        chunks=P(),
    )


def sharded_fns(algo, mesh: Mesh):
    """``algo``'s ``init`` and ``train_chunk`` as jitted programs over ``mesh``: ``init(key,
    bank) -> state`` and ``chunk(state, bank) -> (state, metrics)`` (state donated).

    Args:
      algo: a ``MetaMimic`` built for one device's share (``build(config, num_devices)``).
      mesh: the mesh whose ``data`` axis it runs on.
    """
    specs = state_specs()

    def shard(fn, in_specs, out_specs):
        # Replication is by construction (summed gradients, the shared key), and the
        # C engine's callback has no replication rule: no check.
        return jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)

    init = jax.jit(shard(algo.init, (P(), P()), specs))
    chunk = jax.jit(shard(algo.train_chunk, (specs, P()), (specs, P())), donate_argnums=0)
    return init, chunk
