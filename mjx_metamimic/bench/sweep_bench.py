"""``mjx-metamimic bench sweep``: S seeds in one vmapped program against S runs one after
another, on the same work.

One run's training chunk (``train_chunk``, jitted, state donated) is timed alone; then the
chunk vmapped over S seeds' states (what ``mjx-metamimic sweep`` runs per cell). S runs
one after another take S times the single chunk's time for the same env steps and
updates, so ``speedup = S x t(single) / t(vmapped S)``, measured in the same process in
alternating rounds (best round of each). Demos are stand-ins of the real ones' shapes
(``reset_bank``); the replay is filled before timing so that every chunk learns.
"""

import dataclasses
import time

import jax
import jax.numpy as jnp
import tyro
from rich.console import Console
from rich.table import Table

from mjx_metamimic import configs
from mjx_metamimic.bench.common import reset_bank, write_json
from mjx_metamimic.training import build
from mjx_metamimic.training.config import TrainConfig


@dataclasses.dataclass(frozen=True)
class SweepBenchArgs:
    """Benchmark seeds vmapped in one program against the same seeds run one by one."""

    config: str = "features"
    """Run config (a name in train/ or a .toml path)."""
    seeds: tuple[int, ...] = (2, 4)
    """Numbers of vmapped seeds S to measure."""
    num_envs: int | None = None
    """Override the config's number of envs per seed (E)."""
    replay_capacity: int = 20_000
    """Replay capacity per seed (memory: S replays are held at once)."""
    seconds: float = 3.0
    """Minimum timed seconds per measurement and round."""
    rounds: int = 2
    """Rounds of alternating measurements (the best of each is reported)."""
    out: str = "bench_results/sweep.json"
    """Where to write the JSON results."""


def bench_config(args: SweepBenchArgs) -> TrainConfig:
    """The config with the benchmark's overrides."""
    overrides: dict = {"replay": {"capacity": args.replay_capacity, "min_size": 1}}
    if args.num_envs is not None:
        overrides["actors"] = {"num_envs": args.num_envs}
    return configs.from_dict(TrainConfig, overrides, base=configs.load(TrainConfig, args.config))


class SeedPrograms:
    """The training chunk for 1 seed (no seed axis) and for S vmapped seeds, each with a
    warmed-up state that can sample its replay."""

    def __init__(self, config: TrainConfig, seed_counts: tuple[int, ...], console: Console):
        self.algo = build(config)
        self.bank = reset_bank(self.algo.env, 16, 200)
        chunk = self.algo.train_chunk
        self.chunks = {1: jax.jit(chunk, donate_argnums=0)}
        self.states = {1: jax.jit(self.algo.init)(jax.random.PRNGKey(0), self.bank)}
        for s in seed_counts:
            self.chunks[s] = jax.jit(jax.vmap(chunk, (0, None)), donate_argnums=0)
            keys = jax.random.split(jax.random.PRNGKey(0), s)
            self.states[s] = jax.jit(jax.vmap(self.algo.init, (0, None)))(keys, self.bank)
        self.compile_s = {}
        for s in self.chunks:
            start = time.perf_counter()
            self._advance(s)
            self.compile_s[s] = time.perf_counter() - start
            while not bool(jnp.all(self.algo.replay.can_sample(self.states[s].replay))):
                self._advance(s)
            console.print(f"S={s}: compiled and filled in {self.compile_s[s]:.1f} s")

    def _advance(self, seeds: int) -> None:
        state, metrics = self.chunks[seeds](self.states[seeds], self.bank)
        self.states[seeds] = jax.block_until_ready(state)

    def seconds_per_chunk(self, seeds: int, min_seconds: float) -> float:
        """Mean seconds of one chunk of ``seeds`` seeds over >= ``min_seconds``."""
        calls, start = 0, time.perf_counter()
        while calls < 2 or time.perf_counter() - start < min_seconds:
            self._advance(seeds)
            calls += 1
        return (time.perf_counter() - start) / calls


def main(argv: list[str] | None = None) -> int:
    """Runs ``bench sweep`` and writes its JSON."""
    args = tyro.cli(SweepBenchArgs, args=argv, prog="mjx-metamimic bench sweep")
    if not args.seeds or min(args.seeds) < 2:
        raise ValueError(f"--seeds {args.seeds}: give seed counts >= 2 to compare with 1")
    console = Console()
    config = bench_config(args)
    programs = SeedPrograms(config, args.seeds, console)
    best = {s: float("inf") for s in programs.chunks}
    for _ in range(args.rounds):
        for s in best:
            best[s] = min(best[s], programs.seconds_per_chunk(s, args.seconds))
    cfg = config.actors, config.learner
    steps = cfg[0].num_envs * cfg[0].steps_per_chunk
    rows = []
    for s in args.seeds:
        rows.append(
            {
                "seeds": s,
                "vmapped_s_per_chunk": best[s],
                "sequential_s_per_chunk": s * best[1],
                "speedup": s * best[1] / best[s],
                "env_steps_per_s": s * steps / best[s],
                "updates_per_s": s * cfg[1].updates_per_chunk / best[s],
                "compile_s": programs.compile_s[s],
            }
        )
    table = Table(title=f"bench sweep: {config.name}, E={cfg[0].num_envs} envs per seed")
    for column in ("S", "vmapped s/chunk", "S runs s/chunk", "speedup", "env steps/s"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            str(row["seeds"]),
            f"{row['vmapped_s_per_chunk']:.3f}",
            f"{row['sequential_s_per_chunk']:.3f}",
            f"{row['speedup']:.2f}x",
            f"{row['env_steps_per_s']:.0f}",
        )
    console.print(f"1 seed: {best[1]:.3f} s/chunk ({steps / best[1]:.0f} env steps/s)")
    console.print(table)
    payload = {
        "benchmark": "sweep",
        "args": dataclasses.asdict(args),
        "single_s_per_chunk": best[1],
        "single_compile_s": programs.compile_s[1],
        "rows": rows,
    }
    console.print(f"results: {write_json(args.out, payload)}")
    return 0
