"""Recording a demo dataset: options, recorder, manifest header and preview.

``record_dataset(RecordOptions(out=..., num=...))`` records ``num`` successful scripted
demonstrations in the env that the options describe and writes them as a dataset
(``writer``). The ``mjx-metamimic demos`` command and the training run (when its demos do
not exist yet) both call it.
"""

import dataclasses
import math
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mjx_metamimic.demos.demonstrator import Demonstrator, DemonstratorConfig
from mjx_metamimic.demos.fingerprints import (
    dataset_fingerprint,
    physics_config,
    scene_fingerprint,
    split_indices,
)
from mjx_metamimic.demos.format import Demos
from mjx_metamimic.demos.generate import Recorder, generate
from mjx_metamimic.demos.writer import DatasetWriter
from mjx_metamimic.envs.stack import StackEnv, StackEnvConfig

PREVIEW_FILE = "preview.gif"


@dataclasses.dataclass(frozen=True)
class RecordOptions:
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
    env: StackEnvConfig = StackEnvConfig()
    """Physics of the recording env (stored in the manifest); its image_size and camera are
    replaced by the options above."""

    def env_config(self) -> StackEnvConfig:
        """``env`` rendering ``camera`` at ``image_size``: the config of the recording env."""
        return dataclasses.replace(self.env, image_size=self.image_size, camera=self.camera)

    def problems(self) -> list[str]:
        """The rules these options break (empty when valid)."""
        checks = {
            "num >= 1": self.num >= 1,
            "image_size >= 1": self.image_size >= 1,
            "max_steps > settle_steps >= 1": self.max_steps > self.settle_steps >= 1,
            "batch_size >= 1 and shard_size >= 1": min(self.batch_size, self.shard_size) >= 1,
            "0 <= validation_fraction < 1": 0 <= self.validation_fraction < 1,
            "0 <= preview <= num": 0 <= self.preview <= self.num,
        }
        return [rule for rule, ok in checks.items() if not ok]


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


def header(options: RecordOptions, recorder: Recorder) -> dict:
    """Manifest entries describing how the dataset was made."""
    env = recorder.env
    size = (options.image_size, options.image_size)
    return {
        "fingerprint": dataset_fingerprint(env.config, size, options.camera),
        "scene_fingerprint": scene_fingerprint(env.config),
        "env_config": physics_config(env.config),
        "image_size": list(size),
        "camera": options.camera,
        "max_steps": options.max_steps,
        "generation": {
            "seed": options.seed,
            "physics_impl": env.config.physics_impl,
            "settle_steps": options.settle_steps,
            "batch_size": recorder.batch_size,
            "chunk_size": recorder.chunk_size,
            "demonstrator": dataclasses.asdict(recorder.demonstrator.config),
        },
    }


def build_recorder(options: RecordOptions) -> Recorder:
    """The env (``options.env_config()``), demonstrator and recorder of ``options``."""
    env = StackEnv(options.env_config())
    demonstrator = Demonstrator(env, DemonstratorConfig())
    return Recorder(env, demonstrator, options.max_steps, options.batch_size, env.step_chunk_size)


def record_dataset(
    options: RecordOptions, console: Console | None = None, recorder: Recorder | None = None
) -> dict:
    """Records ``options.num`` successful demos and writes them to ``options.out``.

    Args:
      options: what to record and where.
      console: where the progress bar goes; None shows none.
      recorder: ``build_recorder(options)`` or one built from options that differ only in
        where and how many demos go (to reuse its compiled function); None builds one.

    Returns:
      The manifest written.

    Raises:
      ValueError: invalid options, or a recorder built from other options.
      DemoDatasetError: ``options.out`` exists (without ``overwrite``) or is no dataset.
    """
    if options.problems():
        raise ValueError(f"invalid recording options: need {'; '.join(options.problems())}")
    recorder = recorder or build_recorder(options)
    built = (recorder.env.config, recorder.max_steps, recorder.batch_size)
    if built != (options.env_config(), options.max_steps, options.batch_size):
        raise ValueError("the recorder was built from other env, max_steps or batch_size options")
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
    info = header(options, recorder)
    with DatasetWriter(options.out, info, options.overwrite, options.shard_size) as writer:
        with progress:
            task = progress.add_task("demos", total=options.num, rate="compiling ...")
            for demos, stats in generate(recorder, options.num, options.seed, options.settle_steps):
                writer.add(demos)
                attempts += stats["attempts"]
                lengths.extend(stats["lengths"].tolist())
                to_stack.extend(stats["steps_to_stack"].tolist())
                if sum(d.num_demos for d in previews) < options.preview:
                    previews.append(demos)
                elapsed = time.perf_counter() - start
                rate = f"{len(lengths) / elapsed:.2f} demos/s, {len(lengths) / attempts:.1%} ok"
                progress.update(task, completed=len(lengths), rate=rate)
        if options.preview:
            shown = Demos.concatenate(previews).take(range(options.preview))
            writer.add_file(PREVIEW_FILE, preview_gif(shown))
        summary = {
            "attempts": attempts,
            "successes": len(lengths),
            "success_rate": len(lengths) / attempts,
            "mean_length": float(np.mean(lengths)),
            "mean_steps_to_stack": float(np.mean(to_stack)),
        }
        split = split_indices(options.num, options.validation_fraction, options.split_seed)
        split_info = {
            "seed": options.split_seed,
            "validation_fraction": options.validation_fraction,
        }
        return writer.commit(summary=summary, split={**split_info, **split})
