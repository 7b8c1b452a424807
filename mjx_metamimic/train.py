"""``mjx-metamimic train``: a MetaMimic run from a named config, into a run directory.

  mjx-metamimic train --config cpu [--<field> value ...]
  mjx-metamimic train --resume runs/cpu-20261124-101500

The run directory holds config.json, metrics.csv, eval.csv, tensorboard/, checkpoints/ and, at the
end, eval.json, learning_curves.png and imitation.mp4 (.gif without PyAV): the imitation policy
beside the validation demos it follows. Demonstrations are generated first if the configured
dataset does not exist. Ctrl-C writes a final checkpoint.
"""

import argparse
import dataclasses
import json
import time
from pathlib import Path

import jax
import numpy as np
import tyro
from rich.console import Console

from mjx_metamimic import checkpoints, configs, demos, envs
from mjx_metamimic.evaluate import Evaluator
from mjx_metamimic.loop import MetaMimic
from mjx_metamimic.metrics_log import MetricsLog
from mjx_metamimic.plots import learning_curves
from mjx_metamimic.train_config import DemoSpec, TrainConfig
from mjx_metamimic.video import ImitationVideo, video_suffix

CONFIG_FILE = "config.json"
SHOWN = (
    "train/actor/imitation_reward",
    "train/imitation/joints_error",
    "train/actor/drifted",
    "train/imitation/critic_loss",
    "train/env/stacked",
    "train/task_actor/env/stacked",
)


def save_config(config: TrainConfig, run_dir: Path) -> None:
    """Writes the resolved config as JSON (the run's source of truth for --resume/eval)."""
    text = json.dumps(configs.to_dict(config), indent=2, default=str)
    (run_dir / CONFIG_FILE).write_text(text)


def load_run_config(run_dir: Path) -> TrainConfig:
    """The config a run was started with."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {run_dir} a run directory?")
    return configs.from_dict(TrainConfig, json.loads(path.read_text()))


def check_demos_match(spec: DemoSpec) -> None:
    """Raises ValueError naming each setting in which the existing dataset at ``spec.path``
    differs from ``spec`` (training on other demos than configured would be silent)."""
    manifest = demos.read_manifest(spec.path)
    generation = manifest.get("generation", {})
    recorded = {
        "num": manifest.get("num_demos"),
        "seed": generation.get("seed"),
        "image_size": (manifest.get("image_size") or [None])[0],
        "max_steps": manifest.get("max_steps"),
        "settle_steps": generation.get("settle_steps"),
    }
    differences = [
        f"demos.{name}={getattr(spec, name)} (the dataset's: {value})"
        for name, value in recorded.items()
        if value is not None and value != getattr(spec, name)
    ]
    if differences:
        raise ValueError(
            f"the demos at {spec.path} were generated with other settings than the config's "
            f"{', '.join(differences)}: set demos.path to a new directory (demos are generated "
            "there) or make the settings match"
        )


def ensure_demos(config: TrainConfig, console: Console) -> None:
    """Generates the configured demo dataset if it does not exist yet."""
    spec = config.demos
    if (spec.path / "manifest.json").exists():
        check_demos_match(spec)
        return
    from mjx_metamimic.demos.cli import DemosArgs, build_recorder, write_dataset

    console.print(f"[bold]no demos at {spec.path}[/]: generating {spec.num} (seed {spec.seed})")
    args = DemosArgs(
        out=spec.path,
        num=spec.num,
        seed=spec.seed,
        image_size=spec.image_size,
        camera=config.camera,
        max_steps=spec.max_steps,
        settle_steps=spec.settle_steps,
    )
    write_dataset(args, build_recorder(args), console)


def load_banks(config: TrainConfig) -> dict[str, demos.DemoBank]:
    """The train and validation demos on device (the training demos with their privileged
    actions for D4PGfD).

    Raises:
      ValueError: a baseline switch needs data the dataset lacks (privileged actions for
        ``learner.demo_fraction``, per-step states for ``actors.task_reset="curriculum"``).
    """
    d4pgfd = config.demo_batch_size > 0
    try:
        train = demos.load(config.demos.path, "train", privileged_actions=d4pgfd)
    except demos.DemoDatasetError as error:
        if d4pgfd and "privileged_actions" in str(error):
            raise ValueError(f"learner.demo_fraction > 0 (D4PGfD): {error}") from error
        raise
    if config.num_task_envs and config.actors.task_reset == "curriculum" and train.states is None:
        raise ValueError(
            f"actors.task_reset='curriculum' needs per-step simulator states, which "
            f"{config.demos.path} predates: regenerate it with `mjx-metamimic demos`"
        )
    return {
        "train": demos.DemoBank.from_demos(train),
        "validation": demos.DemoBank.from_demos(demos.load(config.demos.path, "validation")),
    }


def build(config: TrainConfig) -> MetaMimic:
    """The env and the algorithm's pure functions for ``config``."""
    env = envs.make(
        "stack",
        **{
            **dataclasses.asdict(config.env),
            "image_size": config.image_size,
            "camera": config.camera,
        },
    )
    return MetaMimic(config, env)


class Trainer:
    """Runs training chunks, logging, evaluation and checkpoints for one run directory."""

    def __init__(self, config: TrainConfig, run_dir: Path, console: Console):
        self.config, self.run_dir, self.console = config, run_dir, console
        self.algo = build(config)
        self.banks = load_banks(config)
        self.log = MetricsLog(run_dir)
        self.eval_log = MetricsLog(run_dir, "eval")
        self.ckpt = checkpoints.manager(run_dir)
        self.chunk = jax.jit(self.algo.train_chunk, donate_argnums=0)
        self.evaluator = Evaluator(self.algo)
        if config.run.video_demos < 0:
            raise ValueError(f"run.video_demos={config.run.video_demos} must be >= 0 (0: no video)")
        video = config.run.video_demos > 0  # the size is checked now, not after training
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
            self.console.print(f"resumed from checkpoint at chunk {step}")
        return state

    def run(self, resume: bool = False) -> dict:
        """Trains until the time or step budget is spent; returns the final eval metrics."""
        cfg = self.config.run
        state = self.initial_state(resume)
        self.console.print("compiling the training chunk ...")
        start = time.perf_counter()
        state, metrics = self.chunk(state, self.banks["train"])
        jax.block_until_ready(metrics)
        self.console.print(f"compiled in {time.perf_counter() - start:.0f} s")
        start, last_print, steps_at_print = time.perf_counter(), time.perf_counter(), 0
        try:
            while True:
                chunk = int(state.chunks)
                if chunk % cfg.log_every == 0:
                    row = self.log.write(int(state.env_steps), jax.device_get(metrics))
                    now = time.perf_counter()
                    rate = (row["train/env_steps"] - steps_at_print) / max(now - last_print, 1e-9)
                    last_print, steps_at_print = now, row["train/env_steps"]
                    shown = "  ".join(f"{k.split('/')[-1]}={row[k]:.3g}" for k in SHOWN if k in row)
                    self.console.print(
                        f"[{(now - start) / 60:5.1f} min] chunk {chunk} env_steps "
                        f"{int(row['train/env_steps'])} ({rate:.0f}/s) updates "
                        f"{int(row['train/updates'])}  {shown}"
                    )
                if cfg.checkpoint_every and chunk % cfg.checkpoint_every == 0:
                    checkpoints.save(self.ckpt, chunk, state)
                if cfg.eval_every and chunk % cfg.eval_every == 0:
                    self.evaluate(state, chunk)
                elapsed_min = (time.perf_counter() - start) / 60
                if elapsed_min >= cfg.max_minutes or int(state.env_steps) >= cfg.max_env_steps:
                    break
                state, metrics = self.chunk(state, self.banks["train"])
        except KeyboardInterrupt:
            self.console.print("[yellow]interrupted[/]: writing a final checkpoint")
        checkpoints.save(self.ckpt, int(state.chunks), state)
        final = self.evaluate(state, int(state.chunks))
        (self.run_dir / "eval.json").write_text(json.dumps(final, indent=2))
        self.log.close()
        self.eval_log.close()
        plot = learning_curves(self.log.read(), self.run_dir / "learning_curves.png")
        if plot is not None:
            self.console.print(f"learning curves: {plot}")
        if self.video is not None:
            self.write_video(state)
        return final

    def write_video(self, state) -> None:
        """Renders the imitation policy beside the first validation demos (``run.video_*``)."""
        cfg, bank = self.config.run, self.banks["validation"]
        num = min(cfg.video_demos, bank.num_demos)
        path = self.run_dir / f"imitation{video_suffix()}"
        self.console.print(f"rendering {path.name}: {num} validation demo(s), {cfg.video_size} px")
        self.video.write(state.learners["imitation"].actor_params, bank, path, num)
        self.console.print(f"video: {path}")

    def evaluate(self, state, chunk: int) -> dict:
        key = jax.random.PRNGKey(self.config.run.seed + 1)
        results = self.evaluator(state.learners, self.banks["validation"], key)
        self.eval_log.write(int(state.env_steps), results)
        agent = {k.split("/")[-1]: v for k, v in results.items() if k.startswith("eval/agent/")}
        self.console.print(
            f"eval @ chunk {chunk}: "
            + "  ".join(f"{k}={v:.3g}" for k, v in agent.items() if np.isfinite(v))
        )
        return results


def parse(argv: list[str]) -> tuple[TrainConfig, Path, bool]:
    """Resolves the config and run directory from ``--config``/``--resume`` and overrides."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default="cpu")
    pre.add_argument("--resume", type=Path, default=None)
    known, rest = pre.parse_known_args(argv)
    if known.resume is not None:
        if rest:
            raise SystemExit("--resume takes no overrides: the run keeps its own config")
        return load_run_config(known.resume), known.resume, True
    default = configs.load(TrainConfig, known.config)
    description = f"Train MetaMimic (config {known.config!r}; available: {configs.config_names()})"
    config = tyro.cli(
        TrainConfig, default=default, args=rest, prog="mjx-metamimic train", description=description
    )
    return config, config.run.out_dir / f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}", False


def create_run_dir(path: Path) -> Path:
    """Creates a new, empty run directory at ``path`` (``path-2``, ``-3``, ... when taken).

    Creation is atomic, so runs started in the same second never share a directory.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    candidate, suffix = path, 1
    while True:
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            suffix += 1
            candidate = path.with_name(f"{path.name}-{suffix}")


def main(argv: list[str]) -> int:
    """Runs ``mjx-metamimic train``."""
    console = Console()
    config, run_dir, resume = parse(argv)
    if not resume:
        run_dir = create_run_dir(run_dir)
        save_config(config, run_dir)
    console.print(f"[bold]run directory[/] {run_dir}")
    ensure_demos(config, console)
    Trainer(config, run_dir, console).run(resume)
    return 0
