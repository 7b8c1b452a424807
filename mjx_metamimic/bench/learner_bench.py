"""``mjx-metamimic bench learner``: D4PG updates/s per network preset and batch size, the
FLOP/s they achieve against a large matmul measured in the same run, and replay
add+sample/s with 64x64 frames at 100k capacity."""

import dataclasses
import functools
import os
import time

import jax
import jax.numpy as jnp
import tyro
from rich.console import Console
from rich.table import Table

from mjx_metamimic.agents import D4PG, D4PGConfig, scan_updates
from mjx_metamimic.bench.common import time_calls, write_json
from mjx_metamimic.networks import NetworkConfig, preset_stats, stats_table
from mjx_metamimic.replay import (
    NStepBatch,
    NStepReplay,
    ReplayConfig,
    Transition,
    memory_estimate,
)

PROPRIO_DIM, ACTION_DIM = 16, 7


@dataclasses.dataclass(frozen=True)
class LearnerBenchArgs:
    """Benchmark the imitation learner's D4PG update and the replay."""

    presets: tuple[str, ...] = ("small", "impala", "paper")
    """Conv torso presets to measure (tiny, small, impala, paper)."""
    batch_sizes: tuple[int, ...] = (32, 256)
    """Learner batch sizes."""
    image_size: int = 64
    """Square frame size; observation and goal frames are stacked (S x S x 6)."""
    norm: str = "instance"
    """Normalisation between conv layers."""
    shared_torso: bool = False
    """One encoder for the actor and the critic (``NetworkConfig.shared_torso``)."""
    updates_per_call: int = 4
    """Updates per jitted call (lax.scan over distinct batches)."""
    seconds: float = 5.0
    """Minimum timed seconds per measurement, after the compiling call."""
    budget_s: float = 90.0
    """Skip a measurement whose estimated run time (two calls) exceeds this."""
    assumed_efficiency: float = 0.3
    """Fraction of the matmul FLOP/s assumed when estimating run time before measuring."""
    matmul_size: int = 2048
    """Side of the float32 square matmul that gives the reference FLOP/s."""
    replay_capacity: int = 100_000
    """Replay capacity in transitions."""
    replay_envs: int = 64
    """Env rows of the replay (steps added per add call)."""
    replay_batch: int = 256
    """n-step transitions per replay sample."""
    n_step: int = 5
    """n of the n-step targets."""
    fused_iterations: int = 8
    """add+sample iterations per call in the fused (one jit, lax.scan) replay measurement."""
    out: str = "bench_results/learner.json"
    """Where to write the JSON results."""
    quick: bool = False
    """Smoke run: first batch size only, shorter timings, a 20 s budget (skips the rest)."""


def matmul_flops_per_s(size: int, seconds: float) -> float:
    """float32 FLOP/s of a jitted (size x size) @ (size x size) matmul."""
    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    matmul = jax.jit(jnp.matmul)
    jax.block_until_ready(matmul(a, a))
    return 2 * size**3 / time_calls(lambda: matmul(a, a), seconds)


def observation(key: jax.Array, batch_shape: tuple[int, ...], image_size: int) -> dict:
    """Random ``pixels`` (*batch, S, S, 3) uint8 and ``proprio`` (*batch, P) float32."""
    pixel_key, proprio_key = jax.random.split(key)
    pixels = jax.random.randint(pixel_key, (*batch_shape, image_size, image_size, 3), 0, 256)
    return {
        "pixels": pixels.astype(jnp.uint8),
        "proprio": jax.random.normal(proprio_key, (*batch_shape, PROPRIO_DIM)),
    }


def learner_batches(key: jax.Array, shape: tuple[int, ...], image_size: int):
    """(NStepBatch, goal, next_goal) with leading axes ``shape`` (e.g. (U, B))."""
    keys = jax.random.split(key, 5)
    obs = observation(keys[0], shape, image_size)
    batch = NStepBatch(
        obs=obs,
        action=jax.random.uniform(keys[1], (*shape, ACTION_DIM), minval=-1, maxval=1),
        extras={},
        returns={"imitation": jax.random.uniform(keys[2], shape)},
        discounts={"imitation": jnp.full(shape, 0.99**5)},
        next_obs=observation(keys[3], shape, image_size),
        next_extras={},
    )
    goal_key, next_goal_key = jax.random.split(keys[4])
    return batch, observation(goal_key, shape, image_size), observation(
        next_goal_key, shape, image_size
    )


def measure_learner(preset: str, batch_size: int, args: LearnerBenchArgs, matmul: float) -> dict:
    """Updates/s of one goal-conditioned D4PG learner (actor + critic + targets).

    ``matmul`` (FLOP/s) only sets the run-time estimate that decides what is skipped.
    """
    network = NetworkConfig(torso=preset, norm=args.norm, shared_torso=args.shared_torso)
    learner = D4PG(D4PGConfig(stream="imitation", goal_conditioned=True, network=network),
                   ACTION_DIM)

    def update(state, batch):
        return learner.update(state, *batch)

    key = jax.random.key(0)
    example = observation(key, (), args.image_size)
    abstract_state = jax.eval_shape(learner.init, key, example, example)
    abstract_batch = jax.eval_shape(
        functools.partial(learner_batches, shape=(batch_size,), image_size=args.image_size), key
    )
    flops = float(jax.jit(update).lower(abstract_state, abstract_batch).cost_analysis()["flops"])
    estimate_s = flops / (args.assumed_efficiency * matmul)
    row = {"preset": preset, "batch": batch_size, "flops_per_update": flops,
           "estimated_s_per_update": estimate_s}
    if 2 * estimate_s > args.budget_s:
        reason = f"~{estimate_s:.0f} s/update estimated (budget {args.budget_s:g} s)"
        return {**row, "skipped": reason}
    fits = 2 * args.updates_per_call * estimate_s <= args.budget_s
    updates = args.updates_per_call if fits else 1

    state = jax.jit(learner.init)(key, example, example)
    batches = jax.jit(learner_batches, static_argnums=(1, 2))(
        jax.random.key(1), (updates, batch_size), args.image_size
    )
    run = jax.jit(functools.partial(scan_updates, update), donate_argnums=0)
    carry = {"state": state}

    def call():
        carry["state"], metrics = run(carry["state"], batches)
        return metrics

    start = time.perf_counter()
    jax.block_until_ready(call())
    first_call_s = time.perf_counter() - start
    seconds = time_calls(call, args.seconds, min_calls=1)
    updates_per_s = updates / seconds
    return {
        **row,
        "updates_per_call": updates,
        "compile_and_first_call_s": first_call_s,
        "updates_per_s": updates_per_s,
        "samples_per_s": updates_per_s * batch_size,
        "flops_per_s": flops * updates_per_s,
    }


def measure_replay(args: LearnerBenchArgs) -> dict:
    """add, sample and add+sample calls/s of the n-step replay with S x S x 3 uint8 frames."""
    example = Transition(
        obs=observation(jax.random.key(0), (), args.image_size),
        action=jnp.zeros((ACTION_DIM,)),
        reward={"imitation": jnp.zeros(()), "task": jnp.zeros(())},
        discount=jnp.ones(()),
        last=jnp.zeros((), bool),
        extras={"demo": jnp.zeros((), jnp.int32), "t": jnp.zeros((), jnp.int32)},
    )
    config = ReplayConfig(capacity=args.replay_capacity, n_step=args.n_step, min_size=0)
    replay = NStepReplay(config, args.replay_envs)
    stored = replay.num_rows * replay.time_length
    memory_bytes, memory_text = memory_estimate(example, stored)
    step = jax.tree.map(lambda x: jnp.broadcast_to(x, (args.replay_envs, *x.shape)), example)
    step = step.replace(obs=observation(jax.random.key(1), (args.replay_envs,), args.image_size))
    add = jax.jit(replay.add, donate_argnums=0)
    sample = jax.jit(replay.sample, static_argnums=2)
    carry = {"state": jax.jit(replay.init)(example), "key": jax.random.key(2)}
    for _ in range(config.n_step + 1):
        carry["state"] = add(carry["state"], step)

    def do_add():
        carry["state"] = add(carry["state"], step)
        return carry["state"].current_index

    def do_sample():
        carry["key"], key = jax.random.split(carry["key"])
        return sample(carry["state"], key, args.replay_batch)

    def do_both():
        do_add()
        return do_sample()

    # Fused: one jit scans add+sample; each iteration's batch replaces the previous one in
    # the carry (as a learner would consume it), so no sample is dead code and nothing
    # is stacked.
    @functools.partial(jax.jit, donate_argnums=(0, 2))
    def fused(state, key, batch):
        def body(carry, k):
            state = replay.add(carry[0], step)
            return (state, replay.sample(state, k, args.replay_batch)), None

        keys = jax.random.split(key, args.fused_iterations)
        return jax.lax.scan(body, (state, batch), keys)[0]

    carry["batch"] = do_sample()

    def do_fused():
        carry["key"], key = jax.random.split(carry["key"])
        carry["state"], carry["batch"] = fused(carry["state"], key, carry["batch"])
        return carry["batch"]

    rates = {}
    for name, fn, per_call in (("add", do_add, 1), ("sample", do_sample, 1),
                               ("add+sample", do_both, 1),
                               ("add+sample fused", do_fused, args.fused_iterations)):
        jax.block_until_ready(fn())  # compile
        rates[name] = per_call / time_calls(fn, args.seconds)
    return {
        "capacity": stored,
        "envs": args.replay_envs,
        "batch": args.replay_batch,
        "n_step": args.n_step,
        "memory_bytes": memory_bytes,
        "memory": memory_text,
        "calls_per_s": rates,
    }


def learner_table(rows: list[dict], matmul: float, image_size: int) -> Table:
    """Rich table of ``measure_learner`` rows."""
    table = Table(title=f"D4PG imitation-learner update, {image_size}x{image_size}x6 input "
                        f"(matmul reference {matmul / 1e9:,.1f} GFLOP/s)")
    for col in ("preset", "batch", "updates/s", "samples/s", "GFLOP/update", "GFLOP/s",
                "of matmul", "compile+1st call s", "note"):
        table.add_column(col, justify="left" if col == "note" else "right")
    for r in rows:
        head = (r["preset"], str(r["batch"]))
        gflop = f"{r['flops_per_update'] / 1e9:,.1f}"
        if "skipped" in r:
            table.add_row(*head, "-", "-", gflop, "-", "-", "-", f"skipped: {r['skipped']}")
            continue
        table.add_row(
            *head, f"{r['updates_per_s']:,.2f}", f"{r['samples_per_s']:,.0f}", gflop,
            f"{r['flops_per_s'] / 1e9:,.1f}", f"{r['fraction_of_matmul']:.0%}",
            f"{r['compile_and_first_call_s']:.1f}", f"{r['updates_per_call']} updates/call",
        )
    return table


def replay_table(result: dict) -> Table:
    """Rich table of ``measure_replay``'s rates."""
    table = Table(title=f"replay: {result['memory']}, {result['envs']} env rows, "
                        f"sample batch {result['batch']}, n={result['n_step']}")
    table.add_column("operation")
    table.add_column("calls/s", justify="right")
    for name, rate in result["calls_per_s"].items():
        table.add_row(name, f"{rate:,.1f}")
    return table


def main(argv: list[str]) -> int:
    """Runs the learner and replay benchmarks, prints tables and writes JSON."""
    args = tyro.cli(LearnerBenchArgs, args=argv, prog="mjx-metamimic bench learner")
    load_at_start = os.getloadavg()
    if args.quick:
        args = dataclasses.replace(args, seconds=1.0, budget_s=min(args.budget_s, 20.0),
                                   updates_per_call=2, batch_sizes=args.batch_sizes[:1])
    console = Console()
    if not console.is_terminal:
        console = Console(width=140)  # keep tables unwrapped in logs
    console.print(f"[bold]learner bench[/] backend={jax.default_backend()} "
                  f"devices={[d.device_kind for d in jax.devices()]}")
    stats = preset_stats(NetworkConfig(norm=args.norm), args.presets,
                         image_size=args.image_size, proprio_dim=PROPRIO_DIM,
                         action_dim=ACTION_DIM)
    console.print(stats_table(stats, f"networks (goal-conditioned, {args.image_size}x"
                                     f"{args.image_size} frames, per sample)"))
    matmul_start = matmul_flops_per_s(args.matmul_size, args.seconds)
    console.print(f"matmul {args.matmul_size}^2 float32: {matmul_start / 1e9:,.1f} GFLOP/s")
    rows = []
    for preset in args.presets:
        for batch_size in args.batch_sizes:
            row = measure_learner(preset, batch_size, args, matmul_start)
            rows.append(row)
            status = row.get("skipped") or f"{row['updates_per_s']:,.2f} updates/s"
            console.print(f"  {preset:>6} batch {batch_size:>4}: {status}")
    # The reference is the best matmul rate seen (start or end of the run), so that other
    # load on the machine during one of them does not inflate the fractions.
    matmul_end = matmul_flops_per_s(args.matmul_size, args.seconds)
    matmul = max(matmul_start, matmul_end)
    for row in rows:
        if "flops_per_s" in row:
            row["fraction_of_matmul"] = row["flops_per_s"] / matmul
    console.print(learner_table(rows, matmul, args.image_size))
    replay = measure_replay(args)
    console.print(replay_table(replay))
    path = write_json(args.out, {
        "benchmark": "learner",
        "args": dataclasses.asdict(args),
        "networks": [dataclasses.asdict(s) for s in stats],
        "matmul_flops_per_s": {"start": matmul_start, "end": matmul_end, "reference": matmul},
        "load_average_1_5_15min": {"start": load_at_start, "end": os.getloadavg()},
        "learner": rows,
        "replay": replay,
    })
    console.print(f"wrote {path}")
    return 0
