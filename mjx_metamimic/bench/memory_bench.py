"""``mjx-metamimic bench memory``: the device memory a config needs per device of a mesh.

Computed, not measured on the accelerator: the training state's parts from their shapes
(``jax.eval_shape`` of one device's ``init``: replay shard, envs, learners with targets and
Adam moments), the demos every device holds, and the learner update's working memory
(activations, gradients) from XLA's ``memory_analysis`` of the compiled update at one
device's batch. XLA's figure is the compiling backend's (run it on the accelerator for
that backend's); the state's bytes are the same everywhere.
"""

import dataclasses
import math

import jax
import numpy as np
import tyro
from rich.console import Console
from rich.table import Table

from mjx_metamimic import configs
from mjx_metamimic.bench.common import reset_bank, write_json
from mjx_metamimic.training import build
from mjx_metamimic.training.config import TrainConfig
from mjx_metamimic.training.system import DATA_AXIS


@dataclasses.dataclass(frozen=True)
class MemoryArgs:
    """Device memory of a config, per device of a mesh."""

    config: str = "paper"
    """Run config (a name in train/ or a .toml path)."""
    devices: tuple[int, ...] = (1, 8)
    """Device counts to compute it for (the config's envs and batch split across them)."""
    update_memory: bool = True
    """Also compile the learner update for XLA's working-memory figure (slow for big torsos)."""
    out: str = "bench_results/memory.json"
    """Where to write the JSON results."""


def gib(tree) -> float:
    """Bytes of every array (or shape) in ``tree``, in GiB."""
    leaves = jax.tree.leaves(tree)
    return sum(math.prod(x.shape) * np.dtype(x.dtype).itemsize for x in leaves) / 2**30


def per_device(config: TrainConfig, devices: int, update_memory: bool) -> dict:
    """GiB per device of each part of the run on ``devices`` devices."""
    config = configs.from_dict(TrainConfig, {"mesh": {"devices": devices}}, base=config)
    algo = build(config, devices)
    bank = jax.eval_shape(lambda: reset_bank(algo.env, config.demos.num, config.demos.max_steps))
    init = jax.vmap(algo.init, (None, None), axis_name=DATA_AXIS, axis_size=1)
    state = jax.eval_shape(init, jax.random.PRNGKey(0), bank)
    row = {
        "devices": devices,
        "envs": algo.config.actors.num_envs,
        "batch": algo.config.learner.batch_size,
        "replay_gib": gib(state.replay),
        "learners_gib": gib(state.learners),
        "envs_gib": gib(state.env_state),
        "demos_gib": gib(bank),
    }
    if update_memory:
        sample = jax.vmap(algo.sample_learner_batch, (0, None, None), axis_name=DATA_AXIS)
        batch, key = jax.eval_shape(sample, state.replay, bank, jax.random.PRNGKey(0))
        update = jax.vmap(algo.learners.update, axis_name=DATA_AXIS)
        compiled = jax.jit(update).lower(state.learners, batch, key).compile()
        row["update_working_gib"] = compiled.memory_analysis().temp_size_in_bytes / 2**30
    row["total_gib"] = sum(v for k, v in row.items() if k.endswith("_gib"))
    return row


def main(argv: list[str] | None = None) -> int:
    """Runs ``bench memory`` and writes its JSON."""
    args = tyro.cli(MemoryArgs, args=argv, prog="mjx-metamimic bench memory")
    config = configs.load(TrainConfig, args.config)
    console = Console()
    rows = [per_device(config, d, args.update_memory) for d in args.devices]
    table = Table(title=f"bench memory: {args.config}, GiB per device")
    columns = [k for k in rows[0] if k not in ("devices", "envs", "batch")]
    for column in ("devices", "envs", "batch", *columns):
        table.add_column(column.removesuffix("_gib").removesuffix("_working"), justify="right")
    for row in rows:
        cells = [f"{row[c]:.2f}" for c in columns]
        table.add_row(str(row["devices"]), str(row["envs"]), str(row["batch"]), *cells)
    console.print(table)
    payload = {"benchmark": "memory", "args": dataclasses.asdict(args), "rows": rows}
    console.print(f"results: {write_json(args.out, payload)}")
    return 0
