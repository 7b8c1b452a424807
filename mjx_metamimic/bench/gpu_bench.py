"""``mjx-metamimic bench gpu --out DIR``: the accelerator figures in one command.

Made for a short loan of one GPU (about 8 minutes): the ``paper`` config's training chunk
(compile time, then steady-state env steps/s and updates/s) and ``bench env``, ``bench
render`` and ``bench learner`` at accelerator batch sizes, each part's own JSON in DIR plus
``gpu.json`` (everything, with the device) and ``gpu.md`` (a short table). A part that fails
(e.g. no OpenGL for the render baseline) is recorded as failed and the others still run.
``--tiny`` runs every part at smoke sizes (the test suite runs it on CPU).
"""

import dataclasses
import time
import traceback
from pathlib import Path

import jax
import tyro
from rich.console import Console

from mjx_metamimic import configs
from mjx_metamimic.bench import env_bench, learner_bench, render_bench
from mjx_metamimic.bench.common import machine, reset_bank, write_json
from mjx_metamimic.envs import warp_physics
from mjx_metamimic.replay import ReplayConfig
from mjx_metamimic.training import build
from mjx_metamimic.training.config import TrainConfig

PARTS = ("train", "env", "render", "learner")


@dataclasses.dataclass(frozen=True)
class GpuBenchArgs:
    """Benchmark the accelerator path: the paper config's chunk, env, renderer, learner."""

    out: str = "bench_results/gpu"
    """Directory for the JSON files and the table."""
    parts: tuple[str, ...] = PARTS
    """Parts to run (train, env, render, learner)."""
    tiny: bool = False
    """Smoke sizes for every part (2 envs, 16x16 frames, the ``tiny`` torso; a minute or
    two on a CPU)."""
    num_envs: int = 1024
    """Envs of the paper config's chunk (the config itself has 2048)."""
    chunks: int = 3
    """Timed chunks after the compiling one."""
    replay_capacity: int = 65_536
    """Replay transitions of the chunk's run (the speed does not depend on it)."""
    env_batch_sizes: tuple[int, ...] = (256, 1024, 4096)
    """Batch sizes of ``bench env`` (both engines: the c engine on the host's cores)."""
    render_batch_sizes: tuple[int, ...] = (256, 1024)
    """Batch sizes of ``bench render`` at 64x64."""
    learner_batch_sizes: tuple[int, ...] = (256,)
    """Batch sizes of ``bench learner`` (small, impala and paper presets)."""


def paper_config(args: GpuBenchArgs) -> TrainConfig:
    """The ``paper`` config at the benchmark's sizes (tiny: 2 envs, 16x16 frames and the
    ``tiny`` torso: compiling the paper's 20-layer torso takes minutes on a CPU)."""
    config = configs.load(TrainConfig, "paper")
    replay = dataclasses.replace(config.replay, capacity=args.replay_capacity)
    actors = dataclasses.replace(config.actors, num_envs=args.num_envs)
    if not args.tiny:
        return dataclasses.replace(config, replay=replay, actors=actors)
    return dataclasses.replace(
        config,
        image_size=16,
        demos=dataclasses.replace(config.demos, image_size=16),
        actors=dataclasses.replace(config.actors, num_envs=2, steps_per_chunk=2),
        learner=dataclasses.replace(
            config.learner,
            batch_size=2,
            updates_per_chunk=1,
            network=dataclasses.replace(config.learner.network, torso="tiny"),
        ),
        replay=ReplayConfig(capacity=64, n_step=3, min_size=8),
    )


def train_part(args: GpuBenchArgs, console: Console) -> dict:
    """The paper config's chunk: compile + first call, then steady-state rates."""
    config = paper_config(args)
    algo = build(config)
    num_demos, steps = (8, 32) if args.tiny else (64, 200)
    bank = jax.jit(lambda: reset_bank(algo.env, num_demos, steps))()  # eager: op by op
    chunk = jax.jit(algo.train_chunk, donate_argnums=0)
    start = time.perf_counter()
    state = jax.block_until_ready(jax.jit(algo.init)(jax.random.PRNGKey(0), bank))
    init_s = time.perf_counter() - start
    start = time.perf_counter()
    state = jax.block_until_ready(chunk(state, bank)[0])
    compile_s = time.perf_counter() - start
    console.print(f"  paper chunk: init {init_s:.0f} s, compiled + first call {compile_s:.0f} s")
    while not bool(algo.replay.can_sample(state.replay)):  # every timed chunk learns
        state = jax.block_until_ready(chunk(state, bank)[0])
    steps0, updates0 = int(state.env_steps), int(state.updates)
    start = time.perf_counter()
    for _ in range(args.chunks):
        state = jax.block_until_ready(chunk(state, bank)[0])
    seconds = time.perf_counter() - start
    env_steps, updates = int(state.env_steps) - steps0, int(state.updates) - updates0
    return {
        "num_envs": config.actors.num_envs,
        "steps_per_chunk": config.actors.steps_per_chunk,
        "updates_per_chunk": config.learner.updates_per_chunk,
        "batch_size": config.learner.batch_size,
        "image_size": config.image_size,
        "physics_impl": config.env.physics_impl,
        "init_s": init_s,
        "compile_and_first_chunk_s": compile_s,
        "seconds_per_chunk": seconds / args.chunks,
        "env_steps_per_s": env_steps / seconds,
        "updates_per_s": updates / seconds,
    }


def sub_bench_argv(part: str, args: GpuBenchArgs, out: Path) -> list[str]:
    """Command-line options of the ``bench <part>`` run inside this benchmark."""
    json_out = ["--out", str(out / f"{part}.json")]
    if part == "env":
        if args.tiny:
            return ["--impls", "auto", "--batch-sizes", "4", "--steps-per-call", "2",
                    "--seconds", "0.1", "--baseline-trajectories", "4",
                    "--baseline-steps", "5", *json_out]
        sizes = [str(b) for b in args.env_batch_sizes]
        impls = ["jax", "c", *(["warp"] if warp_physics.warp_installed() else [])]
        return ["--impls", *impls, "--batch-sizes", *sizes, "--seconds", "3", *json_out]
    if part == "render":
        if args.tiny:
            return ["--sizes", "16", "--batch-sizes", "2", "--extra-cubes", "0",
                    "--scaling-batch", "2", "--states", "2", "--seconds", "0.1", *json_out]
        sizes = [str(b) for b in args.render_batch_sizes]
        return ["--sizes", "64", "--batch-sizes", *sizes, "--extra-cubes", "0", "64",
                "--scaling-batch", sizes[0], "--seconds", "2", *json_out]
    if args.tiny:
        return ["--presets", "tiny", "--batch-sizes", "2", "--image-size", "16",
                "--updates-per-call", "1", "--seconds", "0.1", "--matmul-size", "64",
                "--replay-capacity", "256", "--replay-envs", "2", "--replay-batch", "4",
                "--fused-iterations", "2", *json_out]
    sizes = [str(b) for b in args.learner_batch_sizes]
    return ["--presets", "small", "impala", "paper", "--batch-sizes", *sizes,
            "--seconds", "2", "--budget-s", "60", "--matmul-size", "8192", *json_out]


def run_part(part: str, args: GpuBenchArgs, out: Path, console: Console) -> dict:
    """Runs one part; returns its result, or the error it raised."""
    console.rule(f"bench gpu: {part}")
    start = time.perf_counter()
    try:
        if part == "train":
            result = train_part(args, console)
            write_json(out / "train.json", {"benchmark": "gpu/train", **result})
        else:
            module = {"env": env_bench, "render": render_bench, "learner": learner_bench}[part]
            module.main(sub_bench_argv(part, args, out))
            result = {"json": str(out / f"{part}.json")}
        result["ok"] = True
    except Exception as error:  # noqa: BLE001 - one failing part must not lose the others
        console.print(f"[red]{part} failed:[/] {error!r}")
        result = {"ok": False, "error": repr(error), "traceback": traceback.format_exc()}
    result["wall_s"] = time.perf_counter() - start
    return result


def summary_table(parts: dict[str, dict], out: Path) -> str:
    """A short markdown table of the headline figures."""
    lines = ["| part | figure | wall |", "| --- | --- | --- |"]
    for name, result in parts.items():
        if not result["ok"]:
            figure = f"failed: {result['error'][:100]}"
        elif name == "train":
            figure = (
                f"paper chunk ({result['num_envs']} envs, {result['physics_impl']} engine): "
                f"compile + 1st {result['compile_and_first_chunk_s']:.0f} s, "
                f"{result['env_steps_per_s']:,.0f} env steps/s, "
                f"{result['updates_per_s']:,.1f} updates/s"
            )
        else:
            figure = f"see {Path(result['json']).relative_to(out)}"
        lines.append(f"| {name} | {figure} | {result['wall_s']:.0f} s |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    """Runs the parts, writes ``gpu.json`` and ``gpu.md`` into ``--out``."""
    args = tyro.cli(GpuBenchArgs, args=argv, prog="mjx-metamimic bench gpu")
    unknown = sorted(set(args.parts) - set(PARTS))
    if unknown:
        raise ValueError(f"unknown bench gpu part(s) {unknown}: choose from {list(PARTS)}")
    console = Console()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    console.print(f"[bold]bench gpu[/] on {machine()['devices']}, writing to {out}")
    parts = {part: run_part(part, args, out, console) for part in args.parts}
    table = summary_table(parts, out)
    (out / "gpu.md").write_text(table)
    write_json(out / "gpu.json", {"benchmark": "gpu", "args": dataclasses.asdict(args),
                                  "parts": parts})
    console.print(table)
    return 0 if all(p["ok"] for p in parts.values()) else 1
