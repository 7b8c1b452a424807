"""``mjx-metamimic bench train``: env steps/s and updates/s of the whole training loop.

Three ways of doing the same work per chunk (K env steps for each of E envs, U learner
updates) are measured in the same run, in alternating rounds:

* ``one-jit``: the fused ``train_chunk`` (one jitted call per chunk, state donated);
* ``split``: two jitted calls per chunk, collect (+ replay add), then learn;
* ``host``: a host-side Python loop, one jitted call per env step (collect one step of
  every env + add) and one per learner update.

The time shares come from each component timed alone with its own jitted function at
the run's sizes: physics (K steps of E envs, no rendering), rendering (K frames of E
envs), replay (add K steps, sample U batches and their goals) and learning (U updates on
fixed batches). Their sum is compared with the one-jit loop's time per chunk; the rest is
the actors' policy, imitation reward and episode resets. The learning component's FLOP/s
(XLA's cost analysis of one update of every learner, times U) is compared with a float32
matmul measured in the same run.
"""

import dataclasses
import os
import time
import tomllib
from collections.abc import Callable

import jax
import jax.numpy as jnp
import tyro
from rich.console import Console

from mjx_metamimic import configs, envs
from mjx_metamimic.agents import scan_updates
from mjx_metamimic.bench.common import time_calls, write_json
from mjx_metamimic.bench.learner_bench import matmul_flops_per_s
from mjx_metamimic.bench.train_report import (
    VARIANTS,
    engine_ratios,
    label,
    shares_table,
    summarise,
    variants_table,
)
from mjx_metamimic.demos import DemoBank
from mjx_metamimic.envs.batching import batched
from mjx_metamimic.envs.stack import StackEnv
from mjx_metamimic.sweeps.spec import nested
from mjx_metamimic.training import MetaMimic, TrainState, build, ensure_demos, load_banks
from mjx_metamimic.training.config import TrainConfig


@dataclasses.dataclass(frozen=True)
class TrainBenchArgs:
    """Benchmark the fused training loop against split and host-driven versions of it."""

    configs: tuple[str, ...] = ("features", "cpu")
    """Run configs to measure (names in train/ or .toml paths), each optionally with
    overrides after a colon: ``cpu:learner.network.shared_torso=false,learner.batch_size=64``
    (values in TOML syntax) measures a variant of ``cpu`` in the same run."""
    impls: tuple[str, ...] = ("auto",)
    """Physics engines (``env.impl``) to run each config on; several give a same-run
    comparison of the whole loop (e.g. ``--impls jax c``)."""
    seconds: float = 2.0
    """Minimum timed seconds per measurement and round (at least two chunks each)."""
    rounds: int = 3
    """Rounds of alternating measurements (best round and median per-round ratios reported)."""
    replay_capacity: int | None = None
    """Override the configs' replay capacity (e.g. to keep memory small)."""
    num_envs: int | None = None
    """Override the configs' number of envs (E)."""
    seed: int = 0
    """Seed of the training state."""
    matmul_size: int = 1024
    """Side of the float32 square matmul whose FLOP/s the learners are compared with."""
    out: str = "bench_results/train.json"
    """Where to write the JSON results."""


def with_overrides(config: TrainConfig, overrides: str) -> TrainConfig:
    """``config`` with comma-separated ``dotted.key=toml_value`` overrides applied."""
    flat = {}
    for pair in filter(None, overrides.split(",")):
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"override {pair!r} is not KEY=VALUE")
        try:
            flat[key.strip()] = tomllib.loads(f"v = {value.strip()}")["v"]
        except tomllib.TOMLDecodeError as error:
            raise ValueError(f"override {pair!r}: {value!r} is not a TOML value") from error
    return configs.from_dict(TrainConfig, nested(flat), base=config)


def bench_config(name: str, args: TrainBenchArgs, impl: str = "auto") -> TrainConfig:
    """The named run config (``NAME[:overrides]``) on physics engine ``impl``, with the
    benchmark's overrides."""
    name, _, overrides = name.partition(":")
    config = configs.load(TrainConfig, name)
    if overrides:
        config = dataclasses.replace(
            with_overrides(config, overrides), name=f"{config.name}:{overrides}"
        )
    config = dataclasses.replace(config, env=dataclasses.replace(config.env, impl=impl))
    if args.replay_capacity is not None:
        replay = dataclasses.replace(config.replay, capacity=args.replay_capacity)
        config = dataclasses.replace(config, replay=replay)
    if args.num_envs is not None:
        actors = dataclasses.replace(config.actors, num_envs=args.num_envs)
        config = dataclasses.replace(config, actors=actors)
    return config


def with_chunk_sizes(config: TrainConfig, steps: int, updates: int) -> TrainConfig:
    """``config`` with K = ``steps`` env steps and U = ``updates`` updates per chunk."""
    return dataclasses.replace(
        config,
        actors=dataclasses.replace(config.actors, steps_per_chunk=steps),
        learner=dataclasses.replace(config.learner, updates_per_chunk=updates),
    )


def _collect_and_store(algo: MetaMimic) -> Callable:
    """Jitted (state, bank) -> (state, metrics): ``algo``'s K env steps, added to the replay.

    Metrics are returned (as by the one-jit chunk) so that no variant skips their work.
    """

    def run(state, bank):
        state, steps, metrics = algo.collect(state, bank)
        return state.replace(replay=algo.replay.add_sequence(state.replay, steps)), metrics

    return jax.jit(run, donate_argnums=0)


def _learn(algo: MetaMimic) -> Callable:
    """Jitted (state, bank) -> (state, metrics): ``algo``'s U learner updates."""
    return jax.jit(algo.learn, donate_argnums=0)


class Variants:
    """The three ways of running one training chunk, each (state, bank) -> state.

    Args:
      config: the run config (K, U and every size).
    """

    def __init__(self, config: TrainConfig):
        self.algo = build(config)
        self.steps, self.updates = config.actors.steps_per_chunk, config.learner.updates_per_chunk
        fused = jax.jit(self.algo.train_chunk, donate_argnums=0)
        self._fused = lambda state, bank: fused(state, bank)[0]
        self._collect = _collect_and_store(self.algo)
        self._learn = _learn(self.algo)
        single = build(with_chunk_sizes(config, 1, 1))
        self._collect_one = _collect_and_store(single)
        self._learn_one = _learn(single)

    def chunk(self, variant: str) -> Callable[[TrainState, DemoBank], TrainState]:
        """The chunk function of ``variant`` (one of ``VARIANTS``)."""
        return {"one-jit": self._fused, "split": self._split, "host": self._host}[variant]

    def _split(self, state, bank):
        state, _ = self._collect(state, bank)
        return self._learn(state, bank)[0]

    def _host(self, state, bank):
        for _ in range(self.steps):
            state, _ = self._collect_one(state, bank)
        for _ in range(self.updates):
            state, _ = self._learn_one(state, bank)
        return state


def prefill(variants: Variants, state: TrainState, bank: DemoBank) -> tuple[TrainState, int]:
    """Runs one-jit chunks until the replay can be sampled (so every chunk learns)."""
    algo, chunk, chunks = variants.algo, variants.chunk("one-jit"), 0
    while not bool(algo.replay.can_sample(state.replay)):
        state = chunk(state, bank)
        chunks += 1
    return state, chunks


def counters(state: TrainState) -> tuple[int, int]:
    """(env steps, learner updates) done so far."""
    return int(state.env_steps), int(state.updates)


def time_chunks(chunk, state, bank, min_seconds: float, min_chunks: int = 2):
    """Times ``chunk`` (warmed up); returns the state and seconds, env steps, updates per chunk."""
    steps0, updates0 = counters(jax.block_until_ready(state))
    chunks, start = 0, time.perf_counter()
    while chunks < min_chunks or time.perf_counter() - start < min_seconds:
        state = jax.block_until_ready(chunk(state, bank))
        chunks += 1
    seconds = (time.perf_counter() - start) / chunks
    steps1, updates1 = counters(state)
    measured = {
        "seconds_per_chunk": seconds,
        "chunks": chunks,
        "env_steps_per_chunk": (steps1 - steps0) / chunks,
        "updates_per_chunk": (updates1 - updates0) / chunks,
    }
    return state, measured


# ------------------------------------------------------------------- components
def physics_env(config: TrainConfig) -> StackEnv:
    """The run's stacking env without pixels."""
    return envs.make("stack", **{**dataclasses.asdict(config.env), "image_size": 0})


class Components:
    """Each part of a chunk alone, jitted at the run's sizes: name -> (carry) -> carry.

    Args:
      algo: the run's algorithm (its env renders iff the config has pixels).
      physics_env: the run's env without pixels (it only steps physics).
    """

    def __init__(self, algo: MetaMimic, physics_env: StackEnv):
        self.algo, self.physics_env = algo, physics_env
        cfg = algo.config
        self.steps, self.updates = cfg.actors.steps_per_chunk, cfg.learner.updates_per_chunk
        self.physics = jax.jit(self._physics, donate_argnums=0)
        self.rendering = jax.jit(self._rendering) if algo.env.renderer is not None else None
        self.replay = jax.jit(self._replay, donate_argnums=0)
        self.learning = jax.jit(self._learning, donate_argnums=0)

    def _physics(self, env_state, key):
        """K steps of every env with Gaussian exploration-like actions, no rendering."""
        step = batched(self.physics_env.step, self.algo.chunk_size)
        num_envs = jax.tree.leaves(env_state)[0].shape[0]

        def one(carry, _):
            state, key = carry
            key, key_action = jax.random.split(key)
            zeros = jnp.zeros((num_envs, self.physics_env.action_size))
            return (step(state, self.algo.imitation.explore(zeros, key_action)), key), None

        return jax.lax.scan(one, (env_state, key), None, length=self.steps)[0]

    def _rendering(self, data, block_rgba):
        """K frames of every env (each shifted by a micrometre so none is hoisted)."""
        render = batched(self.algo.env.render, self.algo.chunk_size)

        def one(_, i):
            shifted = data.replace(geom_xpos=data.geom_xpos + 1e-6 * i)
            return None, render(shifted, block_rgba)

        return jax.lax.scan(one, None, jnp.arange(self.steps, dtype=jnp.float32))[1]

    def _replay(self, replay, steps, bank, key):
        """Adds K steps of every env, then samples U learner batches as the loop does."""
        algo = self.algo
        replay = algo.replay.add_sequence(replay, steps)

        def one(_, k):
            return None, algo.sample_learner_batch(replay, bank, k)

        return replay, jax.lax.scan(one, None, jax.random.split(key, self.updates))[1]

    def _update(self, learners, batch):
        return self.algo.learners.update(learners, *batch)

    def _learning(self, learners, batches):
        """U updates of every learner, one per fixed batch."""
        return scan_updates(self._update, learners, batches)[0]

    def update_flops(self, learners, batches) -> float:
        """FLOPs of one update of every learner (XLA's cost analysis; a scan's body would
        be counted once whatever its length, so one update is lowered on its own)."""
        first = jax.tree.map(lambda x: x[0], batches)
        return float(jax.jit(self._update).lower(learners, first).cost_analysis()["flops"])

    def calls(self, state: TrainState, bank: DemoBank) -> dict[str, Callable[[], object]]:
        """Zero-argument calls of each component on copies of ``state``'s parts (``state``
        itself stays free to be donated to training chunks)."""
        copy = jax.jit(lambda tree: jax.tree.map(jnp.copy, tree))
        env_state = state.env_state.replace(
            obs={k: v for k, v in state.env_state.obs.items() if k != "pixels"}
        )
        num_envs = state.demo_idx.shape[0]
        steps = jax.tree.map(
            lambda x: jnp.zeros((num_envs, self.steps, *x.shape[2:]), x.dtype),
            state.replay.experience,
        )
        carry = {
            "env_state": copy(env_state),
            "replay": copy(state.replay),
            "learners": copy(state.learners),
            "key": jax.random.PRNGKey(1),
        }
        carry["replay"], carry["batches"] = self.replay(carry["replay"], steps, bank, carry["key"])

        def physics():
            carry["env_state"], carry["key"] = self.physics(carry["env_state"], carry["key"])
            return carry["env_state"]

        def replay():
            carry["key"], key = jax.random.split(carry["key"])
            carry["replay"], batches = self.replay(carry["replay"], steps, bank, key)
            return batches

        def learning():
            carry["learners"] = self.learning(carry["learners"], carry["batches"])
            return carry["learners"]

        self.flops_per_update = self.update_flops(carry["learners"], carry["batches"])
        calls = {"physics": physics, "replay": replay, "learning": learning}
        if self.rendering is not None:
            frames_of = copy((state.env_state.pipeline_state, state.env_state.info["block_rgba"]))
            calls["rendering"] = lambda: self.rendering(*frames_of)
        return calls


# ------------------------------------------------------------------- one config
def benchmark_config(
    config: TrainConfig, bank: DemoBank, args: TrainBenchArgs, console: Console
) -> dict:
    """Measures the three variants and the components of one config (see module docstring)."""
    variants = Variants(config)
    algo = variants.algo
    components = Components(algo, physics_env(config))

    compile_s = {}
    start = time.perf_counter()
    state = jax.jit(algo.init)(jax.random.PRNGKey(args.seed), bank)
    state = jax.block_until_ready(variants.chunk("one-jit")(state, bank))  # compiles
    compile_s["one-jit"] = time.perf_counter() - start
    state, prefill_chunks = prefill(variants, state, bank)
    console.print(f"  prefilled the replay with {prefill_chunks + 1} chunks")
    for name in ("split", "host"):
        start = time.perf_counter()
        state = jax.block_until_ready(variants.chunk(name)(state, bank))
        compile_s[name] = time.perf_counter() - start
        console.print(f"  {name}: compiled + first chunk in {compile_s[name]:.0f} s")
    calls = components.calls(state, bank)
    for name, call in calls.items():
        start = time.perf_counter()
        jax.block_until_ready(call())
        compile_s[name] = time.perf_counter() - start

    rounds = {name: [] for name in (*VARIANTS, *calls)}
    for r in range(args.rounds):
        for name in VARIANTS:
            state, measured = time_chunks(variants.chunk(name), state, bank, args.seconds)
            rounds[name].append(measured)
        for name, call in calls.items():
            rounds[name].append({"seconds_per_chunk": time_calls(call, args.seconds)})
        line = "  ".join(f"{n} {rs[-1]['seconds_per_chunk']:.3f}" for n, rs in rounds.items())
        console.print(f"  round {r + 1}: s/chunk {line}")
    result = summarise(config, rounds, compile_s, prefill_chunks + 1)
    learning_s = result["components"]["learning"]["seconds_per_chunk"]
    result["learner_flops_per_update"] = components.flops_per_update
    result["learner_flops_per_s"] = components.flops_per_update * components.updates / learning_s
    return result


def main(argv: list[str]) -> int:
    """Runs the training-loop benchmark, prints tables and writes JSON."""
    args = tyro.cli(TrainBenchArgs, args=argv, prog="mjx-metamimic bench train")
    console = Console()
    if not console.is_terminal:
        console = Console(width=140)  # keep tables unwrapped in logs
    load_at_start = os.getloadavg()
    matmul = matmul_flops_per_s(args.matmul_size, args.seconds)
    console.print(f"float32 matmul {args.matmul_size}^2: {matmul / 1e9:.1f} GFLOP/s")
    results = []
    for name in args.configs:
        for impl in args.impls:
            config = bench_config(name, args, impl)
            console.print(
                f"[bold]train bench[/] {config.name} on the {config.env.physics_impl} engine: "
                f"backend={jax.default_backend()}"
            )
            ensure_demos(config, console)
            bank = load_banks(config)["train"]
            results.append(benchmark_config(config, bank, args, console))
    console.print(variants_table(results))
    console.print(shares_table(results))
    for r in results:
        r["learner_of_matmul"] = r["learner_flops_per_s"] / matmul
        console.print(
            f"{label(r)}: learners {r['learner_flops_per_update'] / 1e6:.1f} MFLOP per update, "
            f"{r['learner_flops_per_s'] / 1e9:.1f} GFLOP/s = {r['learner_of_matmul']:.0%} of "
            "the matmul"
        )
    ratios = engine_ratios(results)
    for r in ratios:
        console.print(
            f"{r['config']}: the {r['impl']} engine runs the one-jit loop at "
            f"{r['env_steps_per_s_ratio']:.2f}x the env steps/s and "
            f"{r['updates_per_s_ratio']:.2f}x the updates/s of the {r['baseline_impl']} engine; "
            f"chunk compiled + first call in {r['compile_s'][1]:.0f} s vs {r['compile_s'][0]:.0f} s"
        )
    path = write_json(args.out, {
        "benchmark": "train",
        "args": dataclasses.asdict(args),
        "load_average_1_5_15min": {"start": load_at_start, "end": os.getloadavg()},
        "matmul_flops_per_s": matmul,
        "configs": results,
        "engine_ratios": ratios,
    })
    console.print(f"wrote {path}")
    return 0
