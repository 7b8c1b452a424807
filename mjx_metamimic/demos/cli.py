"""``mjx-metamimic demos``: record scripted demonstrations into a dataset directory."""

import dataclasses
import math
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import tyro
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mjx_metamimic import envs
from mjx_metamimic.demos.dataset import (
    DatasetWriter,
    DemoDatasetError,
    Demos,
    check_destination,
    dataset_fingerprint,
    physics_config,
    scene_fingerprint,
    split_indices,
)
from mjx_metamimic.demos.demonstrator import Demonstrator, DemonstratorConfig
from mjx_metamimic.demos.generate import Recorder, generate
from mjx_metamimic.envs.batching import default_chunk_size

PREVIEW_FILE = "preview.gif"


@dataclasses.dataclass(frozen=True)
class DemosArgs:
    """Record scripted stacking demonstrations (frames, proprio, features, task reward)."""

    out: Path = Path("data/demos")
    """Dataset directory to create."""
    num: int = 500
    """Successful demonstrations to keep (failed attempts are dropped)."""
    seed: int = 0
    """Seed of the layouts and the demonstrator's randomness."""
    image_size: int = 64
    """Frame height and width (pixels)."""
    camera: str = "front"
    """Camera that records the frames."""
    max_steps: int = 200
    """Control steps recorded per demo (T, 20 Hz); shorter episodes are padded."""
    settle_steps: int = 10
    """Steps kept after the stack becomes stable (the episode's end)."""
    batch_size: int = 64
    """Demos recorded per compiled call (replaying a demo exactly needs the same value)."""
    shard_size: int = 64
    """Demos per shard file."""
    validation_fraction: float = 0.1
    """Share of demos in the validation split."""
    split_seed: int = 0
    """Seed of the train/validation split."""
    preview: int = 0
    """Write a GIF grid of the first N demos into the dataset (0 = none)."""
    overwrite: bool = False
    """Replace an existing dataset at ``out``."""


def preview_gif(demos: Demos) -> bytes:
    """A looping GIF (bytes) of ``demos`` side by side, one frame per control step."""
    frames = demos.frames  # (N, T, H, W, 3)
    n, steps, h, w, _ = frames.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.zeros((steps, rows * h, cols * w, 3), np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        grid[:, r * h : (r + 1) * h, c * w : (c + 1) * w] = frames[i]
    last = int(demos.lengths.max())
    return iio.imwrite("<bytes>", grid[:last], extension=".gif", duration=50, loop=0)


def header(args: DemosArgs, recorder: Recorder) -> dict:
    """Manifest entries describing how the dataset was made."""
    env = recorder.env
    size = (args.image_size, args.image_size)
    return {
        "fingerprint": dataset_fingerprint(env.config, size, args.camera),
        "scene_fingerprint": scene_fingerprint(env.config),
        "env_config": physics_config(env.config),
        "image_size": list(size),
        "camera": args.camera,
        "max_steps": args.max_steps,
        "generation": {
            "seed": args.seed,
            "settle_steps": args.settle_steps,
            "batch_size": recorder.batch_size,
            "chunk_size": recorder.chunk_size,
            "demonstrator": dataclasses.asdict(recorder.demonstrator.config),
        },
    }


def build_recorder(args: DemosArgs) -> Recorder:
    """The stacking env (rendering ``args.camera`` at ``args.image_size``), demonstrator
    and recorder that ``args`` describe."""
    env = envs.make("stack", image_size=args.image_size, camera=args.camera)
    demonstrator = Demonstrator(env, DemonstratorConfig())
    return Recorder(env, demonstrator, args.max_steps, args.batch_size, default_chunk_size())


def write_dataset(args: DemosArgs, recorder: Recorder, console: Console | None = None) -> dict:
    """Records ``args.num`` successful demos with ``recorder`` and writes the dataset.

    Args:
      args: the dataset options (``recorder`` must have been built from them).
      recorder: see ``build_recorder``.
      console: where the progress bar goes; None shows none.

    Returns:
      The manifest written.
    """
    lengths, to_stack, previews = [], [], []
    attempts = 0
    start = time.perf_counter()
    columns = (
        TextColumn("[bold]demos"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
    )
    progress = Progress(*columns, console=console, disable=console is None)
    with DatasetWriter(args.out, header(args, recorder), args.overwrite, args.shard_size) as writer:
        with progress:
            task = progress.add_task("demos", total=args.num, rate="compiling ...")
            for demos, stats in generate(recorder, args.num, args.seed, args.settle_steps):
                writer.add(demos)
                attempts += stats["attempts"]
                lengths.extend(stats["lengths"].tolist())
                to_stack.extend(stats["steps_to_stack"].tolist())
                if sum(d.num_demos for d in previews) < args.preview:
                    previews.append(demos)
                elapsed = time.perf_counter() - start
                rate = f"{len(lengths) / elapsed:.2f} demos/s, {len(lengths) / attempts:.1%} ok"
                progress.update(task, completed=len(lengths), rate=rate)
        if args.preview:
            shown = Demos.concatenate(previews).take(range(args.preview))
            writer.add_file(PREVIEW_FILE, preview_gif(shown))
        summary = {
            "attempts": attempts,
            "successes": len(lengths),
            "success_rate": len(lengths) / attempts,
            "mean_length": float(np.mean(lengths)),
            "mean_steps_to_stack": float(np.mean(to_stack)),
        }
        split = split_indices(args.num, args.validation_fraction, args.split_seed)
        split_info = {"seed": args.split_seed, "validation_fraction": args.validation_fraction}
        return writer.commit(summary=summary, split={**split_info, **split})


def main(argv: list[str]) -> int:
    """Records the dataset described by ``argv``; returns the exit status."""
    args = tyro.cli(DemosArgs, args=argv, prog="mjx-metamimic demos")
    console = Console()
    checks = {
        "num >= 1": args.num >= 1,
        "image_size >= 1": args.image_size >= 1,
        "max_steps > settle_steps >= 1": args.max_steps > args.settle_steps >= 1,
        "batch_size >= 1 and shard_size >= 1": min(args.batch_size, args.shard_size) >= 1,
        "0 <= validation_fraction < 1": 0 <= args.validation_fraction < 1,
        "0 <= preview <= num": 0 <= args.preview <= args.num,
    }
    bad = [rule for rule, ok in checks.items() if not ok]
    if bad:
        console.print(f"[red]invalid options: need {'; '.join(bad)}[/]")
        return 2
    try:
        check_destination(args.out, args.overwrite)
    except DemoDatasetError as e:
        console.print(f"[red]{e}[/]")
        return 1
    start = time.perf_counter()
    manifest = write_dataset(args, build_recorder(args), console)
    seconds = time.perf_counter() - start
    summary = manifest["summary"]
    console.print(
        f"wrote {args.num} demos to {args.out}: success rate {summary['success_rate']:.1%} "
        f"({summary['successes']}/{summary['attempts']}), mean length "
        f"{summary['mean_length']:.1f} steps, stable stack at step "
        f"{summary['mean_steps_to_stack']:.1f} on average; {args.num / seconds:.2f} demos/s "
        f"({seconds:.0f} s with compilation)"
    )
    if args.preview:
        console.print(f"preview: {args.out / PREVIEW_FILE}")
    return 0
