"""Running a MetaMimic training run into a run directory: chunks, logs, evaluations,
checkpoints, and at the end the final evaluation, learning curves and imitation video.

From a notebook or a script::

    from mjx_metamimic import training
    config = training.load_config("features")
    result = training.train(config, progress_fn=lambda step, metrics: print(step, metrics))

``progress_fn(env_steps, metrics)`` is called on the host every ``run.log_every`` chunks
with the training metrics (``train/...``, plus ``time/minutes`` and ``time/env_steps_per_s``)
and after every evaluation with its metrics (``eval/...``).
"""

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np
from rich.console import Console

from mjx_metamimic.render.video_file import video_suffix
from mjx_metamimic.training import checkpoints
from mjx_metamimic.training.config import TrainConfig
from mjx_metamimic.training.evaluate import Evaluator
from mjx_metamimic.training.metrics_log import MetricsLog
from mjx_metamimic.training.plots import learning_curves
from mjx_metamimic.training.run_dir import (
    create_run_dir,
    default_run_dir,
    load_run_config,
    save_config,
)
from mjx_metamimic.training.setup import build, ensure_demos, load_banks
from mjx_metamimic.training.video import ImitationVideo

ProgressFn = Callable[[int, dict[str, float]], None]
SHOWN = (
    "train/actor/imitation_reward",
    "train/imitation/joints_error",
    "train/actor/drifted",
    "train/imitation/critic_loss",
    "train/env/stacked",
    "train/task_actor/env/stacked",
)


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What a finished run left: its directory and the final evaluation's metrics."""

    run_dir: Path
    final_eval: dict[str, float]


class Trainer:
    """Runs training chunks, logging, evaluation and checkpoints for one run directory.

    Args:
      config: the run config.
      run_dir: an existing run directory (``create_run_dir``) holding its config.
      console: where progress lines and messages go (None: nowhere).
      progress_fn: called with ``(env_steps, metrics)`` at every log row and evaluation.
    """

    def __init__(
        self,
        config: TrainConfig,
        run_dir: Path,
        console: Console | None = None,
        progress_fn: ProgressFn | None = None,
    ):
        if config.run.video_demos < 0:
            raise ValueError(f"run.video_demos={config.run.video_demos} must be >= 0 (0: no video)")
        self.config, self.run_dir = config, Path(run_dir)
        self.console = console or Console(quiet=True)
        self.progress_fn = progress_fn
        self.algo = build(config)
        self.banks = load_banks(config)
        self.log = MetricsLog(self.run_dir)
        self.eval_log = MetricsLog(self.run_dir, "eval")
        self.ckpt = checkpoints.manager(self.run_dir)
        self.chunk = jax.jit(self.algo.train_chunk, donate_argnums=0)
        self.evaluator = Evaluator(self.algo)
        video = config.run.video_demos > 0 and self.algo.trains_imitation
        # Built now, so that a bad video size fails before training, not after it.
        self.video = ImitationVideo(self.algo, config.run.video_size) if video else None

    def initial_state(self, resume: bool):
        """A fresh state, or the latest checkpoint's when resuming.

        Both come out of jitted functions, which keeps the chunk's compilation cache to
        one entry (eagerly built arrays would compile it a second time).
        """
        key = jax.random.PRNGKey(self.config.run.seed)
        state = jax.jit(self.algo.init)(key, self.banks["train"])
        if resume:
            step, state = checkpoints.restore_latest(self.ckpt, state)
            env_steps = int(state.env_steps)
            dropped = self.log.resume_at(env_steps) + self.eval_log.resume_at(env_steps)
            past = f"; dropped {dropped} log row(s) past it" if dropped else ""
            self.console.print(f"resumed from checkpoint at chunk {step}{past}")
        return state

    def _report(self, state, metrics, start: float, last: tuple[float, int]) -> tuple[float, int]:
        """Logs a metrics row, prints a progress line and calls ``progress_fn``; returns
        the (time, env steps) of this report."""
        now = time.perf_counter()
        steps = int(state.env_steps)
        rate = (steps - last[1]) / max(now - last[0], 1e-9)
        row = self.log.write(steps, jax.device_get(metrics))
        shown = "  ".join(f"{k.split('/')[-1]}={row[k]:.3g}" for k in SHOWN if k in row)
        self.console.print(
            f"[{(now - start) / 60:5.1f} min] chunk {int(state.chunks)} env_steps {steps} "
            f"({rate:.0f}/s) updates {int(row['train/updates'])}  {shown}"
        )
        if self.progress_fn is not None:
            timing = {"time/minutes": (now - start) / 60, "time/env_steps_per_s": rate}
            self.progress_fn(steps, {**row, **timing})
        return now, steps

    def run(self, resume: bool = False) -> dict[str, float]:
        """Trains until the time or env-step budget is spent (Ctrl-C stops early and still
        checkpoints and evaluates); returns the final evaluation's metrics."""
        cfg = self.config.run
        state = self.initial_state(resume)
        self.console.print("compiling the training chunk ...")
        start = time.perf_counter()
        state, metrics = self.chunk(state, self.banks["train"])
        jax.block_until_ready(metrics)
        self.console.print(f"compiled in {time.perf_counter() - start:.0f} s")
        start = time.perf_counter()
        last = (start, 0)
        try:
            while True:
                chunk = int(state.chunks)
                if chunk % cfg.log_every == 0:
                    last = self._report(state, metrics, start, last)
                if cfg.checkpoint_every and chunk % cfg.checkpoint_every == 0:
                    checkpoints.save(self.ckpt, chunk, state)
                if cfg.eval_every and chunk % cfg.eval_every == 0:
                    self.evaluate(state)
                elapsed_min = (time.perf_counter() - start) / 60
                if elapsed_min >= cfg.max_minutes or int(state.env_steps) >= cfg.max_env_steps:
                    break
                state, metrics = self.chunk(state, self.banks["train"])
        except KeyboardInterrupt:
            self.console.print("[yellow]interrupted[/]: writing a final checkpoint")
        checkpoints.save(self.ckpt, int(state.chunks), state)
        final = self.evaluate(state)
        (self.run_dir / "eval.json").write_text(json.dumps(final, indent=2))
        self.log.close()
        self.eval_log.close()
        plot = learning_curves(self.log.read(), self.run_dir / "learning_curves.png")
        if plot is not None:
            self.console.print(f"learning curves: {plot}")
        if self.video is not None:
            self.write_video(state)
        return final

    def write_video(self, state) -> Path:
        """Renders the imitation policy beside the first validation demos (``run.video_*``)."""
        cfg, bank = self.config.run, self.banks["validation"]
        num = min(cfg.video_demos, bank.num_demos)
        path = self.run_dir / f"imitation{video_suffix()}"
        self.console.print(f"rendering {path.name}: {num} validation demo(s), {cfg.video_size} px")
        self.video.write(state.learners["imitation"].actor_params, bank, path, num)
        self.console.print(f"video: {path}")
        return path

    def evaluate(self, state) -> dict[str, float]:
        """Evaluates ``state``'s policies on the validation demos (and the zero and random
        baselines); logs the results to ``eval.csv`` and returns them."""
        key = jax.random.PRNGKey(self.config.run.seed + 1)
        results = self.evaluator(state.learners, self.banks["validation"], key)
        self.eval_log.write(int(state.env_steps), results)
        agent = {k.split("/")[-1]: v for k, v in results.items() if k.startswith("eval/agent/")}
        self.console.print(
            f"eval @ chunk {int(state.chunks)}: "
            + "  ".join(f"{k}={v:.3g}" for k, v in agent.items() if np.isfinite(v))
        )
        if self.progress_fn is not None:
            self.progress_fn(int(state.env_steps), results)
        return results


def use_compilation_cache(config: TrainConfig) -> Path | None:
    """Turns on JAX's persistent compilation cache for this process (``run.compilation_cache``):
    the user's ``JAX_COMPILATION_CACHE_DIR`` if set, else ``<run.out_dir>/.jax_cache``.
    Returns the cache directory, or None when off. Takes effect only before the process's
    first compilation."""
    if not config.run.compilation_cache:
        return None
    path = jax.config.jax_compilation_cache_dir
    if not path:
        path = str(config.run.out_dir / ".jax_cache")
        jax.config.update("jax_compilation_cache_dir", path)
    return Path(path)


def train(
    config: TrainConfig,
    run_dir: Path | None = None,
    console: Console | None = None,
    progress_fn: ProgressFn | None = None,
) -> TrainResult:
    """Trains ``config`` into a new run directory (recording its demos first if missing).

    Args:
      config: the run config.
      run_dir: where to create the run directory (default ``<run.out_dir>/<name>-<time>``;
        a taken name gets a ``-2``, ``-3``, ... suffix).
      console: where progress lines go (None: quiet).
      progress_fn: see the module docstring.
    """
    use_compilation_cache(config)
    run_dir = create_run_dir(run_dir or default_run_dir(config))
    save_config(config, run_dir)
    if console is not None:
        console.print(f"[bold]run directory[/] {run_dir}")
    ensure_demos(config, console)
    final = Trainer(config, run_dir, console, progress_fn).run()
    return TrainResult(run_dir, final)


def resume(
    run_dir: Path, console: Console | None = None, progress_fn: ProgressFn | None = None
) -> TrainResult:
    """Continues the run in ``run_dir`` from its latest checkpoint, with its own config."""
    config = load_run_config(run_dir)
    use_compilation_cache(config)
    ensure_demos(config, console)
    final = Trainer(config, run_dir, console, progress_fn).run(resume=True)
    return TrainResult(Path(run_dir), final)
