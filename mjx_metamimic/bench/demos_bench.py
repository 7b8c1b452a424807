"""``mjx-metamimic bench demos``: demonstrations recorded per second (scripted demonstrator,
physics and rendering in one compiled function), with and without rendering, against the
physics-only env rollout at the same batch size, measured in the same run."""

import dataclasses
import time

import jax
import numpy as np
import tyro
from rich.console import Console
from rich.table import Table

from mjx_metamimic import envs
from mjx_metamimic.bench.common import time_calls, write_json
from mjx_metamimic.bench.env_bench import mjx_steps_per_second
from mjx_metamimic.demos.demonstrator import Demonstrator
from mjx_metamimic.demos.generate import Recorder, episode_ends, layout_seeds


@dataclasses.dataclass(frozen=True)
class DemosBenchArgs:
    """Benchmark demonstration recording."""

    batch_sizes: tuple[int, ...] = (16, 64, 256)
    """Demos recorded per compiled call (chunks of <= 16 vmapped on CPU)."""
    image_size: int = 64
    """Frame height and width when rendering."""
    max_steps: int = 200
    """Control steps per demo."""
    settle_steps: int = 10
    """Steps kept after a stable stack (decides which demos count as successful)."""
    seconds: float = 0.0
    """Minimum timed seconds per measurement (at least one call, after warm-up)."""
    baseline_steps_per_call: int = 10
    """Control steps per call of the physics-only baseline rollout."""
    baseline_seconds: float = 5.0
    """Minimum timed seconds of the baseline per batch size."""
    out: str = "bench_results/demos.json"
    """Where to write the JSON results."""


def time_recording(recorder: Recorder, args: DemosBenchArgs) -> dict:
    """Compile time, seconds per call and successes of recording one batch."""
    seeds = layout_seeds(0, 0, recorder.batch_size)
    start = time.perf_counter()
    recording = jax.block_until_ready(recorder.record(seeds))  # compile + first run
    first_call = time.perf_counter() - start
    seconds = time_calls(lambda: recorder.record(seeds), args.seconds, min_calls=1)
    success, _ = episode_ends(np.asarray(recording.task_reward), args.settle_steps)
    return {"first_call_s": first_call, "call_s": seconds, "successes": int(success.sum())}


def main(argv: list[str]) -> int:
    """Runs the demos benchmark, prints a table and writes JSON."""
    args = tyro.cli(DemosBenchArgs, args=argv, prog="mjx-metamimic bench demos")
    console = Console()
    env = envs.make("stack")  # physics only: no pixels
    size = args.image_size
    recording_envs = {"none": env, f"{size}x{size}": envs.make("stack", image_size=size)}
    chunk = env.step_chunk_size
    console.print(f"[bold]demos bench[/] backend={jax.default_backend()} chunk={chunk}")
    rows = []
    for batch in args.batch_sizes:
        physics = mjx_steps_per_second(
            env, batch, args.baseline_steps_per_call, args.baseline_seconds
        )
        bound = physics / args.max_steps  # demos/s if recording cost only the physics
        console.print(f"batch {batch:>4}: physics-only {physics:,.0f} control steps/s")
        for rendering, recording_env in recording_envs.items():
            demonstrator = Demonstrator(recording_env)
            recorder = Recorder(recording_env, demonstrator, args.max_steps, batch, chunk)
            timing = time_recording(recorder, args)
            row = {
                "batch": batch,
                "rendering": rendering,
                **timing,
                "demos_per_s": batch / timing["call_s"],
                "successful_demos_per_s": timing["successes"] / timing["call_s"],
                "control_steps_per_s": batch * args.max_steps / timing["call_s"],
                "physics_only_steps_per_s": physics,
            }
            row["ratio_vs_physics_only"] = row["demos_per_s"] / bound
            rows.append(row)
            console.print(
                f"  rendering {rendering:>7}: {row['demos_per_s']:.2f} demos/s "
                f"({timing['successes']}/{batch} ok, first call {timing['first_call_s']:.0f} s)"
            )
    table = Table(title=f"demo recording ({args.max_steps} control steps per demo)")
    columns = ("batch", "rendering", "demos/s", "ok", "control steps/s", "physics-only", "ratio")
    for col in columns:
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            str(r["batch"]),
            r["rendering"],
            f"{r['demos_per_s']:.2f}",
            f"{r['successes']}/{r['batch']}",
            f"{r['control_steps_per_s']:,.0f}",
            f"{r['physics_only_steps_per_s']:,.0f}",
            f"{r['ratio_vs_physics_only']:.2f}x",
        )
    console.print(table)
    path = write_json(
        args.out,
        {"benchmark": "demos", "args": dataclasses.asdict(args), "chunk": chunk, "rows": rows},
    )
    console.print(f"wrote {path}")
    return 0
