"""Several processes (hosts) training one run: ``jax.distributed`` and what differs between
the processes.

Every process runs the same program on its own devices; the mesh spans all of them
(``jax.devices()``). Process 0 writes the run directory's logs, evaluation, plots and video;
process ``i`` > 0 writes its logs under ``<run dir>/process-<i>``. Checkpoints are written by
all processes together (orbax: each its own shards, process 0 the metadata), so the run
directory must be on a filesystem every host sees. Each process loads the demos itself.

Started from the environment, before JAX uses any device:

* ``JAX_COORDINATOR_ADDRESS`` (``host:port`` of process 0), ``JAX_NUM_PROCESSES`` and
  ``JAX_PROCESS_ID``: any launcher (ssh, a job script);
* or a cluster JAX detects by itself (SLURM with several tasks, Open MPI, ...).
"""

import os

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

ADDRESS, COUNT, INDEX = "JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"


def initialize_from_env() -> bool:
    """Joins the processes of a multi-process run when the environment describes one;
    returns whether it did (False: a single process).

    Raises:
      ValueError: ``JAX_COORDINATOR_ADDRESS`` is set without the process count and index.
    """
    if os.environ.get(ADDRESS):
        missing = [name for name in (COUNT, INDEX) if not os.environ.get(name)]
        if missing:
            raise ValueError(f"{ADDRESS} is set but {' and '.join(missing)} is not")
        jax.distributed.initialize(
            os.environ[ADDRESS], int(os.environ[COUNT]), int(os.environ[INDEX])
        )
        return True
    cluster_size = os.environ.get("SLURM_NTASKS") or os.environ.get("OMPI_COMM_WORLD_SIZE")
    if cluster_size and int(cluster_size) > 1:
        jax.distributed.initialize()  # JAX reads the cluster's own variables
        return True
    return False


def is_primary() -> bool:
    """Whether this is process 0 (the one that writes the run directory's files)."""
    return jax.process_index() == 0


def replicated(tree, mesh: Mesh):
    """Every leaf as one array replicated on all of ``mesh``'s devices (each process gives
    the whole value: the same on all of them)."""
    sharding = NamedSharding(mesh, P())
    return jax.tree.map(
        lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), tree
    )


def agree(flag: bool) -> bool:
    """Process 0's ``flag`` on every process (all must take the same branch of a loop that
    runs collective programs); ``flag`` itself with one process."""
    if jax.process_count() == 1:
        return flag
    return bool(multihost_utils.broadcast_one_to_all(np.asarray(flag)))


def shared_path(path, max_bytes: int = 4096):
    """Process 0's ``path`` (e.g. the run directory it created) on every process."""
    if jax.process_count() == 1:
        return path
    data = np.zeros(max_bytes, np.uint8)
    encoded = str(path).encode()
    data[: len(encoded)] = np.frombuffer(encoded, np.uint8)
    data = multihost_utils.broadcast_one_to_all(data)
    return type(path)(bytes(np.asarray(data)).rstrip(b"\0").decode())


def barrier(name: str) -> None:
    """Waits until every process got here (no-op with one process)."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)
