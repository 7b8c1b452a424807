"""``mjx-metamimic bench scaling``: the training chunk on 1, 2, 4, ... devices of a mesh.

For each device count D the run's chunk runs under ``shard_map`` (``training.sharding``)
on the first D devices, and its env steps/s and updates/s are reported as ratios against
D = 1 measured in the same process, in alternating rounds (best round of each).
``--split strong`` keeps the config's envs and batch and splits them (the same work on
more devices); ``--split weak`` gives every device the config's envs and batch (D times
the work: what one buys more accelerators for). Demos are stand-ins of the real ones'
shapes (``reset_bank``); the replay is filled before timing so that every chunk learns.

On a CPU the devices are simulated (``--xla_force_host_platform_device_count``, set here
before JAX starts): they share the machine's cores, so the ratios show the mesh's
overhead, not a speed-up. The same command on a multi-GPU host measures real scaling.
"""

import dataclasses
import os
import time
from typing import Literal

import jax
import jax.numpy as jnp
import tyro
from rich.console import Console
from rich.table import Table

from mjx_metamimic import configs
from mjx_metamimic.bench.common import reset_bank, write_json
from mjx_metamimic.training import build, sharding
from mjx_metamimic.training.config import TrainConfig


@dataclasses.dataclass(frozen=True)
class ScalingArgs:
    """Benchmark the training chunk on 1, 2, 4, ... devices of a mesh."""

    config: str = "features"
    """Run config (a name in train/ or a .toml path)."""
    devices: tuple[int, ...] = (1, 2, 4)
    """Device counts to measure (1, the baseline, is always measured)."""
    split: Literal["strong", "weak"] = "strong"
    """strong: the config's envs and batch split across the devices; weak: each device
    gets the config's envs and batch."""
    num_envs: int | None = None
    """Override the config's number of envs (per device with ``--split weak``)."""
    replay_capacity: int = 20_000
    """Replay capacity (per device with ``--split weak``)."""
    seconds: float = 3.0
    """Minimum timed seconds per measurement and round."""
    rounds: int = 2
    """Rounds of alternating measurements (the best of each is reported)."""
    out: str = "bench_results/scaling.json"
    """Where to write the JSON results."""


def force_host_devices(count: int) -> None:
    """Asks XLA:CPU for ``count`` host devices: read when JAX's backend starts (the first
    device query), so this must come before; a count already in ``XLA_FLAGS`` wins."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={count}"


def config_on(args: ScalingArgs, devices: int) -> TrainConfig:
    """The benchmark's config on ``devices`` devices."""
    base = configs.load(TrainConfig, args.config)
    envs = args.num_envs or base.actors.num_envs
    batch, capacity = base.learner.batch_size, args.replay_capacity
    if args.split == "weak":
        envs, batch, capacity = envs * devices, batch * devices, capacity * devices
    overrides = {
        "actors": {"num_envs": envs},
        "learner": {"batch_size": batch},
        "replay": {"capacity": capacity, "min_size": 1},
        "mesh": {"devices": devices},
    }
    return configs.from_dict(TrainConfig, overrides, base=base)


class MeshProgram:
    """The chunk of ``config`` on its mesh, with a state whose replay can sample."""

    def __init__(self, config: TrainConfig):
        self.config = config
        devices = sharding.mesh_devices(config)
        self.algo = build(config, len(devices))
        self.bank = reset_bank(self.algo.env, 16, 200)
        if len(devices) == 1:  # the baseline: a one-device run's programs
            init = jax.jit(self.algo.init)
            self.chunk = jax.jit(self.algo.train_chunk, donate_argnums=0)
        else:
            init, self.chunk = sharding.sharded_fns(self.algo, sharding.make_mesh(devices))
        self.state = init(jax.random.PRNGKey(0), self.bank)
        start = time.perf_counter()
        self.advance()
        self.compile_s = time.perf_counter() - start
        while not bool(jnp.all(self.algo.replay.can_sample(self.state.replay))):
            self.advance()

    def advance(self) -> None:
        """One chunk."""
        self.state, _ = self.chunk(self.state, self.bank)
        jax.block_until_ready(self.state)

    def seconds_per_chunk(self, min_seconds: float) -> float:
        """Mean seconds of one chunk over >= ``min_seconds``."""
        calls, start = 0, time.perf_counter()
        while calls < 2 or time.perf_counter() - start < min_seconds:
            self.advance()
            calls += 1
        return (time.perf_counter() - start) / calls


def main(argv: list[str] | None = None) -> int:
    """Runs ``bench scaling`` and writes its JSON."""
    args = tyro.cli(ScalingArgs, args=argv, prog="mjx-metamimic bench scaling")
    counts = sorted({1, *args.devices})
    if counts[0] < 1:
        raise ValueError(f"--devices {args.devices}: device counts must be >= 1")
    force_host_devices(counts[-1])
    console = Console()
    programs = {}
    for d in counts:
        programs[d] = MeshProgram(config_on(args, d))
        console.print(f"{d} device(s): compiled in {programs[d].compile_s:.1f} s")
    best = {d: float("inf") for d in counts}
    for _ in range(args.rounds):
        for d in counts:
            best[d] = min(best[d], programs[d].seconds_per_chunk(args.seconds))
    rows = []
    for d in counts:
        cfg = programs[d].config
        env_steps = cfg.actors.num_envs * cfg.actors.steps_per_chunk / best[d]
        updates = cfg.learner.updates_per_chunk / best[d]
        rows.append(
            {
                "devices": d,
                "num_envs": cfg.actors.num_envs,
                "batch_size": cfg.learner.batch_size,
                "s_per_chunk": best[d],
                "env_steps_per_s": env_steps,
                "updates_per_s": updates,
                "compile_s": programs[d].compile_s,
            }
        )
    base = rows[0]
    for row in rows:
        row["env_steps_ratio"] = row["env_steps_per_s"] / base["env_steps_per_s"]
        row["updates_ratio"] = row["updates_per_s"] / base["updates_per_s"]
    kind = jax.devices()[0].device_kind
    table = Table(title=f"bench scaling: {args.config}, {args.split} split, {kind}")
    for column in ("devices", "envs", "batch", "s/chunk", "env steps/s", "ratio",
                   "updates/s", "ratio"):  # fmt: skip
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            str(row["devices"]), str(row["num_envs"]), str(row["batch_size"]),
            f"{row['s_per_chunk']:.3f}", f"{row['env_steps_per_s']:.0f}",
            f"{row['env_steps_ratio']:.2f}x", f"{row['updates_per_s']:.1f}",
            f"{row['updates_ratio']:.2f}x",
        )  # fmt: skip
    console.print(table)
    payload = {"benchmark": "scaling", "args": dataclasses.asdict(args), "rows": rows}
    console.print(f"results: {write_json(args.out, payload)}")
    return 0
